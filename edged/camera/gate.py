"""Motion-gated detection: whether a camera's next frame goes to the detector.

A frame is detected when the gate is off, when the analytics are busy (a track is alive, a
crossing or a scene judgement is pending), when its region of interest moves, or when
``keep_alive_s`` of stream time has passed since the last detected frame (what stands still
is still seen); otherwise it is skipped as still."""

from __future__ import annotations

import time

import numpy as np

from edged.analytics.motion import MotionMeter, Region, region_mask
from edged.config.camera import MotionConfig
from edged.core.latency import Latency

# stream-time rounding: a keep-alive that falls on a frame's timestamp is due on that frame
_EPS_S = 1e-3


class MotionGate:
    """One camera's gate; ``admit`` is called from one thread (the camera's source, before
    a frame is converted to BGR)."""

    def __init__(self) -> None:
        self.meter = MotionMeter()
        self.latency = Latency()  # seconds per motion measure
        self.skipped = 0  # frames skipped as still, since start
        self.skipped_at: float | None = None  # monotonic time of the latest
        self._detected_ts: float | None = None
        # the mask rasterised for (the analytics' region, the margin): once per placement
        self._mask_for: tuple[Region, float] | None = None
        self._mask: np.ndarray | None = None

    def admit(
        self,
        picture: np.ndarray,
        media_ts: float,
        config: MotionConfig,
        busy: bool,
        region: Region | None,
    ) -> bool:
        """True: detect the frame of ``picture`` (its luma plane, or its BGR image) at stream
        time ``media_ts``; False: it is skipped as still (and counted)."""
        if not config.enabled or busy:
            # nothing to decide now; the background starts afresh when the gate has a say again
            self.meter.reset()
            return self._detect(media_ts)
        t0 = time.perf_counter()
        mask = self._region_mask(picture, config, region)
        share = self.meter.measure(picture, media_ts, config.threshold, mask)
        self.latency.observe(time.perf_counter() - t0)
        if share is None or share >= config.min_area or self._due(media_ts, config.keep_alive_s):
            return self._detect(media_ts)
        self.skipped += 1
        self.skipped_at = time.monotonic()
        return False

    def _due(self, media_ts: float, keep_alive_s: float) -> bool:
        if self._detected_ts is None:
            return True
        left = self._detected_ts + keep_alive_s - media_ts
        # more than a whole period left: the stream's clock went back (a new timeline)
        return left <= _EPS_S or left > keep_alive_s

    def _detect(self, media_ts: float) -> bool:
        self._detected_ts = media_ts
        return True

    def _region_mask(
        self, picture: np.ndarray, config: MotionConfig, region: Region | None
    ) -> np.ndarray | None:
        """The region of interest for this picture's size: the analytics' once they have
        placed their geometry for it, the whole picture until then."""
        height, width = picture.shape[:2]
        if region is None or region.size != (width, height):
            return None
        cached = self._mask_for
        if cached is None or cached[0] is not region or cached[1] != config.margin:
            self._mask_for = (region, config.margin)
            self._mask = region_mask(region.shapes, width, height, config.margin)
        return self._mask
