"""USB cameras through OpenCV's V4L2 backend (PyAV's FFmpeg is built without V4L2)."""

from __future__ import annotations

import os

import cv2
import numpy as np

from edged.config.camera import UsbConfig
from edged.sources.capture import Capture, Decoded, SourceError


class V4L2Capture(Capture):
    def __init__(self, device: str, wanted: UsbConfig, read_timeout_s: float) -> None:
        index: int | str = int(device) if device.isdigit() else device
        path = f"/dev/video{device}" if isinstance(index, int) else device
        if not os.path.exists(path):
            raise SourceError(f"USB camera {path} not found")
        params = [cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_timeout_s * 1000)]
        if wanted.fourcc:
            params += [cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*wanted.fourcc)]
        if wanted.width:
            params += [cv2.CAP_PROP_FRAME_WIDTH, wanted.width]
        if wanted.height:
            params += [cv2.CAP_PROP_FRAME_HEIGHT, wanted.height]
        if wanted.fps:
            # the open's parameters are ints: a float (30.0 from YAML `fps: 30`) fails to parse
            params += [cv2.CAP_PROP_FPS, round(wanted.fps)]
        self._cap = cv2.VideoCapture(index, cv2.CAP_V4L2, params)
        if not self._cap.isOpened():
            self._cap.release()
            busy = not os.access(path, os.R_OK | os.W_OK)
            why = "no permission" if busy else "busy or not a capture device"
            raise SourceError(f"cannot open USB camera {path} ({why})")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 0 < fps < 1000 else None
        self._path = path

    def read(self) -> Decoded | None:
        if not self._cap.grab():
            raise SourceError(f"USB camera {self._path}: read failed (unplugged?)")
        return Decoded(None, self._retrieve)

    def _retrieve(self) -> np.ndarray:
        ok, image = self._cap.retrieve()
        if not ok:
            raise SourceError(f"USB camera {self._path}: could not convert the frame")
        return image

    def close(self) -> None:
        self._cap.release()
