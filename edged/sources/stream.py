"""Live cameras: network streams (RTSP, HTTP/MJPEG, HLS) and USB (V4L2) devices."""

from __future__ import annotations

from edged.sources.base import Source
from edged.sources.capture import Capture
from edged.sources.opencv import V4L2Capture
from edged.sources.pyav import PyAVCapture


class StreamSource(Source):
    def open(self) -> Capture:
        c = self.config
        return PyAVCapture(
            c.uri,
            live=True,
            open_timeout_s=c.open_timeout_s,
            read_timeout_s=c.read_timeout_s,
            stall_timeout_s=c.stall_timeout_s,
            transport=c.transport,
        )


class UsbSource(Source):
    def open(self) -> Capture:
        return V4L2Capture(self.config.uri, self.config.usb, self.config.read_timeout_s)
