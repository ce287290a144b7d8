"""Directional line counting per class."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry import LineString

from edged.analytics.tracked import TrackedFrame
from edged.detections import Anchor
from edged.events import topics
from edged.events.event import Event

UNIT = {
    "left_to_right": (1.0, 0.0),
    "right_to_left": (-1.0, 0.0),
    "top_to_bottom": (0.0, 1.0),
    "bottom_to_top": (0.0, -1.0),
}
OPPOSITE = {
    "left_to_right": "right_to_left",
    "right_to_left": "left_to_right",
    "top_to_bottom": "bottom_to_top",
    "bottom_to_top": "top_to_bottom",
}


def in_direction(points: np.ndarray, in_dir: str | None, out_dir: str | None) -> str:
    """The image direction that counts as ``in``; defaults follow the line's orientation."""
    if in_dir is not None and out_dir is not None and OPPOSITE[in_dir] != out_dir:
        raise ValueError(f"'in' ({in_dir}) and 'out' ({out_dir}) must be opposite directions")
    if in_dir is not None:
        return in_dir
    if out_dir is not None:
        return OPPOSITE[out_dir]
    dx, dy = np.abs(points[1] - points[0])
    return "left_to_right" if dy >= dx else "top_to_bottom"


class Line:
    """Counts confirmed tracks whose anchor moves from one side of the segment to the other,
    and whose step between two frames actually crosses the segment (not its extension)."""

    def __init__(
        self,
        camera: str,
        name: str,
        points: np.ndarray,
        anchor: Anchor,
        class_ids: np.ndarray | None,
        in_dir: str,
    ) -> None:
        self.camera = camera
        self.name = name
        self.anchor = anchor
        self.class_ids = class_ids
        self.p0 = points[0].astype(np.float64)
        self.d = (points[1] - points[0]).astype(np.float64)
        self.segment = LineString(points)
        shapely.prepare(self.segment)
        normal = np.array([-self.d[1], self.d[0]])
        along = float(normal @ np.array(UNIT[in_dir]))
        if along == 0.0:
            raise ValueError(
                f"the line is parallel to its direction {in_dir!r}; nothing can cross it that way"
            )
        # crossing from the negative to the positive side moves along ``normal``
        self._in_sign = 1 if along > 0 else -1
        self._last: dict[int, tuple[np.ndarray, int]] = {}
        self.totals: dict[str, dict[str, int]] = {"in": {}, "out": {}}
        self._published = False

    def _sides(self, pts: np.ndarray) -> np.ndarray:
        rel = pts.astype(np.float64) - self.p0
        return np.sign(self.d[0] * rel[:, 1] - self.d[1] * rel[:, 0]).astype(np.int64)

    def update(self, tf: TrackedFrame) -> list[Event]:
        events: list[Event] = []
        objects = tf.objects
        assert objects.track_id is not None
        keep = np.ones(len(objects), bool)
        if self.class_ids is not None:
            keep = np.isin(objects.class_id, self.class_ids)
        pts = objects.anchors(self.anchor)
        sides = self._sides(pts)
        crossed: list[int] = []
        for i in np.flatnonzero(keep).tolist():
            tid = int(objects.track_id[i])
            prev = self._last.get(tid)
            if sides[i] == 0:
                continue
            if prev is not None and prev[1] != sides[i]:
                step = LineString([prev[0], pts[i]])
                if shapely.intersects(self.segment, step):
                    crossed.append(i)
            self._last[tid] = (pts[i], int(sides[i]))
        for tid in tf.ended:
            self._last.pop(tid, None)
        for i in crossed:
            direction = "in" if sides[i] == self._in_sign else "out"
            label = tf.label(i)
            bucket = self.totals[direction]
            bucket[label] = bucket.get(label, 0) + 1
            events.append(
                Event(
                    kind="line_crossing",
                    camera=self.camera,
                    topic=topics.line(self.camera, self.name),
                    payload={
                        "line": self.name,
                        "direction": direction,
                        "track_id": int(objects.track_id[i]),  # type: ignore[index]
                        "label": label,
                        "score": round(float(objects.score[i]), 3),
                        "box": tf.box(i),
                    },
                    frame_ts=tf.wall_ts,
                )
            )
        if crossed or not self._published:
            self._published = True
            events.append(self._totals(tf.wall_ts))
        return events

    def _totals(self, wall_ts: float) -> Event:
        return Event(
            kind="line_totals",
            camera=self.camera,
            topic=topics.line_totals(self.camera, self.name),
            payload={
                "line": self.name,
                "in": dict(sorted(self.totals["in"].items())),
                "out": dict(sorted(self.totals["out"].items())),
                "in_total": sum(self.totals["in"].values()),
                "out_total": sum(self.totals["out"].values()),
            },
            frame_ts=wall_ts,
            retain=True,
        )
