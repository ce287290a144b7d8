"""Alerts: conditions with a start and an end (like Frigate's new/update/end), never a
stream of repeats."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from edged.core import topics
from edged.core.event import Event


@dataclass(slots=True)
class _Active:
    id: str
    started: float
    started_media: float
    details: dict[str, Any] = field(default_factory=dict)


class Alerts:
    """One camera's alerts, each keyed by (kind, subject), e.g. ("low_stock", "slot-2").

    ``update(kind, subject, active, ...)`` is called every frame with the condition's current
    truth; it returns a ``start`` event when a condition becomes true and an ``end`` event (with
    the duration) when it stops, and nothing in between. Both carry the same alert ``id``.
    """

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.active: dict[tuple[str, str], _Active] = {}

    def update(
        self,
        kind: str,
        subject: str,
        active: bool,
        media_ts: float,
        wall_ts: float,
        details: dict[str, Any] | None = None,
    ) -> list[Event]:
        key = (kind, subject)
        current = self.active.get(key)
        if active and current is None:
            current = self.active[key] = _Active(
                str(uuid.uuid4()), wall_ts, media_ts, details or {}
            )
            return [self._event("start", kind, subject, current, wall_ts, media_ts)]
        if not active and current is not None:
            del self.active[key]
            if details:
                current.details.update(details)
            return [self._event("end", kind, subject, current, wall_ts, media_ts)]
        if active and current is not None and details:
            current.details.update(details)
        return []

    def end_all(self, media_ts: float, wall_ts: float) -> list[Event]:
        """End every active alert (the camera stopped)."""
        events: list[Event] = []
        for kind, subject in list(self.active):
            events += self.update(kind, subject, False, media_ts, wall_ts)
        return events

    def _event(
        self, state: str, kind: str, subject: str, a: _Active, wall_ts: float, media_ts: float
    ) -> Event:
        payload: dict[str, Any] = {
            "alert": kind,
            "subject": subject,
            "state": state,
            "alert_id": a.id,
            "started": round(a.started, 6),
            **a.details,
        }
        if state == "end":
            payload["ended"] = round(wall_ts, 6)
            payload["duration_s"] = round(media_ts - a.started_media, 3)
        return Event(
            kind="alert",
            camera=self.camera,
            topic=topics.alerts(self.camera, kind),
            payload=payload,
            frame_ts=wall_ts,
        )


class ActiveAlerts:
    """Per alert kind, the alerts of one camera that have started and not yet ended, followed
    from the alert events of all its ``Alerts`` (the zones' and the scene's each keep their
    own). A change of a kind's set gives an ``alerts_active`` event, retained on
    ``<camera>/alerts/<kind>/active``: an alert message tells how one alert went, so whoever
    shows the latest (Home Assistant's problem sensor did) shows "off" when one of three
    speeding vehicles is gone."""

    def __init__(self, camera: str, kinds: Iterable[str]) -> None:
        self.camera = camera
        # kind -> alert_id -> the start event's payload
        self.open: dict[str, dict[str, dict[str, Any]]] = {}
        self._unstated: set[str] = set()
        self.expect(kinds)

    def expect(self, kinds: Iterable[str]) -> None:
        """The kinds the camera can raise: each one new here is stated (0 active) with the next
        events, replacing what an earlier run left retained (it may have died mid-alert)."""
        for kind in kinds:
            if kind not in self.open:
                self.open[kind] = {}
                self._unstated.add(kind)

    def follow(self, events: list[Event]) -> list[Event]:
        """``events`` and after them the new state of each kind their alerts changed."""
        changed, self._unstated = self._unstated, set()
        frame_ts: dict[str, float | None] = {}
        for e in events:
            if e.kind != "alert":
                continue
            p = e.payload
            kind = p["alert"]
            alerts = self.open.setdefault(kind, {})
            if p["state"] == "start":
                alerts[p["alert_id"]] = p
            else:
                alerts.pop(p["alert_id"], None)
            changed.add(kind)
            frame_ts[kind] = e.frame_ts
        return events + [self._state(kind, frame_ts.get(kind)) for kind in sorted(changed)]

    def _state(self, kind: str, frame_ts: float | None) -> Event:
        alerts = self.open[kind]
        return Event(
            kind="alerts_active",
            camera=self.camera,
            topic=topics.alerts_active(self.camera, kind),
            payload={
                "alert": kind,
                "active": len(alerts),
                "alerts": [
                    {"alert_id": a["alert_id"], "subject": a["subject"], "started": a["started"]}
                    for a in sorted(alerts.values(), key=lambda a: (a["started"], a["subject"]))
                ],
            },
            frame_ts=frame_ts,
            retain=True,
        )
