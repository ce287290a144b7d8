"""What every backend's open stream looks like to a source."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np


class Decoded:
    """A decoded picture not yet converted to BGR: conversion costs ≈ 1 ms at 1080p, so it
    is done only for frames that will be detected. ``decode_s``: time spent decoding the
    packets that gave this picture (waiting for them is not counted). ``to_luma``: the
    decoder's own luma plane (no conversion), where its pixel format has one."""

    __slots__ = ("_bgr", "_to_bgr", "_to_luma", "decode_s", "pts")

    def __init__(
        self,
        pts: float | None,
        to_bgr: Callable[[], np.ndarray],
        decode_s: float = 0.0,
        to_luma: Callable[[], np.ndarray | None] | None = None,
    ) -> None:
        self.pts = pts
        self.decode_s = decode_s
        self._to_bgr = to_bgr
        self._to_luma = to_luma
        self._bgr: np.ndarray | None = None

    def to_bgr(self) -> np.ndarray:
        """The BGR picture, converted once; raises ``SourceError`` when it cannot be."""
        if self._bgr is None:
            self._bgr = self._to_bgr()
        return self._bgr

    def brightness(self) -> np.ndarray:
        """What the motion gate looks at: the luma plane (H×W uint8) straight from the
        decoder, or the BGR picture where the decoder has no such plane."""
        luma = None if self._to_luma is None else self._to_luma()
        return self.to_bgr() if luma is None else luma


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
