"""The one interface every inference backend offers."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class EngineError(Exception):
    """The engine could not be created or run as configured."""


class Engine(Protocol):
    """A batch of preprocessed tensors in, raw named outputs out. ``max_batch`` is the fixed
    batch size of the model, or None when its batch dimension is dynamic."""

    provider: str
    input_names: list[str]
    output_names: list[str]
    max_batch: int | None

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...
