"""Surveillance: intrusion into restricted zones on a schedule, and how many are inside
according to the entrance lines. Loitering and crowding are the zones' own alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shapely.geometry.base import BaseGeometry

from edged.analytics.alerts import Alerts
from edged.analytics.tracked import TrackedFrame
from edged.config.camera import CameraConfig
from edged.config.errors import FieldError
from edged.config.scene_surveillance import DAYS, SurveillanceConfig, TimeWindow
from edged.core import topics
from edged.core.detections import class_ids
from edged.core.event import Event
from edged.core.frame import Frame


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def armed(windows: list[TimeWindow], when: datetime) -> bool:
    """Whether any window covers ``when`` (a local time)."""
    day = DAYS[when.weekday()]
    yesterday = DAYS[(when.weekday() - 1) % 7]
    now = when.hour * 60 + when.minute
    for w in windows:
        start, end = _minutes(w.start), _minutes(w.end)
        if start < end:
            if day in w.days and start <= now < end:
                return True
        elif (day in w.days and now >= start) or (yesterday in w.days and now < end):
            return True
    return False


class Surveillance:
    def __init__(
        self, camera: str, config: CameraConfig, labels: list[str], width: int, height: int
    ) -> None:
        scene = config.scene
        assert isinstance(scene, SurveillanceConfig)
        self.camera = camera
        self.config = scene
        self.labels = labels
        base = ("cameras", camera, "scene")
        for zone in scene.restricted:
            if zone not in config.zones:
                raise FieldError((*base, "restricted", zone), f"no zone named {zone!r}")
        for line in scene.entrances:
            if line not in config.lines:
                raise FieldError((*base, "entrances"), f"no line named {line!r}")
        self.classes = {
            zone: None if r.classes is None else set(r.classes)
            for zone, r in scene.restricted.items()
        }
        for zone, r in scene.restricted.items():
            try:
                class_ids(labels, r.classes)
            except ValueError as exc:
                raise FieldError((*base, "restricted", zone, "classes"), str(exc)) from None
        self.tz = ZoneInfo(scene.timezone) if scene.timezone else None
        self.alerts = Alerts(camera)
        self.inside: dict[str, dict[int, str]] = {zone: {} for zone in scene.restricted}
        self.entered = 0
        self.exited = 0

    def update(self, frame: Frame, tf: TrackedFrame, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        counted = False
        for e in events:
            p = e.payload
            if e.kind in ("zone_enter", "zone_exit") and p["zone"] in self.inside:
                members = self.inside[p["zone"]]
                wanted = self.classes[p["zone"]]
                if e.kind == "zone_exit":
                    members.pop(p["track_id"], None)
                elif wanted is None or p["label"] in wanted:
                    members[p["track_id"]] = p["label"]
            elif e.kind == "line_crossing" and p["line"] in self.config.entrances:
                counted = True
                if p["direction"] == "in":
                    self.entered += 1
                else:
                    self.exited += 1
        when = datetime.fromtimestamp(tf.wall_ts, self.tz)
        for zone, members in self.inside.items():
            on = armed(self.config.restricted[zone].schedule, when)
            details: dict[str, Any] = {"zone": zone}
            if members:
                details["objects"] = [
                    {"track_id": t, "label": label} for t, label in sorted(members.items())
                ]
            out += self.alerts.update(
                "intrusion", zone, on and bool(members), tf.media_ts, tf.wall_ts, details
            )
        if counted:
            out.append(
                Event(
                    kind="entrance_occupancy",
                    camera=self.camera,
                    topic=topics.scene(self.camera, "surveillance/occupancy"),
                    payload={
                        "inside": max(0, self.entered - self.exited),
                        "entered": self.entered,
                        "exited": self.exited,
                        "lines": self.config.entrances,
                    },
                    frame_ts=tf.wall_ts,
                    retain=True,
                )
            )
        return out

    def finish(self, tf: TrackedFrame) -> list[Event]:
        return self.alerts.end_all(tf.media_ts, tf.wall_ts)

    @property
    def regions(self) -> tuple[BaseGeometry, ...]:
        return ()  # its restricted zones and entrances are the camera's own

    @property
    def busy(self) -> bool:
        return False  # every alert it raises is about a tracked object
