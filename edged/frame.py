"""The unit a source hands to the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture of one camera.

    ``mono_ts`` is ``time.monotonic()`` at capture (for ages and durations); ``wall_ts`` is
    ``time.time()`` at capture (for payloads). ``pts`` is the stream's own timestamp in
    seconds where the source knows it.
    """

    camera: str
    seq: int
    mono_ts: float
    wall_ts: float
    image: np.ndarray
    pts: float | None = None

    @property
    def media_ts(self) -> float:
        """The clock analytics measure durations on: stream time where known, else monotonic."""
        return self.mono_ts if self.pts is None else self.pts

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
