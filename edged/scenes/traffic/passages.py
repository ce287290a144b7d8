"""Lanes and passages: counts per lane and group, the passage summaries, the totals.

A *passage* is one vehicle's stay in one lane polygon (its anchor inside; brief excursions
shorter than ``exit_grace_s`` do not end it, the vehicle's end does). A vehicle is counted in
a lane once, the moment its passage has moved ``min_travel_m`` along the lane on the road
plane; the direction (``forward``: the lane's allowed direction, ``reverse``: against it) is
the sign of that movement. A stop-and-go vehicle is one track in one passage, so it is
counted once; jitter near a lane edge cannot re-count it (one count per vehicle and lane), and
short track fragments never reach ``min_travel_m``. Each lane's ``group`` (a road direction)
counts every vehicle once, even when it changes lanes. When the passage ends, one
``traffic_passage`` event reports its time in the lane, distance, and mean and max speed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon

from edged.analytics.lines import UNIT
from edged.analytics.speed import Homography, Motion, convert, to_mps
from edged.analytics.tracked import TrackedFrame
from edged.config.errors import FieldError
from edged.config.geometry import to_pixels
from edged.config.scene_traffic import TrafficConfig
from edged.core import topics
from edged.core.event import Event
from edged.scenes.traffic.state import Lane, Passage, PassageAlerts, Vehicle


def make_lanes(
    scene: TrafficConfig, homography: Homography, width: int, height: int, base: tuple[str, ...]
) -> dict[str, Lane]:
    """The scene's lanes in pixels, each with its direction on the road plane."""
    lanes: dict[str, Lane] = {}
    for name, lane in scene.lanes.items():
        pts = to_pixels(lane.polygon, width, height)
        poly = Polygon(pts)
        shapely.prepare(poly)
        image_dir = (
            np.array(UNIT[lane.direction])
            if isinstance(lane.direction, str)
            else np.array(lane.direction, np.float64)
        )
        centre = np.array(poly.representative_point().coords[0])
        if not homography.on_road(centre[None])[0]:
            raise FieldError(
                (*base, "lanes", name, "polygon"), "the lane lies above the road's horizon"
            )
        try:
            ground_dir = homography.ground_direction(centre, image_dir)
        except ValueError as exc:
            raise FieldError((*base, "lanes", name, "direction"), str(exc)) from None
        limit = lane.speed_limit if lane.speed_limit is not None else scene.speed_limit
        lanes[name] = Lane(
            name,
            poly,
            ground_dir,
            lane.direction if isinstance(lane.direction, str) else list(lane.direction),
            lane.group or name,
            None if limit is None else to_mps(limit, scene.unit),
        )
    return lanes


class Passages:
    def __init__(
        self,
        camera: str,
        config: TrafficConfig,
        lanes: dict[str, Lane],
        new_alerts: Callable[[], PassageAlerts],
    ) -> None:
        """``new_alerts``: the alert states a new passage starts with."""
        self.camera = camera
        self.config = config
        self.lanes = lanes
        self.new_alerts = new_alerts
        self.open: dict[tuple[int, str], Passage] = {}  # (vehicle id, lane) → its passage
        self.groups: dict[str, dict[str, dict[str, int]]] = {
            lane.group: {"forward": {}, "reverse": {}} for lane in lanes.values()
        }
        self.published = False  # the totals, at least once

    def inside(self, vid: int, lane: Lane, s: float, tf: TrackedFrame) -> Passage:
        """The vehicle is in the lane at ``s`` metres along it: its passage, opened if new."""
        now = tf.media_ts
        p = self.open.get((vid, lane.name))
        if p is None:
            p = self.open[(vid, lane.name)] = Passage(
                lane.name,
                vid,
                now,
                tf.wall_ts,
                s,
                s,
                now,
                self.new_alerts(),
                s_max=s,
                t_s_max=now,
                s_low=s,
            )
        p.outside_since = None
        p.s = s
        p.last_seen = now
        return p

    def outside(self, vid: int, lane: str, now: float) -> None:
        """The vehicle is seen outside the lane: its passage there ends after the grace."""
        p = self.open.get((vid, lane))
        if p is not None and p.outside_since is None:
            p.outside_since = now

    def observe(
        self, tf: TrackedFrame, lane: Lane, v: Vehicle, p: Passage, motion: Motion | None
    ) -> list[Event]:
        """Count the passage once it has moved ``min_travel_m``; follow its speeds."""
        now = tf.media_ts
        out: list[Event] = []
        travel = p.s - p.s_first
        if not p.qualified and abs(travel) >= self.config.min_travel_m:
            p.qualified = True
            out += self._count(tf, lane, v, p, "forward" if travel > 0 else "reverse")
        if motion is not None:
            if p.speed_ts is not None:
                dt = now - p.speed_ts
                p.speed_sum += motion.speed * dt
                p.speed_time += dt
            p.speed = motion.speed
            p.v_along = float(np.dot(motion.velocity, lane.direction))
            p.speed_ts = now
            p.speed_max = max(p.speed_max, motion.speed)
        return out

    def _count(
        self, tf: TrackedFrame, lane: Lane, v: Vehicle, p: Passage, direction: str
    ) -> list[Event]:
        """Count the vehicle in the lane (once per vehicle and lane) and in the lane's group
        (once per vehicle and group)."""
        if lane.name in v.counted_lanes:
            return []  # counted in this lane on an earlier passage
        v.counted_lanes.add(lane.name)
        p.counted, p.label = direction, v.label
        bucket = lane.counts[direction]
        bucket[p.label] = bucket.get(p.label, 0) + 1
        if lane.group not in v.counted_groups:
            v.counted_groups.add(lane.group)
            bucket = self.groups[lane.group][direction]
            bucket[p.label] = bucket.get(p.label, 0) + 1
        return [self.totals(tf.wall_ts)]

    def left(self, now: float) -> list[Passage]:
        """Passages whose vehicle has been outside the lane longer than ``exit_grace_s``."""
        grace = self.config.exit_grace_s
        return [
            p
            for p in self.open.values()
            if p.outside_since is not None and now - p.outside_since > grace
        ]

    def of_vehicle(self, vid: int) -> list[Passage]:
        return [p for name in self.lanes if (p := self.open.get((vid, name))) is not None]

    def present(self, lane: str) -> list[Passage]:
        """The passages whose vehicle is in the lane now."""
        return [p for p in self.open.values() if p.lane == lane and p.outside_since is None]

    def hand_over(self, keep: int, gone: int) -> None:
        """Vehicle ``gone`` is ``keep`` (its passages' alerts already ended): a passage of
        ``gone`` in a lane where ``keep`` has none becomes ``keep``'s; where ``keep`` has one,
        a count made by ``gone`` first is the count of ``keep``'s."""
        for name in self.lanes:
            p = self.open.pop((gone, name), None)
            if p is None:
                continue
            kept = self.open.get((keep, name))
            if kept is None:
                p.vid = keep
                self.open[(keep, name)] = p
            elif p.counted is not None and kept.counted is None:
                kept.qualified, kept.counted, kept.label = True, p.counted, p.label

    def close(self, tf: TrackedFrame, p: Passage, reason: str, v: Vehicle | None) -> Event:
        """The passage ended: its summary."""
        del self.open[(p.vid, p.lane)]
        unit = self.config.unit
        label = p.label or (v.label if v is not None else None)
        mean = p.speed_sum / p.speed_time if p.speed_time > 0 else p.speed
        payload: dict[str, Any] = {
            "lane": p.lane,
            "group": self.lanes[p.lane].group,
            "track_id": p.vid,
            "label": label,
            "counted": p.counted is not None,
            "direction": p.counted or ("forward" if p.s >= p.s_first else "reverse"),
            "reason": reason,
            "entered": round(p.entered_wall, 6),
            "duration_s": round(p.last_seen - p.entered, 3),
            "distance_m": round(abs(p.s - p.s_first), 2),
            "unit": unit,
            "mean_speed": None if mean is None else round(convert(mean, unit), 1),
            "max_speed": None if p.speed is None else round(convert(p.speed_max, unit), 1),
        }
        if v is not None and len(v.history) > 1:
            payload["track_ids"] = sorted(v.history)
        return Event(
            kind="traffic_passage",
            camera=self.camera,
            topic=topics.scene(self.camera, f"traffic/lanes/{p.lane}"),
            payload=payload,
            frame_ts=tf.wall_ts,
        )

    def totals(self, wall_ts: float) -> Event:
        self.published = True
        lanes = {
            name: {
                "group": lane.group,
                "direction": lane.named,
                "forward": dict(sorted(lane.counts["forward"].items())),
                "reverse": dict(sorted(lane.counts["reverse"].items())),
                "total": sum(sum(c.values()) for c in lane.counts.values()),
            }
            for name, lane in self.lanes.items()
        }
        groups = {
            name: {
                "forward": dict(sorted(g["forward"].items())),
                "reverse": dict(sorted(g["reverse"].items())),
                "total": sum(sum(c.values()) for c in g.values()),
            }
            for name, g in self.groups.items()
        }
        return Event(
            kind="traffic_totals",
            camera=self.camera,
            topic=topics.scene(self.camera, "traffic/totals"),
            payload={"lanes": lanes, "groups": groups},
            frame_ts=wall_ts,
            retain=True,
        )
