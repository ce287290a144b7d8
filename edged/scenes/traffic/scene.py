"""The traffic scene: each frame, vehicles (identity) → their passages through the lanes
(counts) → the alerts on them."""

from __future__ import annotations

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from edged.analytics.speed import Homography, TrackSpeeds
from edged.analytics.tracked import TrackedFrame
from edged.config.camera import CameraConfig
from edged.config.errors import FieldError
from edged.config.geometry import to_pixels
from edged.config.scene_traffic import TrafficConfig
from edged.core.detections import class_ids
from edged.core.event import Event
from edged.core.frame import Frame
from edged.scenes.traffic.alerts import TrafficAlerts
from edged.scenes.traffic.identity import Vehicles
from edged.scenes.traffic.passages import Passages, make_lanes
from edged.scenes.traffic.state import Passage


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
            wanted = class_ids(labels, scene.classes)
        except ValueError as exc:
            raise FieldError((*base, "classes"), str(exc)) from None
        assert wanted is not None
        self.class_ids = wanted
        cal = scene.calibration
        try:
            self.homography = Homography(
                to_pixels(cal.image, width, height), np.asarray(cal.ground, np.float64)
            )
        except ValueError as exc:
            raise FieldError((*base, "calibration"), str(exc)) from None
        self.speeds = TrackSpeeds(
            self.homography, width, height, scene.anchor, scene.speed_window_s
        )
        self.lanes = make_lanes(scene, self.homography, width, height, base)
        self.alerts = TrafficAlerts(camera, scene, self.lanes)
        self.vehicles = Vehicles(scene, self.speeds)
        self.passages = Passages(camera, scene, self.lanes, self.alerts.new_passage)

    def update(self, frame: Frame, tf: TrackedFrame, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        objects = tf.objects
        now = tf.media_ts
        vehicle = np.isin(objects.class_id, self.class_ids)
        ground = self.speeds.update(tf, vehicle)
        anchors = objects.anchors(self.config.anchor)
        tids = [] if objects.track_id is None else [int(t) for t in objects.track_id]
        idx = np.flatnonzero(vehicle & self.homography.on_road(anchors)).tolist()
        new = self.vehicles.arrive(tids, idx, now)
        boxes = objects.xyxy[idx]
        for keep, gone in self.vehicles.merge_duplicates(boxes, [tids[i] for i in idx]):
            out += self._hand_over(tf, keep, gone)
        seen = self.vehicles.observe(tf, idx, tids)
        inside = {
            name: shapely.contains_xy(lane.polygon, anchors[:, 0], anchors[:, 1])
            for name, lane in self.lanes.items()
        }
        for vid in new:
            if vid not in seen:
                continue
            open_now = self.passages.open.values()
            older = self.vehicles.stitch(vid, seen, self.lanes, inside, ground, open_now, now)
            if older is not None:
                out += self._hand_over(tf, older, vid)
                seen[older] = seen.pop(vid)
        for vid, i in seen.items():
            v = self.vehicles.by_id[vid]
            v.last_seen = now
            motion = self.vehicles.motion(v, tids[i])
            for name, lane in self.lanes.items():
                if inside[name][i]:
                    p = self.passages.inside(vid, lane, float(ground[i] @ lane.direction), tf)
                    out += self.passages.observe(tf, lane, v, p, motion)
                    out += self.alerts.observe(tf, lane, v, p, motion)
                else:
                    self.passages.outside(vid, name, now)
        for p in self.passages.left(now):
            out += self._close(tf, p, "left")
        self.vehicles.release(tf.ended)
        for vid in self.vehicles.lost(now):
            for p in self.passages.of_vehicle(vid):
                out += self._close(tf, p, "ended")
            self.vehicles.forget(vid)
        out += self.alerts.congestion(tf, self.passages.present)
        if not self.passages.published:
            out.append(self.passages.totals(tf.wall_ts))
        return out

    def finish(self, tf: TrackedFrame) -> list[Event]:
        """The stream ended: every passage closes, every alert ends."""
        out: list[Event] = []
        for p in list(self.passages.open.values()):
            out += self._close(tf, p, "stream_end")
        self.vehicles.clear()
        out += self.alerts.finish(tf)
        if not self.passages.published:
            out.append(self.passages.totals(tf.wall_ts))
        return out

    @property
    def regions(self) -> tuple[BaseGeometry, ...]:
        return tuple(lane.polygon for lane in self.lanes.values())

    @property
    def busy(self) -> bool:
        """A vehicle it still follows (its track may have ended: stitching waits) or a passage
        still open closes only on a later frame."""
        return bool(self.vehicles.by_id or self.passages.open)

    def _hand_over(self, tf: TrackedFrame, keep: int, gone: int) -> list[Event]:
        """Vehicle ``gone`` was merged into ``keep``: its passages' alerts end, and the
        passages become ``keep``'s (counted at most once)."""
        out: list[Event] = []
        for p in self.passages.of_vehicle(gone):
            out += self.alerts.end(tf, p, "merged")
        self.passages.hand_over(keep, gone)
        return out

    def _close(self, tf: TrackedFrame, p: Passage, reason: str) -> list[Event]:
        """The passage ended: the end of its alerts, and its summary."""
        out = self.alerts.end(tf, p, reason)
        out.append(self.passages.close(tf, p, reason, self.vehicles.by_id.get(p.vid)))
        return out
