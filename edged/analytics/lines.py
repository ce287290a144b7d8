"""Directional line counting per class."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString

from edged.analytics.tracked import TrackedFrame
from edged.core import topics
from edged.core.detections import Anchor
from edged.core.event import Event

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


def in_side(points: np.ndarray, in_dir: str) -> np.ndarray:
    """The unit normal of the line through ``points`` (2×2 pixels) that points to the side an
    object moves into when its crossing counts as ``in`` (``in_dir``: an image direction);
    ValueError when the line is parallel to ``in_dir``."""
    d = (points[1] - points[0]).astype(np.float64)
    normal = np.array([-d[1], d[0]])
    along = float(normal @ np.array(UNIT[in_dir]))
    if along == 0.0:
        raise ValueError(
            f"the line is parallel to its direction {in_dir!r}; nothing can cross it that way"
        )
    unit: np.ndarray = normal / np.hypot(*d)
    return unit if along > 0 else -unit


@dataclass(frozen=True, slots=True)
class LineRules:
    """``band_px``: an object counts as on a side only once its anchor is this far from the
    line (jitter and stopping on the line change nothing); ``cancel_s``: a crossing is
    confirmed after this long, and a crossing back before then cancels both (a box
    flickering across counts zero times, not twice); ``segment``: count only crossings of the
    drawn segment (False: of the infinite line through it)."""

    band_px: float = 0.0
    cancel_s: float = 0.0
    segment: bool = True


@dataclass(slots=True)
class _Crossing:
    track_id: int
    direction: str
    media_ts: float
    wall_ts: float
    label: str
    score: float
    box: list[float]


class Line:
    """Directional counting of confirmed tracks across a line, per class."""

    def __init__(
        self,
        camera: str,
        name: str,
        points: np.ndarray,
        anchor: Anchor,
        class_ids: np.ndarray | None,
        in_dir: str,
        rules: LineRules = LineRules(),
    ) -> None:
        self.camera = camera
        self.name = name
        self.anchor = anchor
        self.class_ids = class_ids
        self.rules = rules
        self.p0 = points[0].astype(np.float64)
        self.d = (points[1] - points[0]).astype(np.float64)
        self._length = float(np.hypot(*self.d))
        self.segment = LineString(points)
        shapely.prepare(self.segment)
        # a side is the sign of the distance along the normal (-d.y, d.x): ``in`` is the side
        # ``in_side`` points to
        normal = np.array([-self.d[1], self.d[0]])
        side = in_side(points, in_dir)
        self._in_sign = 1 if float(side @ normal) > 0 else -1
        self._in_side = (float(side[0]), float(side[1]))
        self._last: dict[int, tuple[np.ndarray, int]] = {}
        self._pending: dict[int, _Crossing] = {}
        self._in_band: dict[int, tuple[np.ndarray, int, _Crossing]] = {}
        self.totals: dict[str, dict[str, int]] = {"in": {}, "out": {}}
        self._published = False

    @property
    def in_side(self) -> tuple[float, float]:
        """The unit vector, in pixels, that an object moves along when it counts as ``in``."""
        return self._in_side

    @property
    def pending(self) -> bool:
        """A crossing waits for its cancel window to pass."""
        return bool(self._pending)

    def _sides(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The side of the line (+1 / −1, 0 on it) and the same with 0 within the band."""
        rel = pts.astype(np.float64) - self.p0
        dist = (self.d[0] * rel[:, 1] - self.d[1] * rel[:, 0]) / self._length
        raw = np.sign(dist).astype(np.int64)
        sides = raw.copy()
        sides[np.abs(dist) < max(self.rules.band_px, 1e-9)] = 0
        return raw, sides

    def update(self, tf: TrackedFrame) -> list[Event]:
        objects = tf.objects
        assert objects.track_id is not None
        keep = np.ones(len(objects), bool)
        if self.class_ids is not None:
            keep = np.isin(objects.class_id, self.class_ids)
        pts = objects.anchors(self.anchor)
        raw, sides = self._sides(pts)
        for i in np.flatnonzero(keep).tolist():
            tid = int(objects.track_id[i])
            if sides[i] == 0:
                # within the band: remembered in case the track ends here, past the line
                if raw[i] != 0:
                    self._in_band[tid] = (pts[i], int(raw[i]), self._crossing(tf, i, raw[i]))
                continue
            self._in_band.pop(tid, None)
            prev = self._last.get(tid)
            self._last[tid] = (pts[i], int(sides[i]))
            if prev is not None and prev[1] != sides[i]:
                self._cross(tid, prev[0], pts[i], self._crossing(tf, i, sides[i]))
        for tid in tf.ended:
            self._ended_in_band(tid)
        due = [
            tid
            for tid, c in self._pending.items()
            if tf.media_ts - c.media_ts >= self.rules.cancel_s or tid in tf.ended
        ]
        events = self._confirm(due, tf.wall_ts)
        for tid in tf.ended:
            self._last.pop(tid, None)
        return events

    def _crossing(self, tf: TrackedFrame, i: int, side: int) -> _Crossing:
        assert tf.objects.track_id is not None
        return _Crossing(
            int(tf.objects.track_id[i]),
            "in" if side == self._in_sign else "out",
            tf.media_ts,
            tf.wall_ts,
            tf.label(i),
            round(float(tf.objects.score[i]), 3),
            tf.box(i),
        )

    def _cross(self, tid: int, start: np.ndarray, end: np.ndarray, crossing: _Crossing) -> None:
        """A step from one side to the other: pending until ``cancel_s`` has passed."""
        # the step from the last point beyond the band to this one must pass the segment
        if self.rules.segment and not shapely.intersects(self.segment, LineString([start, end])):
            return
        pending = self._pending.pop(tid, None)
        if pending is not None and pending.direction != crossing.direction:
            return  # back across before it was confirmed: neither counts
        self._pending[tid] = crossing

    def _ended_in_band(self, tid: int) -> None:
        """A track that ends past the line but inside the band (a person through a door, out
        of the picture, lost behind another) has crossed: its last step counts."""
        near = self._in_band.pop(tid, None)
        prev = self._last.get(tid)
        if near is not None and prev is not None and near[1] != prev[1]:
            self._cross(tid, prev[0], near[0], near[2])

    def finish(self, tf: TrackedFrame) -> list[Event]:
        """The stream ended: every track ends, and crossings still waiting for their cancel
        window count."""
        for tid in list(self._in_band):
            self._ended_in_band(tid)
        return self._confirm(list(self._pending), tf.wall_ts)

    def _confirm(self, track_ids: list[int], wall_ts: float) -> list[Event]:
        events: list[Event] = []
        for tid in track_ids:
            c = self._pending.pop(tid)
            bucket = self.totals[c.direction]
            bucket[c.label] = bucket.get(c.label, 0) + 1
            events.append(
                Event(
                    kind="line_crossing",
                    camera=self.camera,
                    topic=topics.line(self.camera, self.name),
                    payload={
                        "line": self.name,
                        "direction": c.direction,
                        "track_id": c.track_id,
                        "label": c.label,
                        "score": c.score,
                        "box": c.box,
                    },
                    frame_ts=c.wall_ts,
                )
            )
        if events or not self._published:
            self._published = True
            events.append(self._totals(wall_ts))
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
