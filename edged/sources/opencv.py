"""Captures through OpenCV's FFmpeg and V4L2 backends."""

from __future__ import annotations

import os

import cv2
import numpy as np

from edged.sources.base import Capture, SourceError, redact

# Probing 5 s of stream (FFmpeg's default) makes every RTSP open take ≈ 5.5 s; 0.3 s suffices.
_RTSP_OPTIONS = "rtsp_transport;tcp|analyzeduration;300000|probesize;500000|stimeout;5000000"


class OpenCVCapture(Capture):
    """``timed``: the stream's own position is meaningful (files); ``pts_offset`` shifts it,
    so a looped file's timeline keeps going forward."""

    def __init__(self, cap: cv2.VideoCapture, timed: bool, pts_offset: float = 0.0) -> None:
        self._cap = cap
        self._timed = timed
        self.pts_offset = pts_offset
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and 0 < fps < 1000 else None

    def read(self) -> tuple[np.ndarray, float | None] | None:
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        if not self._timed:
            return image, None
        return image, self._cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 + self.pts_offset

    def close(self) -> None:
        self._cap.release()


def open_ffmpeg(
    uri: str, timed: bool, pts_offset: float = 0.0, timeout_s: float = 5.0
) -> OpenCVCapture:
    """Open a file or network stream with FFmpeg."""
    if uri.lower().startswith("rtsp"):
        # read by OpenCV at open time; it has no per-capture way to pass demuxer options
        os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", _RTSP_OPTIONS)
    params = [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(timeout_s * 1000),
    ]
    cap = cv2.VideoCapture(uri, cv2.CAP_FFMPEG, params)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open {redact(uri)}")
    return OpenCVCapture(cap, timed, pts_offset)


def open_v4l2(device: str) -> OpenCVCapture:
    index = int(device) if device.isdigit() else device
    if isinstance(index, str) and not os.path.exists(index):
        raise SourceError(f"USB camera {device} not found")
    cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
    if not cap.isOpened():
        cap.release()
        raise SourceError(f"cannot open USB camera {device} (missing or busy)")
    return OpenCVCapture(cap, timed=False)
