"""Traffic: per-lane vehicle counts by class and direction, speeds on the road plane, and
wrong-way, stopped-vehicle, congestion and speeding alerts.

Counting. A *passage* is one vehicle's stay in one lane polygon (its anchor inside; brief
excursions shorter than ``exit_grace_s`` do not end it, the track's end does). A vehicle is
counted in a lane once, the moment its passage has moved ``min_travel_m`` along the lane on
the road plane; the direction (``forward``: the lane's allowed direction, ``reverse``: against
it) is the sign of that movement. A stop-and-go vehicle is one track in one passage, so it is
counted once; jitter near a lane edge cannot re-count it (one count per vehicle and lane), and
short track fragments never reach ``min_travel_m``. Each lane's ``group`` (a road direction)
counts every vehicle once, even when it changes lanes. When the passage ends, one
``traffic_passage`` event reports its time in the lane, distance, and mean and max speed.

Vehicles. The detector may report one vehicle twice (a ``car`` box and a ``truck`` box); the
tracks of boxes that overlap by ``merge_iou`` for a few frames are merged into one vehicle,
whose label is the score-weighted vote of all its observations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon

from edged.analytics.alerts import Alerts
from edged.analytics.lines import UNIT
from edged.analytics.speed import Homography, Motion, TrackSpeeds, convert, to_mps
from edged.analytics.tracked import TrackedFrame, class_filter
from edged.config.camera import CameraConfig
from edged.config.errors import FieldError
from edged.config.geometry import to_pixels
from edged.config.scene_traffic import TrafficConfig
from edged.core import topics
from edged.core.event import Event
from edged.core.frame import Frame

MERGE_FRAMES = 3  # frames two tracks must overlap by merge_iou before they are one vehicle


@dataclass(slots=True)
class _Lane:
    name: str
    polygon: Polygon
    direction: np.ndarray  # unit vector on the road plane
    named: str | list[float]
    group: str
    limit_mps: float | None
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"forward": {}, "reverse": {}}
    )


@dataclass(slots=True)
class _Vehicle:
    vid: int  # the id of its first track: what payloads call the vehicle's track_id
    tracks: set[int]  # live tracks
    votes: dict[str, float] = field(default_factory=dict)
    counted_lanes: set[str] = field(default_factory=set)
    counted_groups: set[str] = field(default_factory=set)
    last_seen: float = 0.0
    history: set[int] = field(default_factory=set)  # every track it ever had

    @property
    def label(self) -> str:
        return max(self.votes.items(), key=lambda kv: kv[1])[0]


@dataclass(slots=True)
class _Passage:
    lane: str
    vid: int
    entered: float  # media time
    entered_wall: float
    s_first: float  # position along the lane (metres) when it entered
    s: float
    last_seen: float
    s_max: float = 0.0
    t_s_max: float = 0.0
    s_low: float = 0.0
    outside_since: float | None = None
    qualified: bool = False  # moved min_travel_m along the lane
    counted: str | None = None  # the direction it was counted in
    label: str | None = None  # the label it was counted as
    # speed statistics over the passage (m/s), time-weighted
    speed: float | None = None
    v_along: float | None = None  # m/s along the lane's direction
    speed_ts: float | None = None
    speed_sum: float = 0.0
    speed_time: float = 0.0
    speed_max: float = 0.0
    # alert states
    wrong_way: bool = False
    slow_since: float | None = None
    stopped: bool = False
    fast_since: float | None = None
    speeding: bool = False


@dataclass(slots=True)
class _Debounce:
    """A condition that must hold ``on_s`` to start and fail ``off_s`` to stop."""

    on_s: float
    off_s: float
    active: bool = False
    since: float | None = None  # when the raw condition last changed away from ``active``

    def update(self, raw: bool, now: float) -> bool:
        if raw == self.active:
            self.since = None
        elif self.since is None:
            self.since = now
        wait = self.off_s if self.active else self.on_s
        if self.since is not None and now - self.since >= wait:
            self.active = raw
            self.since = None
        return self.active


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of N×4 and M×4 boxes."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


class Traffic:
    def __init__(
        self, camera: str, config: CameraConfig, labels: list[str], width: int, height: int
    ) -> None:
        scene = config.scene
        assert isinstance(scene, TrafficConfig)
        self.camera = camera
        self.config = scene
        self.labels = labels
        base = ("cameras", camera, "scene")
        try:
            self.class_ids = class_filter(labels, scene.classes)
        except ValueError as exc:
            raise FieldError((*base, "classes"), str(exc)) from None
        cal = scene.calibration
        try:
            self.homography = Homography(
                to_pixels(cal.image, width, height), np.asarray(cal.ground, np.float64)
            )
        except ValueError as exc:
            raise FieldError((*base, "calibration"), str(exc)) from None
        self.unit = scene.unit
        self.speeds = TrackSpeeds(
            self.homography, width, height, scene.anchor, scene.speed_window_s
        )
        self.lanes: dict[str, _Lane] = {}
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
            if not self.homography.on_road(centre[None])[0]:
                raise FieldError(
                    (*base, "lanes", name, "polygon"), "the lane lies above the road's horizon"
                )
            try:
                ground_dir = self.homography.ground_direction(centre, image_dir)
            except ValueError as exc:
                raise FieldError((*base, "lanes", name, "direction"), str(exc)) from None
            limit = lane.speed_limit if lane.speed_limit is not None else scene.speed_limit
            self.lanes[name] = _Lane(
                name,
                poly,
                ground_dir,
                lane.direction if isinstance(lane.direction, str) else list(lane.direction),
                lane.group or name,
                None if limit is None else to_mps(limit, self.unit),
            )
        self.groups: dict[str, dict[str, dict[str, int]]] = {
            lane.group: {"forward": {}, "reverse": {}} for lane in self.lanes.values()
        }
        self.alerts = Alerts(camera)
        self.vehicles: dict[int, _Vehicle] = {}
        self.vehicle_of: dict[int, int] = {}  # track id → vehicle id
        self.passages: dict[tuple[int, str], _Passage] = {}
        self.overlaps: dict[tuple[int, int], int] = {}
        c = scene.congestion
        self.congestion = (
            {name: _Debounce(c.after_s, c.clear_s) for name in self.lanes} if c is not None else {}
        )
        self._published = False

    # ---- per frame -------------------------------------------------------------------------

    def update(self, frame: Frame, tf: TrackedFrame, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        objects = tf.objects
        now = tf.media_ts
        vehicle = np.isin(objects.class_id, self.class_ids)
        ground = self.speeds.update(tf, vehicle)
        anchors = objects.anchors(self.config.anchor)
        tids = [] if objects.track_id is None else [int(t) for t in objects.track_id]
        idx = np.flatnonzero(vehicle & self.homography.on_road(anchors)).tolist()
        new: list[int] = []
        for i in idx:
            if tids[i] not in self.vehicle_of:
                self.vehicle_of[tids[i]] = tids[i]
                self.vehicles[tids[i]] = _Vehicle(
                    tids[i], {tids[i]}, last_seen=now, history={tids[i]}
                )
                new.append(tids[i])
        out += self._merge_duplicates(tf, idx, tids)
        # one observation per vehicle: its oldest track seen in this frame
        seen: dict[int, int] = {}
        for i in idx:
            v = self.vehicles[self.vehicle_of[tids[i]]]
            label = tf.label(i)
            v.votes[label] = v.votes.get(label, 0.0) + float(objects.score[i])
            if v.vid not in seen or tids[i] < tids[seen[v.vid]]:
                seen[v.vid] = i
        inside = {
            name: shapely.contains_xy(lane.polygon, anchors[:, 0], anchors[:, 1])
            for name, lane in self.lanes.items()
        }
        for vid in new:
            if vid in seen:
                out += self._stitch(tf, vid, seen, inside, ground)
        for vid, i in seen.items():
            v = self.vehicles[vid]
            v.last_seen = now
            motion = self._motion(v, tids[i])
            for name, lane in self.lanes.items():
                key = (vid, name)
                p = self.passages.get(key)
                if inside[name][i]:
                    s = float(ground[i] @ lane.direction)
                    if p is None:
                        p = self.passages[key] = _Passage(
                            name, vid, now, tf.wall_ts, s, s, now, s, now, s
                        )
                    p.outside_since = None
                    p.s = s
                    p.last_seen = now
                    out += self._observe(tf, lane, v, p, motion)
                elif p is not None and p.outside_since is None:
                    p.outside_since = now
        for p in list(self.passages.values()):
            if p.outside_since is not None and now - p.outside_since > self.config.exit_grace_s:
                out += self._close(tf, p, "left")
        out += self._ended(tf, tf.ended)
        out += self._congestion(tf)
        if not self._published:
            out.append(self._totals(tf.wall_ts))
        return out

    def finish(self, tf: TrackedFrame) -> list[Event]:
        """The stream ended: every passage closes, every alert ends."""
        out: list[Event] = []
        for p in list(self.passages.values()):
            out += self._close(tf, p, "stream_end")
        self.vehicles.clear()
        self.vehicle_of.clear()
        for name, d in self.congestion.items():
            d.active = False
            out += self.alerts.update("congestion", name, False, tf.media_ts, tf.wall_ts)
        out += self.alerts.end_all(tf.media_ts, tf.wall_ts)
        if not self._published:
            out.append(self._totals(tf.wall_ts))
        return out

    # ---- vehicles --------------------------------------------------------------------------

    def _motion(self, v: _Vehicle, tid: int) -> Motion | None:
        m = self.speeds.motion(tid)
        if m is not None:
            return m
        known = [mm for t in sorted(v.tracks) if (mm := self.speeds.motion(t)) is not None]
        return known[0] if known else None

    def _merge_duplicates(self, tf: TrackedFrame, idx: list[int], tids: list[int]) -> list[Event]:
        if self.config.merge_iou is None or len(idx) < 2:
            return []
        out: list[Event] = []
        boxes = tf.objects.xyxy[idx].astype(np.float64)
        iou = _iou(boxes, boxes)
        for a, b in zip(*np.nonzero(np.triu(iou >= self.config.merge_iou, 1)), strict=True):
            va, vb = self.vehicle_of[int(tids[idx[a]])], self.vehicle_of[int(tids[idx[b]])]
            if va == vb:
                continue
            pair = (min(va, vb), max(va, vb))
            self.overlaps[pair] = self.overlaps.get(pair, 0) + 1
            if self.overlaps[pair] >= MERGE_FRAMES:
                out += self._merge(tf, *pair)
        return out

    def _merge(self, tf: TrackedFrame, keep: int, gone: int) -> list[Event]:
        """Vehicle ``gone`` is a duplicate of ``keep``: one vehicle, counted at most once."""
        out: list[Event] = []
        a, b = self.vehicles[keep], self.vehicles.pop(gone)
        a.tracks |= b.tracks
        a.history |= b.history | b.tracks
        for t in b.tracks:
            self.vehicle_of[t] = keep
        for label, w in b.votes.items():
            a.votes[label] = a.votes.get(label, 0.0) + w
        a.counted_lanes |= b.counted_lanes
        a.counted_groups |= b.counted_groups
        a.last_seen = max(a.last_seen, b.last_seen)
        self.overlaps = {k: n for k, n in self.overlaps.items() if gone not in k}
        for name in self.lanes:
            p = self.passages.pop((gone, name), None)
            if p is None:
                continue
            out += self._end_alerts(tf, p, "merged")
            kept = self.passages.get((keep, name))
            if kept is None:
                p.vid = keep
                p.wrong_way = p.stopped = p.speeding = False
                self.passages[(keep, name)] = p
            elif p.counted is not None and kept.counted is None:
                # the duplicate was counted first: its count is the vehicle's
                kept.qualified, kept.counted, kept.label = True, p.counted, p.label
        return out

    def _ended(self, tf: TrackedFrame, ended: list[int]) -> list[Event]:
        """Tracks that ended leave their vehicle; a vehicle without tracks ends once it has
        not been seen for ``stitch_s`` (a new track may still continue it until then)."""
        out: list[Event] = []
        for tid in ended:
            vid = self.vehicle_of.pop(tid, None)
            if vid is not None:
                self.vehicles[vid].tracks.discard(tid)
        for vid, v in list(self.vehicles.items()):
            if v.tracks or tf.media_ts - v.last_seen < self.config.stitch_s:
                continue
            for name in self.lanes:
                p = self.passages.get((vid, name))
                if p is not None:
                    out += self._close(tf, p, "ended")
            del self.vehicles[vid]
            self.overlaps = {k: n for k, n in self.overlaps.items() if vid not in k}
        return out

    def _stitch(
        self,
        tf: TrackedFrame,
        vid: int,
        seen: dict[int, int],
        inside: dict[str, np.ndarray],
        ground: np.ndarray,
    ) -> list[Event]:
        """A new vehicle where a lost one in the same lane would be by now is that vehicle:
        its track was broken (missed detections), not a new arrival."""
        cfg = self.config
        if cfg.stitch_s <= 0:
            return []
        i = seen[vid]
        now = tf.media_ts
        best: tuple[float, int] | None = None
        for name, lane in self.lanes.items():
            if not inside[name][i]:
                continue
            s = float(ground[i] @ lane.direction)
            for p in self.passages.values():
                gap = now - p.last_seen
                if p.lane != name or p.vid in seen or p.outside_since is not None:
                    continue
                if not 0 < gap <= cfg.stitch_s:
                    continue
                miss = abs(s - (p.s + (p.v_along or 0.0) * gap))
                if miss <= cfg.stitch_m and (best is None or miss < best[0]):
                    best = (miss, p.vid)
        if best is None:
            return []
        keep = best[1]
        out = self._merge(tf, keep, vid) if keep < vid else []
        if keep < vid:
            seen[keep] = seen.pop(vid)
        return out

    # ---- passages --------------------------------------------------------------------------

    def _observe(
        self, tf: TrackedFrame, lane: _Lane, v: _Vehicle, p: _Passage, motion: Motion | None
    ) -> list[Event]:
        now = tf.media_ts
        out: list[Event] = []
        cfg = self.config
        travel = p.s - p.s_first
        if not p.qualified and abs(travel) >= cfg.min_travel_m:
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
        if p.s > p.s_max:
            p.s_max, p.t_s_max = p.s, now
        details = {"lane": lane.name, "track_id": p.vid, "label": v.label}
        subject = f"{lane.name}/{p.vid}"
        ww = cfg.wrong_way
        if ww is not None:
            if not p.wrong_way:
                p.wrong_way = p.s_max - p.s >= ww.distance_m and now - p.t_s_max >= ww.min_s
                p.s_low = p.s
            else:
                p.s_low = min(p.s_low, p.s)
                if p.s - p.s_low >= ww.distance_m:  # it turned round and drives the right way
                    p.wrong_way = False
                    p.s_max, p.t_s_max = p.s, now
            out += self.alerts.update(
                "wrong_way",
                subject,
                p.wrong_way,
                now,
                tf.wall_ts,
                {**details, "direction": lane.named, **self._speed(p.speed)},
            )
        st = cfg.stopped
        if st is not None and motion is not None:
            stop = to_mps(st.speed, self.unit)
            resume = to_mps(st.resume_speed or st.speed, self.unit)
            if motion.speed < stop:
                p.slow_since = now if p.slow_since is None else p.slow_since
            elif motion.speed >= resume or not p.stopped:
                p.slow_since = None
            stopped = p.slow_since is not None and now - p.slow_since >= st.after_s
            if stopped != p.stopped:
                p.stopped = stopped
                out += self.alerts.update(
                    "stopped_vehicle",
                    subject,
                    stopped,
                    now,
                    tf.wall_ts,
                    {**details, **self._speed(motion.speed)},
                )
        if lane.limit_mps is not None and motion is not None:
            if motion.speed > lane.limit_mps:
                p.fast_since = now if p.fast_since is None else p.fast_since
            else:
                p.fast_since = None
            speeding = p.fast_since is not None and now - p.fast_since >= cfg.speeding_s
            if speeding != p.speeding:
                p.speeding = speeding
                out += self.alerts.update(
                    "speeding",
                    subject,
                    speeding,
                    now,
                    tf.wall_ts,
                    {
                        **details,
                        "limit": round(convert(lane.limit_mps, self.unit), 1),
                        **self._speed(p.speed_max, "max_speed"),
                    },
                )
        return out

    def _count(
        self, tf: TrackedFrame, lane: _Lane, v: _Vehicle, p: _Passage, direction: str
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
        return [self._totals(tf.wall_ts)]

    def _close(self, tf: TrackedFrame, p: _Passage, reason: str) -> list[Event]:
        """The passage ended: its summary, and the end of its alerts."""
        del self.passages[(p.vid, p.lane)]
        out = self._end_alerts(tf, p, reason)
        v = self.vehicles.get(p.vid)
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
            "unit": self.unit,
            "mean_speed": None if mean is None else round(convert(mean, self.unit), 1),
            "max_speed": None if p.speed is None else round(convert(p.speed_max, self.unit), 1),
        }
        if v is not None and len(v.history) > 1:
            payload["track_ids"] = sorted(v.history)
        out.append(
            Event(
                kind="traffic_passage",
                camera=self.camera,
                topic=topics.scene(self.camera, f"traffic/lanes/{p.lane}"),
                payload=payload,
                frame_ts=tf.wall_ts,
            )
        )
        return out

    def _end_alerts(self, tf: TrackedFrame, p: _Passage, reason: str) -> list[Event]:
        out: list[Event] = []
        subject = f"{p.lane}/{p.vid}"
        for kind in ("wrong_way", "stopped_vehicle", "speeding"):
            out += self.alerts.update(
                kind,
                subject,
                False,
                tf.media_ts,
                tf.wall_ts,
                {"reason": reason, **self._speed(p.speed_max, "max_speed")}
                if kind == "speeding"
                else {"reason": reason},
            )
        return out

    # ---- lanes -----------------------------------------------------------------------------

    def _congestion(self, tf: TrackedFrame) -> list[Event]:
        cfg = self.config.congestion
        if cfg is None:
            return []
        out: list[Event] = []
        slow = to_mps(cfg.speed, self.unit)
        for name, debounce in self.congestion.items():
            present = [
                p
                for (vid, lane), p in self.passages.items()
                if lane == name and p.outside_since is None
            ]
            speeds = [p.speed for p in present if p.speed is not None]
            mean = float(np.mean(speeds)) if speeds else None
            raw = len(present) >= cfg.min_vehicles and mean is not None and mean < slow
            was = debounce.active
            active = debounce.update(raw, tf.media_ts)
            if active != was:
                out += self.alerts.update(
                    "congestion",
                    name,
                    active,
                    tf.media_ts,
                    tf.wall_ts,
                    {"lane": name, "vehicles": len(present), **self._speed(mean, "mean_speed")},
                )
        return out

    def _speed(self, mps: float | None, key: str = "speed") -> dict[str, Any]:
        return {key: None if mps is None else round(convert(mps, self.unit), 1), "unit": self.unit}

    def _totals(self, wall_ts: float) -> Event:
        self._published = True
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
