"""Points in a camera picture, written either relative (0–1) or in pixels."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from pydantic import AfterValidator
from shapely.geometry import Polygon
from shapely.validation import explain_validity

Point = tuple[float, float]


def _finite(points: list[Point]) -> list[Point]:
    if not all(np.isfinite(c) and c >= 0 for p in points for c in p):
        raise ValueError("coordinates must be finite and non-negative")
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
