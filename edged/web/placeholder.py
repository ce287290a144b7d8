"""The picture shown for a camera that has no frame to show: its name, what is wrong, why."""

from __future__ import annotations

import textwrap

import cv2
import numpy as np

from edged.core import draw

WIDTH, HEIGHT = 640, 360
BACKGROUND = (48, 40, 40)
TITLE = (80, 170, 255)  # BGR: orange, as a warning reads
TEXT = (220, 220, 220)


def placeholder(camera: str, title: str, reason: str) -> bytes:
    """A JPEG: ``camera`` and ``title`` large, ``reason`` wrapped below."""
    image = np.full((HEIGHT, WIDTH, 3), BACKGROUND, np.uint8)
    draw.text(image, camera, (24, 64), TEXT, 0.9, 2)
    draw.text(image, title, (24, 130), TITLE, 1.3, 3)
    y = 180
    for row in textwrap.wrap(reason, 52)[:6]:
        draw.text(image, row, (24, y), TEXT, 0.6, 1)
        y += 28
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise RuntimeError(f"{camera}: JPEG encoding of the placeholder failed")
    return buf.tobytes()
