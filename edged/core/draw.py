"""Drawing on BGR pictures (numpy arrays, changed in place): boxes, outlines, lines, text and
text on a filled box, for snapshots and the debug view alike.

``smooth`` draws anti-aliased edges (the debug view); without it edges are hard, as
snapshots have always had them.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Color = tuple[int, int, int]  # BGR
Point = Sequence[float] | np.ndarray

FONT = cv2.FONT_HERSHEY_SIMPLEX
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
# one colour per track id, none of them the zone or line colours of the debug view
PALETTE: list[Color] = [
    (75, 25, 230),
    (75, 180, 60),
    (200, 130, 0),
    (48, 130, 245),
    (180, 30, 145),
    (240, 240, 70),
    (60, 245, 210),
    (0, 128, 128),
    (195, 255, 170),
    (128, 0, 0),
]


def track_color(track_id: int) -> Color:
    return PALETTE[track_id % len(PALETTE)]


def point(xy: Point) -> tuple[int, int]:
    """The pixel nearest to ``xy``."""
    return round(float(xy[0])), round(float(xy[1]))


def _line_type(smooth: bool) -> int:
    return cv2.LINE_AA if smooth else cv2.LINE_8


def box(image: np.ndarray, xyxy: Point, color: Color, thickness: int, smooth: bool = True) -> None:
    """The outline of the box ``xyxy`` (x1, y1, x2, y2 pixels)."""
    corner1, corner2 = point(xyxy[:2]), point(xyxy[2:])
    cv2.rectangle(image, corner1, corner2, color, thickness, _line_type(smooth))


def _pixels(points: np.ndarray) -> np.ndarray:
    return np.round(points).astype(np.int32).reshape(-1, 1, 2)


def polygon(image: np.ndarray, points: np.ndarray, color: Color, thickness: int) -> None:
    """The closed outline through ``points`` (N×2 pixels)."""
    cv2.polylines(image, [_pixels(points)], True, color, thickness, cv2.LINE_AA)


def shade(image: np.ndarray, polygons: Sequence[np.ndarray], color: Color, alpha: float) -> None:
    """Tint the inside of each polygon (N×2 pixels) with ``color`` at ``alpha`` opacity."""
    tinted = image.copy()
    for points in polygons:
        cv2.fillPoly(tinted, [_pixels(points)], color)
    cv2.addWeighted(tinted, alpha, image, 1 - alpha, 0, dst=image)


def line(image: np.ndarray, p0: Point, p1: Point, color: Color, thickness: int) -> None:
    cv2.line(image, point(p0), point(p1), color, thickness, cv2.LINE_AA)


def text(
    image: np.ndarray,
    words: str,
    at: Point,
    color: Color,
    scale: float,
    thickness: int,
    smooth: bool = True,
) -> None:
    """``words`` with their baseline starting at ``at``."""
    cv2.putText(image, words, point(at), FONT, scale, color, thickness, _line_type(smooth))


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1


def _overlaps(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def label(
    image: np.ndarray,
    words: str,
    at: tuple[int, int],
    color: Color,
    scale: float,
    thickness: int,
    below: bool = False,
    taken: list[Rect] | None = None,
) -> None:
    """``words`` on a filled box of ``color``, above ``at`` (below it when asked, or when
    there is no room above); kept inside the picture's width. With ``taken`` (the boxes of
    labels drawn before), the box moves down until it covers none of them, and is added."""
    (tw, th), base = cv2.getTextSize(words, FONT, scale, thickness)
    x = min(max(at[0], 0), max(image.shape[1] - tw - 4, 0))
    top = at[1] if below or at[1] - th - base - 4 < 0 else at[1] - th - base - 4
    height = th + base + 4
    if taken is not None:
        bottom = max(image.shape[0] - height, 0)
        for _ in range(len(taken) + 1):
            rect = (x, top, x + tw + 4, top + height)
            hit = next((r for r in taken if _overlaps(rect, r)), None)
            if hit is None or hit[3] > bottom:
                break
            top = hit[3]
        taken.append((x, top, x + tw + 4, top + height))
    cv2.rectangle(image, (x, top), (x + tw + 4, top + height), color, cv2.FILLED)
    ink = BLACK if sum(color) > 380 else WHITE  # dark text on a light fill
    text(image, words, (x + 2, top + th + 2), ink, scale, thickness)


def arrow(image: np.ndarray, start: Point, end: Point, color: Color, thickness: int) -> None:
    cv2.arrowedLine(image, point(start), point(end), color, thickness, cv2.LINE_AA, tipLength=0.3)
