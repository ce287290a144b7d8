"""Video files: paced at their own rate, or as fast as the pipeline takes them."""

from __future__ import annotations

import time
from pathlib import Path

from edged.config.camera import SourceConfig
from edged.sources.base import Capture, Outcome, Source, SourceError
from edged.sources.opencv import OpenCVCapture, open_ffmpeg


class FileSource(Source):
    config: SourceConfig
    _timeline_end = 0.0
    _start: float | None = None
    _first_pts: float | None = None

    @property
    def live(self) -> bool:
        # a file read as fast as possible must not skip frames; a paced one behaves like a camera
        return self.config.realtime

    def open(self) -> Capture:
        path = Path(self.config.uri.removeprefix("file://"))
        if not path.is_file():
            raise SourceError(f"file not found: {path}", retry=False)
        try:
            return open_ffmpeg(str(path), timed=True, pts_offset=self._timeline_end)
        except SourceError as exc:
            raise SourceError(f"{path}: not a readable video", retry=False) from exc

    def at_end(self, capture: Capture) -> Outcome:
        if self.decoded == 0:
            raise SourceError(f"{self.config.uri}: no decodable frame", retry=False)
        if not self.config.loop:
            return "ended"
        assert isinstance(capture, OpenCVCapture)
        # the next pass continues the timeline one frame after this pass's last frame
        self._timeline_end = self._last_pts + 1.0 / (capture.fps or 25.0)
        return "reopen"

    def pace(self, pts: float | None) -> None:
        if pts is None:
            return
        self._last_pts = pts
        if not self.config.realtime:
            return
        if self._start is None or self._first_pts is None:
            self._start, self._first_pts = time.monotonic(), pts
            return
        due = self._start + (pts - self._first_pts)
        delay = due - time.monotonic()
        if delay > 0:
            self._stop.wait(delay)
