"""Points in a camera picture, written either relative (0–1) or in pixels.

The reading is by the values: every coordinate within 0–1 means relative to the picture;
any coordinate above 1 means pixels. Pixels are whole or at least 1, so in a pixel shape a
coordinate strictly between 0 and 1 (0.5 beside 640) is a relative value mixed in by
mistake and refused; 0 and 1 are at home in both (``[[0, 0], [640, 0], [640, 480]]`` is
pixels). A shape wholly within 0–1 is always relative: a one-pixel triangle cannot be
written in pixels.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import AfterValidator
from shapely.geometry import LineString, Polygon, box
from shapely.validation import explain_validity

Point = tuple[float, float]
# far beyond any camera picture, and small enough that areas and distances stay finite
MAX_PIXEL = 100_000.0


def _finite(points: list[Point]) -> list[Point]:
    if not all(np.isfinite(c) and 0 <= c <= MAX_PIXEL for p in points for c in p):
        raise ValueError(f"coordinates must be finite, non-negative and at most {MAX_PIXEL:g}")
    coords = [c for p in points for c in p]
    pixel = max(coords, default=0.0)
    fractions = [c for c in coords if 0 < c < 1]
    if pixel > 1 and fractions:
        raise ValueError(
            f"mixes relative and pixel coordinates ({fractions[0]:g} is a share of the "
            f"picture, {pixel:g} a pixel): write every point relative (all within 0–1) or "
            "every point in pixels (none strictly between 0 and 1)"
        )
    return points


Points = Annotated[list[Point], AfterValidator(_finite)]


def _polygon(points: list[Point]) -> list[Point]:
    if len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(points)}")
    poly = Polygon(points)
    if not poly.is_valid:
        raise ValueError(f"invalid polygon: {explain_validity(poly)}")
    if poly.area == 0:
        raise ValueError("polygon has no area")
    return points


PolygonPoints = Annotated[Points, AfterValidator(_polygon)]


def is_relative(points: list[Point]) -> bool:
    """All coordinates within 0–1 means relative to the picture; anything larger means pixels."""
    return all(c <= 1.0 for p in points for c in p)


def to_pixels(points: list[Point], width: int, height: int) -> np.ndarray:
    """K×2 float64 pixel coordinates for a picture of the given size."""
    arr = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if is_relative(points):
        arr = arr * np.array([width, height], dtype=np.float64)
    return arr


def polygon_misses(points: np.ndarray, width: int, height: int) -> bool:
    """A polygon (K×2 pixels) that shares no area with a picture of this size."""
    return bool(Polygon(points).intersection(box(0, 0, width, height)).area == 0)


def line_misses(points: np.ndarray, segment: bool, width: int, height: int) -> bool:
    """A line (2×2 pixels; the segment, or the infinite line through it) that never touches
    a picture of this size."""
    picture = box(0, 0, width, height)
    if segment:
        return not LineString(points).intersects(picture)
    # the infinite line misses the picture when every corner is strictly on one side of it
    (x0, y0), (x1, y1) = np.asarray(points, np.float64)
    cross = [(x1 - x0) * (cy - y0) - (y1 - y0) * (cx - x0) for cx, cy in picture.exterior.coords]
    return all(c > 0 for c in cross) or all(c < 0 for c in cross)
