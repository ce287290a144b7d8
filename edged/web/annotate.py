"""Draws what a camera's analytics see onto a copy of its frame: boxes with track ids and
labels, zones with their occupancy, lines with their counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from edged.analytics.tracked import TrackedFrame

# BGR; zones and lines in colours no track gets
ZONE = (255, 0, 255)
LINE = (0, 255, 255)
TEXT = (255, 255, 255)
PALETTE = [
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
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True, slots=True)
class ZoneView:
    name: str
    polygon: np.ndarray  # N×2 pixels
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class LineView:
    name: str
    p0: tuple[float, float]
    p1: tuple[float, float]
    totals_in: int
    totals_out: int


def annotate(
    image: np.ndarray,
    tracked: TrackedFrame,
    zones: Sequence[ZoneView] = (),
    lines: Sequence[LineView] = (),
    header: str = "",
) -> np.ndarray:
    """A new picture; ``image`` is left as it is (the pipeline may still hold it)."""
    out = image.copy()
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 300))
    scale = max(0.4, min(h, w) / 1100)
    if zones:
        shade = out.copy()
        for zone in zones:
            cv2.fillPoly(shade, [_int(zone.polygon)], ZONE)
        cv2.addWeighted(shade, 0.2, out, 0.8, 0, dst=out)
    for zone in zones:
        pts = _int(zone.polygon)
        cv2.polylines(out, [pts], True, ZONE, thick + 1, cv2.LINE_AA)
        occupancy = ", ".join(f"{n} {label}" for label, n in zone.counts.items()) or "empty"
        x, y = zone.polygon.min(axis=0)
        _label(out, f"{zone.name}: {occupancy}", (int(x), int(y)), ZONE, scale, thick)
    for line in lines:
        p0 = (round(line.p0[0]), round(line.p0[1]))
        p1 = (round(line.p1[0]), round(line.p1[1]))
        cv2.line(out, p0, p1, LINE, thick + 1, cv2.LINE_AA)
        mid = ((p0[0] + p1[0]) // 2, (p0[1] + p1[1]) // 2)
        text = f"{line.name}: in {line.totals_in} out {line.totals_out}"
        _label(out, text, mid, LINE, scale, thick)
    objects = tracked.objects
    for i in range(len(objects)):
        x1, y1, x2, y2 = (round(float(v)) for v in objects.xyxy[i])
        tid = -1 if objects.track_id is None else int(objects.track_id[i])
        color = PALETTE[tid % len(PALETTE)]
        cv2.rectangle(out, (x1, y1), (x2, y2), color, thick, cv2.LINE_AA)
        text = f"#{tid} {tracked.label(i)} {float(objects.score[i]):.2f}"
        _label(out, text, (x1, y1), color, scale, thick)
    if header:
        _label(out, header, (0, 0), (40, 40, 40), scale, thick, below=True)
    return out


def _int(points: np.ndarray) -> np.ndarray:
    return np.round(points).astype(np.int32).reshape(-1, 1, 2)


def _label(
    out: np.ndarray,
    text: str,
    at: tuple[int, int],
    color: tuple[int, int, int],
    scale: float,
    thick: int,
    below: bool = False,
) -> None:
    """Text on a filled box of ``color``, above ``at`` (below it when there is no room)."""
    (tw, th), base = cv2.getTextSize(text, FONT, scale, thick)
    x = min(max(at[0], 0), max(out.shape[1] - tw - 4, 0))
    top = at[1] if below or at[1] - th - base - 4 < 0 else at[1] - th - base - 4
    cv2.rectangle(out, (x, top), (x + tw + 4, top + th + base + 4), color, cv2.FILLED)
    dark = sum(color) > 380  # light fill: dark text
    cv2.putText(
        out,
        text,
        (x + 2, top + th + 2),
        FONT,
        scale,
        (0, 0, 0) if dark else TEXT,
        thick,
        cv2.LINE_AA,
    )
