"""A coordinate grid and a camera's zones and lines drawn on its picture (``edged snapshot
--grid``), so a user can read off relative coordinates for a zone or a line.

Everything scales with the picture's shorter side (``unit``): 1 px lines and small labels on a
VGA picture, proportionally more on 4K, so the grid stays thin and its labels readable.
Labels sit on filled boxes, readable on any background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edged.core import draw

GRID = (0, 230, 255)  # BGR yellow: seen on grey pavement and green alike
ZONE = (255, 160, 0)
LINE = (255, 0, 255)
STEPS = 10  # a line every 0.1


@dataclass(frozen=True, slots=True)
class LineMark:
    """A counting line to draw: ``points`` (2×2 pixels); ``in_side``: the unit vector to the
    side an object moves into when it counts as ``in`` (None: not known, no arrow)."""

    name: str
    points: np.ndarray
    in_side: np.ndarray | None


def unit(image: np.ndarray) -> int:
    """The line width of the grid in pixels: 1 up to a 959 px short side, then 1 more per 480."""
    return max(1, min(image.shape[:2]) // 480)


def _font(u: int) -> tuple[float, int]:
    """Text scale and stroke for ``unit`` ``u``."""
    return 0.4 * u, u


def grid(image: np.ndarray) -> None:
    """Lines at every 0.1 of the width and height, labelled 0.1 … 0.9 along the top and left
    edges, and the picture's size in pixels in the bottom-right corner."""
    height, width = image.shape[:2]
    u = unit(image)
    scale, stroke = _font(u)
    for i in range(1, STEPS):
        x, y = round(width * i / STEPS), round(height * i / STEPS)
        cv2.line(image, (x, 0), (x, height - 1), GRID, u, cv2.LINE_8)
        cv2.line(image, (0, y), (width - 1, y), GRID, u, cv2.LINE_8)
    for i in range(1, STEPS):
        x, y = round(width * i / STEPS), round(height * i / STEPS)
        words = f"{i / STEPS:.1f}"
        # beside their line, not on it: the line stays visible where it meets the edge
        draw.label(image, words, (x + 2 * u, 0), GRID, scale, stroke, below=True)
        draw.label(image, words, (0, y + 2 * u), GRID, scale, stroke, below=True)
    size = f"{width}x{height} px"
    (tw, th), base = cv2.getTextSize(size, draw.FONT, scale, stroke)
    draw.label(image, size, (width - tw - 4, height - th - base - 4), GRID, scale, stroke, True)


def geometry(
    image: np.ndarray, zones: Sequence[tuple[str, np.ndarray]], lines: Sequence[LineMark]
) -> None:
    """Each zone (name, N×2 pixels) lightly tinted and outlined; each line with its name and
    an arrow labelled ``in`` from its middle to its ``in`` side."""
    u = unit(image)
    scale, stroke = _font(u)
    draw.shade(image, [points for _, points in zones], ZONE, 0.2)
    for name, points in zones:
        draw.polygon(image, points, ZONE, 2 * u)
        top = points[int(np.argmin(points[:, 1]))]
        draw.label(image, name, draw.point(top), ZONE, scale, stroke)
    diagonal = float(np.hypot(*image.shape[:2]))
    for mark in lines:
        p0, p1 = mark.points
        draw.line(image, p0, p1, LINE, 2 * u)
        for end in (p0, p1):
            cv2.circle(image, draw.point(end), 3 * u, LINE, cv2.FILLED, cv2.LINE_AA)
        draw.label(image, mark.name, draw.point(p0), LINE, scale, stroke)
        if mark.in_side is None:
            continue
        middle = (p0 + p1) / 2
        tip = middle + mark.in_side * max(0.06 * diagonal, 20.0 * u)
        cv2.arrowedLine(
            image, draw.point(middle), draw.point(tip), LINE, 2 * u, cv2.LINE_AA, tipLength=0.3
        )
        draw.label(image, "in", draw.point(tip), LINE, scale, stroke)
