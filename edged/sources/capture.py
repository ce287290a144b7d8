"""What every backend's open stream looks like to a source."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Decoded:
    """A decoded picture not yet converted to BGR: conversion costs ≈ 1 ms at 1080p, so it
    is done only for frames that will be detected. ``decode_s``: time spent decoding the
    packets that gave this picture (waiting for them is not counted)."""

    pts: float | None
    to_bgr: Callable[[], np.ndarray]
    decode_s: float = 0.0


class Capture(ABC):
    """An open stream. ``read`` returns the next picture, or None at the end of the stream;
    it raises ``SourceError`` when the stream breaks, and never blocks longer than the
    source's read timeout."""

    fps: float | None = None

    @abstractmethod
    def read(self) -> Decoded | None: ...

    @abstractmethod
    def close(self) -> None: ...


class SourceError(Exception):
    """The stream cannot be opened or read; the message says why, credentials redacted."""
