"""Where in a picture the detector looks: the whole picture, or the box around what the
camera's analytics watch (zones, lines, scene areas), cut into tiles — each part one model
input at its full resolution, so small objects there are seen larger."""

from __future__ import annotations

import math

from edged.analytics.motion import Region
from edged.config.camera import DetectConfig

Crop = tuple[int, int, int, int]  # x0, y0, x1, y1 pixels


def detect_crops(
    width: int,
    height: int,
    region: Region | None,
    detect: DetectConfig,
    aspect: float = 1.0,
) -> tuple[Crop, ...] | None:
    """The parts to detect in (None: the whole picture as one input). ``region`` is used
    only when placed for this picture size; without one the whole picture is tiled. The
    region's box is widened to the model input's ``aspect`` (width ÷ height) where the
    picture allows: the input is filled at the same scale either way, and a line's thin box
    would show only slices of what crosses it."""
    x0, y0, x1, y1 = 0.0, 0.0, float(width), float(height)
    placed = region is not None and region.size == (width, height) and region.shapes
    if detect.region == "roi" and region is not None and placed:
        pad = detect.roi_margin * math.hypot(width, height)
        bounds = [s.bounds for s in region.shapes]
        x0 = max(0.0, min(b[0] for b in bounds) - pad)
        y0 = max(0.0, min(b[1] for b in bounds) - pad)
        x1 = min(float(width), max(b[2] for b in bounds) + pad)
        y1 = min(float(height), max(b[3] for b in bounds) + pad)
        x0, x1 = _grow(x0, x1, (y1 - y0) * aspect, width)
        y0, y1 = _grow(y0, y1, (x1 - x0) / aspect, height)
    cols, rows = detect.tiles
    if (x0, y0, x1, y1) == (0.0, 0.0, width, height) and cols == rows == 1:
        return None
    tw, th = (x1 - x0) / cols, (y1 - y0) / rows
    reach_x, reach_y = detect.tile_overlap * tw, detect.tile_overlap * th
    crops = []
    for r in range(rows):
        for c in range(cols):
            cx0 = max(x0, x0 + c * tw - reach_x)
            cy0 = max(y0, y0 + r * th - reach_y)
            cx1 = min(x1, x0 + (c + 1) * tw + reach_x)
            cy1 = min(y1, y0 + (r + 1) * th + reach_y)
            crops.append((math.floor(cx0), math.floor(cy0), math.ceil(cx1), math.ceil(cy1)))
    return tuple(crops)


def _grow(lo: float, hi: float, size: float, limit: int) -> tuple[float, float]:
    """[lo, hi] widened about its middle to ``size`` (never narrowed), kept in [0, limit]."""
    if hi - lo >= size:
        return lo, hi
    size = min(size, float(limit))
    lo = min(max(0.0, (lo + hi - size) / 2), limit - size)
    return lo, lo + size
