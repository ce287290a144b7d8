"""The unit a source hands to the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded picture of one camera.

    ``mono_ts`` is ``time.monotonic()`` at capture (for ages and latency); ``wall_ts`` is
    ``time.time()`` at capture (what payloads carry), except for a file read as fast as
    possible (``realtime: false``): there it is the first frame's ``time.time()`` plus the
    stream time since, so payload times agree with durations. ``media_ts`` is the clock
    analytics measure durations on: stream time for files (so a clip read fast still has
    real dwell times), the monotonic capture time for live cameras. ``pts`` is the stream's
    own timestamp in seconds where the source has one.
    """

    camera: str
    seq: int
    mono_ts: float
    wall_ts: float
    media_ts: float
    image: np.ndarray
    pts: float | None = None

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])
