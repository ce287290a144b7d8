"""Files and network streams (RTSP, HTTP/MJPEG, HLS) through PyAV (FFmpeg)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import av
import av.container
import av.video
import numpy as np

from edged.core.redact import redact
from edged.sources.capture import Capture, Decoded, SourceError

# FFmpeg probes 5 s of a stream by default, which makes every RTSP open take ≈ 5.5 s;
# 0.3 s finds the codec parameters of an H.264 camera and opens in ≈ 0.5 s.
PROBE = {"analyzeduration": "300000", "probesize": "500000"}

# 8-bit pixel formats whose first plane is the picture's luma at full size
LUMA_FIRST = frozenset(
    {
        "yuv420p",
        "yuvj420p",
        "yuv422p",
        "yuvj422p",
        "yuv444p",
        "yuvj444p",
        "yuv440p",
        "yuvj440p",
        "yuv411p",
        "yuv410p",
        "nv12",
        "nv21",
        "nv16",
        "gray",
    }
)


class PyAVCapture(Capture):
    """``live``: a camera stream (slice threads only, so decoding adds no frames of delay)."""

    def __init__(
        self,
        uri: str,
        *,
        live: bool,
        open_timeout_s: float,
        read_timeout_s: float,
        stall_timeout_s: float,
        transport: str = "tcp",
        pts_offset: float = 0.0,
    ) -> None:
        options: dict[str, str] = {}
        if live:
            options.update(PROBE)
            if uri.lower().startswith(("rtsp://", "rtsps://")):
                options["rtsp_transport"] = transport
        self._where = redact(uri)
        started = time.monotonic()
        try:
            self._container: av.container.InputContainer = av.open(
                uri, options=options, timeout=(open_timeout_s, read_timeout_s)
            )
        except (av.FFmpegError, OSError) as exc:
            # FFmpeg reports an interrupted open as whatever the half-read input looked like
            took = time.monotonic() - started
            why = f"timed out after {took:.1f} s" if took >= open_timeout_s else _describe(exc)
            raise SourceError(f"cannot open {self._where}: {why}") from None
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{self._where}: no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "SLICE" if live else "AUTO"
        self._stream: av.video.stream.VideoStream = stream
        rate = stream.average_rate or stream.guessed_rate
        self.fps = float(rate) if rate else None
        self.pts_offset = pts_offset
        self._stall_timeout_s = stall_timeout_s
        self._packets: Iterator[av.Packet] = self._container.demux(stream)
        self._pending: list[av.VideoFrame] = []

    def read(self) -> Decoded | None:
        # packets that keep coming but never decode (a broken stream) would block a plain
        # decode() loop forever: give up when no frame came out for the stall timeout
        deadline = time.monotonic() + self._stall_timeout_s
        spent = 0.0
        try:
            while not self._pending:
                packet = next(self._packets)
                t0 = time.perf_counter()
                self._pending.extend(packet.decode())  # a flush packet at the end decodes the rest
                spent += time.perf_counter() - t0
                if not self._pending and time.monotonic() > deadline:
                    raise SourceError(
                        f"{self._where}: stalled: packets but no frame for "
                        f"{self._stall_timeout_s:.1f} s"
                    )
        except StopIteration:
            return None
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(f"{self._where}: {_describe(exc)}") from None
        frame = self._pending.pop(0)
        pts = None if frame.time is None else frame.time + self.pts_offset
        return Decoded(pts, lambda: frame.to_ndarray(format="bgr24"), spent, lambda: luma(frame))

    def close(self) -> None:
        self._container.close()


def luma(frame: av.VideoFrame) -> np.ndarray | None:
    """The frame's luma plane as an H×W view of the decoder's buffer (rows padded to its line
    size), or None for a format without one."""
    if frame.format.name not in LUMA_FIRST:
        return None
    plane = frame.planes[0]
    rows = np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)
    return rows[:, : plane.width]


def _describe(exc: av.FFmpegError | OSError) -> str:
    """FFmpeg's words for the error, without the URI it may repeat (credentials)."""
    if isinstance(exc, av.FFmpegError):
        text = exc.strerror or type(exc).__name__
        if "Immediate exit" in text:
            return "timed out"
        return text
    return exc.strerror or type(exc).__name__
