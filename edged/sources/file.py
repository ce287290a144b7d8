"""Video files: paced at their own rate, or as fast as the pipeline takes them."""

from __future__ import annotations

import time
from pathlib import Path

from edged.sources.base import Outcome, Source
from edged.sources.capture import Capture, SourceError
from edged.sources.pyav import PyAVCapture


class FileSource(Source):
    """Analytics run on the file's own timeline, so dwell times are right at any speed; a
    looped file's timeline keeps going forward across passes."""

    _timeline_end = 0.0
    _last_pts = 0.0
    _start: float | None = None
    _first_ts: float | None = None
    # realtime: false — the wall-clock time and stream time of the first frame
    _wall_start: tuple[float, float] | None = None

    def open(self) -> Capture:
        path = Path(self.config.uri.removeprefix("file://"))
        if not path.is_file():
            raise SourceError(f"file not found: {path}")
        capture = PyAVCapture(
            str(path),
            live=False,
            open_timeout_s=self.config.open_timeout_s,
            read_timeout_s=self.config.read_timeout_s,
            stall_timeout_s=self.config.stall_timeout_s,
            pts_offset=self._timeline_end,
        )
        self._fps = capture.fps or 25.0
        return capture

    def media_time(self, pts: float | None, mono: float) -> float:
        # a stream without timestamps gets them from its frame rate
        self._last_pts = self._last_pts + 1.0 / self._fps if pts is None else pts
        return self._last_pts

    def wall_time(self, media_ts: float, now: float) -> float:
        # read faster than real time, a frame's wall-clock time is the first frame's plus the
        # stream time since: payload times (frame_ts, started/ended) then agree with the
        # durations measured on stream time (ended - started == duration_s)
        if self.config.realtime:
            return now
        if self._wall_start is None:
            self._wall_start = (now, media_ts)
        wall, media = self._wall_start
        return wall + (media_ts - media)

    def at_end(self, capture: Capture) -> tuple[Outcome, str]:
        if not self._streamed:
            return "broken", f"{self.config.uri}: no decodable frame"
        if not self.config.loop:
            return "ended", "end of stream"
        # the next pass continues one frame after this pass's last frame
        self._timeline_end = self._last_pts + 1.0 / self._fps
        return "reopen", "looping"

    def pace(self, media_ts: float) -> None:
        if not self.config.realtime:
            return
        if self._start is None or self._first_ts is None:
            self._start, self._first_ts = time.monotonic(), media_ts
            return
        delay = self._start + (media_ts - self._first_ts) - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)
