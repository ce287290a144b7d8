"""Rates from the pipeline's counters, for the status line and the ``stats`` topic."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from edged.pipeline import CameraStats


class Rates:
    """Frames per second over the interval since the previous ``sample``."""

    def __init__(self) -> None:
        self._last: tuple[float, dict[str, CameraStats]] | None = None

    def sample(self, stats: dict[str, CameraStats]) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        out: dict[str, dict[str, Any]] = {}
        for name, st in stats.items():
            fps_in = fps_done = 0.0
            if self._last is not None and name in self._last[1] and now > self._last[0]:
                before, dt = self._last[1][name], now - self._last[0]
                fps_in = (st.decoded - before.decoded) / dt
                fps_done = (st.processed - before.processed) / dt
            out[name] = {**asdict(st), "fps_in": round(fps_in, 2), "fps": round(fps_done, 2)}
        self._last = (now, stats)
        return out
