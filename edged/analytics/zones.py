"""Polygon zones: who is inside, enter and exit, occupancy per class, loitering and crowding
alerts, queue length and wait, and the share covered by people."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
import shapely
from shapely.geometry import Polygon

from edged.analytics.alerts import Alerts
from edged.analytics.tracked import TrackedFrame
from edged.config.camera import ZoneConfig
from edged.core import topics
from edged.core.event import Event
from edged.core.hold import Hold
from edged.core.masks import PersonMask


@dataclass(slots=True)
class _Visit:
    label: str
    entered: float
    stay: Hold[bool]  # inside since it entered: an entry once that has lasted min_stay_s

    @property
    def confirmed(self) -> bool:
        return bool(self.stay.state)


QUEUE_HISTORY = 10


class Zone:
    """Membership is by track id, so an object hidden for a frame stays inside until it is
    seen outside or its track ends: no exit/enter flicker under brief occlusion. Durations
    are measured on the frames' media time, never by counting frames."""

    def __init__(
        self,
        camera: str,
        name: str,
        polygon: np.ndarray,
        config: ZoneConfig,
        class_ids: np.ndarray | None,
        alerts: Alerts | None = None,
        ratio: tuple[float, float] | None = None,
    ) -> None:
        """``polygon`` is ``config.polygon`` in pixels of the picture; ``config`` gives the
        anchor and the rules beyond membership (``min_stay_s``, ``loiter_s``,
        ``crowd_threshold``, ``queue``); ``ratio``: (person probability threshold, smallest
        change worth reporting) to report the share of the zone covered by people."""
        self.camera = camera
        self.name = name
        self.polygon = Polygon(polygon)
        shapely.prepare(self.polygon)
        self.anchor = config.anchor
        self.class_ids = class_ids
        self.rules = config
        self.alerts = alerts or Alerts(camera)
        self.members: dict[int, _Visit] = {}
        self._published: dict[str, object] | None = None
        self.ratio = ratio
        self._points = np.asarray(polygon, np.float64)
        self._ratio_mask: np.ndarray | None = None
        self._published_ratio: float | None = None
        self._stays: deque[float] = deque(maxlen=QUEUE_HISTORY)

    @property
    def inside(self) -> list[int]:
        """Track ids that have entered (stayed at least ``min_stay_s``)."""
        return [tid for tid, v in self.members.items() if v.confirmed]

    def update(self, tf: TrackedFrame) -> list[Event]:
        left = self._move(tf)
        events = self._entries(tf) + self._exits(tf, left)
        events += self._loitering(tf, left)
        counts = self.counts()
        events += self._crowding(tf, sum(counts.values()))
        events += self._occupancy(tf, counts)
        return events

    # -- membership: who is inside, entries, exits, stays ------------------------------

    def _move(self, tf: TrackedFrame) -> list[tuple[int, _Visit, int | None]]:
        """Visits start and end by where the objects are; the ones that ended (with the
        object's index in this frame, None for ended tracks)."""
        objects = tf.objects
        assert objects.track_id is not None
        pts = objects.anchors(self.anchor)
        inside = shapely.contains_xy(self.polygon, pts[:, 0], pts[:, 1])
        if self.class_ids is not None:
            inside &= np.isin(objects.class_id, self.class_ids)
        left: list[tuple[int, _Visit, int | None]] = []
        for i, tid in enumerate(objects.track_id.tolist()):
            if inside[i] and tid not in self.members:
                stay = Hold(self.rules.min_stay_s, state=False)
                self.members[tid] = _Visit(tf.label(i), tf.media_ts, stay)
            elif not inside[i] and tid in self.members:
                left.append((tid, self.members.pop(tid), i))
        left += [(tid, self.members.pop(tid), None) for tid in tf.ended if tid in self.members]
        return left

    def _entries(self, tf: TrackedFrame) -> list[Event]:
        events: list[Event] = []
        track_ids = tf.objects.track_id
        assert track_ids is not None
        for tid, visit in self.members.items():
            if not visit.confirmed and visit.stay.update(True, tf.media_ts):
                events.append(self._event(tf, "zone_enter", tid, visit, _index(track_ids, tid)))
        return events

    def _exits(self, tf: TrackedFrame, left: list[tuple[int, _Visit, int | None]]) -> list[Event]:
        events: list[Event] = []
        for tid, visit, i in left:
            if visit.confirmed:  # a shorter visit never counted as an entry
                events.append(self._event(tf, "zone_exit", tid, visit, i))
                self._stays.append(tf.media_ts - visit.entered)
        return events

    # -- alert rules ---------------------------------------------------------------------

    def _loitering(
        self, tf: TrackedFrame, left: list[tuple[int, _Visit, int | None]]
    ) -> list[Event]:
        loiter_s = self.rules.loiter_s
        if loiter_s is None:
            return []
        events: list[Event] = []
        for tid, visit in self.members.items():
            long = visit.confirmed and tf.media_ts - visit.entered >= loiter_s
            events += self.alerts.update(
                "loitering",
                f"{self.name}/{tid}",
                long,
                tf.media_ts,
                tf.wall_ts,
                {"zone": self.name, "track_id": tid, "label": visit.label},
            )
        for tid, visit, _ in left:
            events += self.alerts.update(
                "loitering",
                f"{self.name}/{tid}",
                False,
                tf.media_ts,
                tf.wall_ts,
                {"dwell_s": round(tf.media_ts - visit.entered, 3)},
            )
        return events

    def _crowding(self, tf: TrackedFrame, total: int) -> list[Event]:
        threshold = self.rules.crowd_threshold
        if threshold is None:
            return []
        return self.alerts.update(
            "crowding",
            self.name,
            total >= threshold,
            tf.media_ts,
            tf.wall_ts,
            {"zone": self.name, "threshold": threshold, "count": total},
        )

    # -- occupancy -----------------------------------------------------------------------

    def _occupancy(self, tf: TrackedFrame, counts: dict[str, int]) -> list[Event]:
        """A retained ``zone_occupancy`` when the counts changed or the covered share moved
        by at least the smallest change worth reporting."""
        ratio = self._covered(tf.people) if self.ratio is not None and tf.people else None
        moved = (
            ratio is not None
            and self.ratio is not None
            and (
                self._published_ratio is None or abs(ratio - self._published_ratio) >= self.ratio[1]
            )
        )
        if counts == self._published and not moved:
            return []
        self._published = dict(counts)
        total = sum(counts.values())
        payload: dict[str, object] = {"zone": self.name, "counts": counts, "total": total}
        if ratio is not None:
            self._published_ratio = ratio
        if self._published_ratio is not None:
            # a frame without a mask (the stream's end) keeps the last measured ratio
            payload["ratio"] = round(self._published_ratio, 3)
        if self.rules.queue:
            wait = sum(self._stays) / len(self._stays) if self._stays else None
            payload["queue"] = {
                "length": total,
                "wait_s": None if wait is None else round(wait, 1),
                "from_exits": len(self._stays),
            }
        return [
            Event(
                kind="zone_occupancy",
                camera=self.camera,
                topic=topics.zone_occupancy(self.camera, self.name),
                payload=payload,
                frame_ts=tf.wall_ts,
                retain=True,
            )
        ]

    def _covered(self, people: PersonMask) -> float:
        """Share of the zone's area where a person is, at the segmenter's resolution."""
        assert self.ratio is not None
        prob = people.prob
        if self._ratio_mask is None or self._ratio_mask.shape != prob.shape:
            g = people.geometry
            pts = self._points * np.array(g.scale) + np.array(g.pad)
            mask = np.zeros(prob.shape, np.uint8)
            cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 1)
            self._ratio_mask = mask.astype(bool)
        area = int(self._ratio_mask.sum())
        if area == 0:
            return 0.0
        return float((people.covered(self.ratio[0]) & self._ratio_mask).sum()) / area

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        # a copy: the debug view reads this from another thread while members change
        for visit in list(self.members.values()):
            if visit.confirmed:
                out[visit.label] = out.get(visit.label, 0) + 1
        return dict(sorted(out.items()))

    def _event(self, tf: TrackedFrame, kind: str, tid: int, visit: _Visit, i: int | None) -> Event:
        payload: dict[str, object] = {
            "zone": self.name,
            "track_id": tid,
            "label": visit.label,
            "dwell_s": round(tf.media_ts - visit.entered, 3),
        }
        if i is not None:
            payload["box"] = tf.box(i)
            payload["score"] = round(float(tf.objects.score[i]), 3)
        return Event(
            kind=kind,
            camera=self.camera,
            topic=topics.zone(self.camera, self.name),
            payload=payload,
            frame_ts=tf.wall_ts,
        )


def _index(track_ids: np.ndarray, tid: int) -> int | None:
    hit = np.flatnonzero(track_ids == tid)
    return int(hit[0]) if len(hit) else None
