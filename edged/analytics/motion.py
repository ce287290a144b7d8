"""How much of a camera's region of interest moves: a cheap measure on a small grey picture,
against a running background, for gating the detector (``edged.camera.gate``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

WIDTH = 160  # about the measure's picture width: a person of 1/100 of the picture is pixels
# the running background forgets with this time constant (stream time): slow movers stand out
# against it where a previous-frame difference would miss them, and what was moved away is
# forgotten within a few seconds
BACKGROUND_S = 1.0


@dataclass(frozen=True, slots=True)
class Region:
    """What a camera's analytics watch (zones, lines, scene areas), in the pixels of pictures
    of ``size``; replaced as a whole when the geometry is placed again."""

    size: tuple[int, int]
    shapes: tuple[BaseGeometry, ...]


def _step(width: int) -> int:
    """Every how many pixels the picture is sampled: at about twice the measure's width."""
    return max(1, width // (2 * WIDTH))


def small_size(width: int, height: int) -> tuple[int, int]:
    """The measure's picture size for a picture of ``width`` × ``height``."""
    s = _step(width)
    return max(1, width // (2 * s)), max(1, height // (2 * s))


def grey(picture: np.ndarray) -> np.ndarray:
    """The small, blurred grey picture (float32, 0–255) of a luma plane (H×W) or of a BGR
    image (H×W×3, its green standing in for luma).

    Plain numpy: each OpenCV call wakes its thread pool, whose threads then spin, which cost
    0.6 ms of CPU per frame on a 2-core machine — twice the measure itself. 2×2 means of a
    sample at twice the size average the noise, and a 3×3 binomial blur smooths compression
    blocks."""
    height, width = picture.shape[:2]
    s = _step(width)
    w, h = small_size(width, height)
    g = picture[: 2 * s * h, : 2 * s * w]
    if g.ndim == 3:
        g = g[:, :, 1]
    y = g[0 :: 2 * s, 0 :: 2 * s].astype(np.float32)
    y += g[s :: 2 * s, 0 :: 2 * s]
    y += g[0 :: 2 * s, s :: 2 * s]
    y += g[s :: 2 * s, s :: 2 * s]
    p = np.pad(y, 1, mode="edge")
    y = p[:, :-2] + 2 * p[:, 1:-1] + p[:, 2:]
    y = y[:-2] + 2 * y[1:-1] + y[2:]
    y *= np.float32(1 / 64)  # 4 samples × the blur's 16
    return y


def region_mask(
    shapes: Sequence[BaseGeometry], width: int, height: int, margin: float
) -> np.ndarray | None:
    """The region of interest at the measure's size (bool, True inside): ``shapes`` in the
    picture's pixels, each widened by ``margin`` (share of the picture diagonal; a line gets at
    least a pixel of the small picture). None: no shapes, the whole picture."""
    if not shapes:
        return None
    w, h = small_size(width, height)
    scale = (w / width, h / height)
    pad = max(margin * math.hypot(width, height), 1.0 / scale[0])
    mask = np.zeros((h, w), np.uint8)
    for shape in shapes:
        area = shape.buffer(pad)
        parts = area.geoms if isinstance(area, MultiPolygon) else [area]
        for part in parts:
            if not isinstance(part, Polygon) or part.is_empty:
                continue
            cv2.fillPoly(mask, [_ring(part.exterior.coords, scale)], 1)
            for hole in part.interiors:
                cv2.fillPoly(mask, [_ring(hole.coords, scale)], 0)
    return mask.astype(bool)


def _ring(coords: Sequence[tuple[float, float]], scale: tuple[float, float]) -> np.ndarray:
    return np.round(np.asarray(coords, np.float64) * scale).astype(np.int32)


class MotionMeter:
    """The share of the picture that changed inside a mask, frame by frame.

    A pixel changed when the small grey picture differs from the running background by more
    than ``threshold`` grey levels, after the median difference is taken off (exposure
    pumping and lighting flicker change the whole picture alike)."""

    def __init__(self) -> None:
        self._background: np.ndarray | None = None
        self._ts = 0.0

    def reset(self) -> None:
        """Forget the background (the next frame starts a new one)."""
        self._background = None

    def measure(
        self, picture: np.ndarray, ts: float, threshold: int, mask: np.ndarray | None
    ) -> float | None:
        """The changed share of ``picture`` (see ``grey``) inside ``mask`` (None: all of it)
        at stream time ``ts``; None when there is no background to compare with yet."""
        g = grey(picture)
        background, last = self._background, self._ts
        self._ts = ts
        if background is None or background.shape != g.shape:
            self._background = g
            return None
        diff = g - background
        # the median of every other pixel: as robust, a quarter of the sorting
        diff -= float(np.median(diff[::2, ::2]))
        changed = np.abs(diff) > threshold
        if mask is not None:
            changed &= mask
        alpha = 1.0 - math.exp(-max(ts - last, 0.0) / BACKGROUND_S)
        background += np.float32(alpha) * (g - background)
        return float(np.count_nonzero(changed)) / changed.size
