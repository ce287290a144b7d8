"""Object lifecycle events: ``new`` when a track is confirmed, ``update`` when its zones or
label change, ``end`` when the track ends — each with the object's state before and after."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from edged.analytics.tracked import TrackedFrame
from edged.events import topics
from edged.events.event import Event


@dataclass(frozen=True, slots=True)
class ObjectState:
    track_id: int
    label: str
    score: float
    top_score: float
    box: list[float]
    zones: tuple[str, ...]
    first_seen: float
    last_seen: float
    first_media_ts: float
    last_media_ts: float

    def as_payload(self) -> dict[str, Any]:
        return {
            "track_id": self.track_id,
            "label": self.label,
            "score": round(self.score, 3),
            "top_score": round(self.top_score, 3),
            "box": self.box,
            "zones": list(self.zones),
            "first_seen": round(self.first_seen, 6),
            "last_seen": round(self.last_seen, 6),
            "duration_s": round(self.last_media_ts - self.first_media_ts, 3),
        }


class ObjectLifecycle:
    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.objects: dict[int, ObjectState] = {}

    def update(self, tf: TrackedFrame, zones_of: dict[int, tuple[str, ...]]) -> list[Event]:
        events: list[Event] = []
        objects = tf.objects
        assert objects.track_id is not None
        for i, tid in enumerate(objects.track_id.tolist()):
            score = float(objects.score[i])
            before = self.objects.get(tid)
            after = ObjectState(
                track_id=tid,
                label=tf.label(i),
                score=score,
                top_score=score if before is None else max(before.top_score, score),
                box=tf.box(i),
                zones=zones_of.get(tid, ()),
                first_seen=tf.wall_ts if before is None else before.first_seen,
                last_seen=tf.wall_ts,
                first_media_ts=tf.media_ts if before is None else before.first_media_ts,
                last_media_ts=tf.media_ts,
            )
            self.objects[tid] = after
            if before is None:
                events.append(self._event(tf, "new", None, after))
            elif before.zones != after.zones or before.label != after.label:
                events.append(self._event(tf, "update", before, after))
        for tid in tf.ended:
            if tid in self.objects:
                last = self.objects.pop(tid)
                events.append(self._event(tf, "end", last, replace(last, zones=())))
        return events

    def _event(
        self, tf: TrackedFrame, kind: str, before: ObjectState | None, after: ObjectState
    ) -> Event:
        return Event(
            kind="object",
            camera=self.camera,
            topic=topics.camera_events(self.camera),
            payload={
                "type": kind,
                "before": None if before is None else before.as_payload(),
                "after": after.as_payload(),
            },
            frame_ts=tf.wall_ts,
        )
