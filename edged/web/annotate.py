"""Draws what a camera's analytics see onto a copy of its frame: boxes with track ids and
labels, zones with their occupancy, lines with their counts and an arrow to their ``in`` side;
labels are moved so that none covers another."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from edged.analytics.tracked import TrackedFrame
from edged.core import draw

# BGR; zones and lines in colours no track gets
ZONE = (255, 0, 255)
LINE = (0, 255, 255)
HEADER = (40, 40, 40)


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
    in_side: tuple[float, float]  # unit vector: where an object goes when it counts as in


@dataclass(frozen=True, slots=True)
class Layers:
    """What the picture shows (the console's overlay toggles)."""

    boxes: bool = True
    zones: bool = True
    lines: bool = True


EVERYTHING = Layers()


def annotate(
    image: np.ndarray,
    tracked: TrackedFrame,
    zones: Sequence[ZoneView] = (),
    lines: Sequence[LineView] = (),
    header: str = "",
    layers: Layers = EVERYTHING,
) -> np.ndarray:
    """A new picture; ``image`` is left as it is (the pipeline may still hold it)."""
    out = image.copy()
    h, w = out.shape[:2]
    thick = max(1, round(min(h, w) / 300))
    scale = max(0.4, min(h, w) / 1100)
    taken: list[draw.Rect] = []
    if header:
        draw.label(out, header, (0, 0), HEADER, scale, thick, below=True, taken=taken)
    zones = zones if layers.zones else ()
    lines = lines if layers.lines else ()
    if zones:
        draw.shade(out, [zone.polygon for zone in zones], ZONE, 0.2)
    for zone in zones:
        draw.polygon(out, zone.polygon, ZONE, thick + 1)
        occupancy = ", ".join(f"{n} {label}" for label, n in zone.counts.items()) or "empty"
        x, y = zone.polygon.min(axis=0)
        at = (int(x), int(y))
        draw.label(out, f"{zone.name}: {occupancy}", at, ZONE, scale, thick, taken=taken)
    for line in lines:
        p0, p1 = draw.point(line.p0), draw.point(line.p1)
        draw.line(out, p0, p1, LINE, thick + 1)
        mid = ((p0[0] + p1[0]) // 2, (p0[1] + p1[1]) // 2)
        reach = max(12.0, min(h, w) / 12)
        tip = (mid[0] + line.in_side[0] * reach, mid[1] + line.in_side[1] * reach)
        draw.arrow(out, mid, tip, LINE, thick + 1)
        text = f"{line.name}: in {line.totals_in} out {line.totals_out}"
        # a quarter along, clear of the arrow at the middle
        at = ((3 * p0[0] + p1[0]) // 4, (3 * p0[1] + p1[1]) // 4)
        draw.label(out, text, at, LINE, scale, thick, taken=taken)
    objects = tracked.objects
    for i in range(len(objects) if layers.boxes else 0):
        tid = -1 if objects.track_id is None else int(objects.track_id[i])
        color = draw.track_color(tid)
        draw.box(out, objects.xyxy[i], color, thick)
        text = f"#{tid} {tracked.label(i)} {float(objects.score[i]):.2f}"
        at = draw.point(objects.xyxy[i][:2])
        draw.label(out, text, at, color, scale, thick, taken=taken)
    return out
