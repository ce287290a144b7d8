"""Object lifecycle events: ``new`` when a track is confirmed, ``update`` on a significant
change, ``end`` when the track ends — each with the object's state as last sent (``before``)
and now (``after``).

Updates are coalesced per object: a zone change is sent at once; a label change (the track's
voted label, ``edged.tracking``), a better score (a better snapshot) or a heartbeat waits
``min_interval_s`` after the object's previous event.
The frame-to-frame jitter of boxes and scores is never an event."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from edged.analytics.tracked import TrackedFrame
from edged.config.events import ObjectUpdatesConfig
from edged.core import topics
from edged.core.event import Event


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


@dataclass(frozen=True, slots=True)
class _Sent:
    state: ObjectState
    media_ts: float


class ObjectLifecycle:
    def __init__(self, camera: str, updates: ObjectUpdatesConfig | None = None) -> None:
        self.camera = camera
        self.rules = updates or ObjectUpdatesConfig()
        self.objects: dict[int, ObjectState] = {}
        self._sent: dict[int, _Sent] = {}

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
                self._sent[tid] = _Sent(after, tf.media_ts)
                continue
            changed = self._changes(self._sent[tid], after, tf.media_ts)
            if changed:
                events.append(self._event(tf, "update", self._sent[tid].state, after, changed))
                self._sent[tid] = _Sent(after, tf.media_ts)
        for tid in tf.ended:
            if tid in self.objects:
                last = self.objects.pop(tid)
                self._sent.pop(tid, None)
                events.append(self._event(tf, "end", last, replace(last, zones=())))
        return events

    def _changes(self, sent: _Sent, now: ObjectState, media_ts: float) -> list[str]:
        r = self.rules
        soon = media_ts - sent.media_ts < r.min_interval_s
        changed = []
        if now.zones != sent.state.zones:
            changed.append("zones")
        # a label that changed and changed back within the interval was never an event
        if now.label != sent.state.label and (changed or not soon):
            changed.append("label")
        if changed:
            return changed
        if soon:
            return []
        if r.score_gain is not None and now.top_score >= sent.state.top_score + r.score_gain:
            return ["score"]
        if r.heartbeat_s is not None and media_ts - sent.media_ts >= r.heartbeat_s:
            return ["interval"]
        return []

    def _event(
        self,
        tf: TrackedFrame,
        kind: str,
        before: ObjectState | None,
        after: ObjectState,
        changed: list[str] | None = None,
    ) -> Event:
        payload: dict[str, Any] = {
            "type": kind,
            "before": None if before is None else before.as_payload(),
            "after": after.as_payload(),
        }
        if changed:
            payload["changed"] = changed
        return Event(
            kind="object",
            camera=self.camera,
            topic=topics.camera_events(self.camera),
            payload=payload,
            frame_ts=tf.wall_ts,
        )
