"""Live cameras: RTSP/HTTP streams and USB (V4L2) devices."""

from __future__ import annotations

from edged.sources.base import Capture, Source
from edged.sources.opencv import open_ffmpeg, open_v4l2


class StreamSource(Source):
    def open(self) -> Capture:
        return open_ffmpeg(self.config.uri, timed=False)


class UsbSource(Source):
    def open(self) -> Capture:
        return open_v4l2(self.config.uri)
