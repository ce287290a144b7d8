"""One camera's analytics: class filter → tracker → object lifecycle, zones and lines."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import numpy as np
from shapely.geometry import LineString
from shapely.geometry.base import BaseGeometry

from edged.analytics.alerts import ActiveAlerts, Alerts
from edged.analytics.lines import Line, LineRules, in_direction
from edged.analytics.motion import Region
from edged.analytics.objects import ObjectLifecycle
from edged.analytics.same_object import merge_same_object, same_object_map
from edged.analytics.tracked import TrackedFrame
from edged.analytics.zones import Zone
from edged.camera.thresholds import class_floors
from edged.config.camera import CameraConfig, DetectConfig, LineConfig, ZoneConfig, alert_kinds
from edged.config.errors import FieldError
from edged.config.geometry import line_misses, polygon_misses, to_pixels
from edged.core.detections import Detections, class_ids
from edged.core.event import Event
from edged.core.frame import Frame
from edged.core.masks import PersonMask
from edged.scenes.base import SceneModule
from edged.scenes.registry import make_scene
from edged.tracking import ByteTracker

log = logging.getLogger(__name__)


def of_size(detections: Detections, detect: DetectConfig, frame: Frame) -> Detections:
    """The detections whose box area lies within ``min_area``/``max_area`` (pixels², or a
    share of the picture for values ≤ 1)."""
    low, high = detect.min_area, detect.max_area
    if (low is None and high is None) or not len(detections):
        return detections
    picture = float(frame.width * frame.height)
    wh = detections.xyxy[:, 2:] - detections.xyxy[:, :2]
    area = wh[:, 0] * wh[:, 1]
    keep = np.ones(len(detections), bool)
    if low is not None:
        keep &= area >= (low * picture if low <= 1 else low)
    if high is not None:
        keep &= area <= (high * picture if high <= 1 else high)
    return detections if keep.all() else detections[keep]


def decoded_classes(labels: list[str], config: CameraConfig) -> np.ndarray | None:
    """The class ids the detector needs to decode for a camera (None: all): what it keeps,
    and the classes its pictures blur for privacy, which need not be kept."""
    keep = class_ids(labels, config.detect.classes)
    if keep is None:
        return None
    shots = config.snapshots
    if shots is not None and shots.privacy.blur != "off":
        private = class_ids(labels, shots.privacy.classes)
        keep = keep if private is None else np.concatenate([keep, private])
    return np.unique(keep).astype(np.int32)


class CameraAnalytics:
    """Turns each frame's detections into events. Geometry written relative (0–1) is placed
    in pixels when the first frame shows the picture's size."""

    def __init__(
        self,
        camera: str,
        config: CameraConfig,
        labels: list[str],
        model_floors: Mapping[str, float] | None = None,
    ) -> None:
        self.camera = camera
        self.config = config
        self.labels = labels
        self.model_floors = dict(model_floors or {})
        self.check_geometry()
        self._use_detect(config.detect)
        self._start_tracking()
        # outlives the tracking state: a restart of tracking ends its alerts, and the counts
        # must see those ends
        self.active = ActiveAlerts(camera, alert_kinds(config))

    def start(self) -> list[Event]:
        """The events of the camera's start, before any frame: how many alerts of each kind
        are active (none)."""
        return self.active.follow([])

    def _use_detect(self, detect: DetectConfig) -> None:
        """The classes kept, merged as one object, and the floor per class, of ``detect``."""
        self.keep = class_ids(self.labels, detect.classes)
        self.same = same_object_map(self.labels, detect.same_object)
        self.floors = class_floors(self.labels, detect, self.model_floors)

    def _start_tracking(self) -> None:
        self.tracker = ByteTracker(self.config.tracker, floors=self.floors)
        self.lifecycle = ObjectLifecycle(self.camera, self.config.updates)
        self.alerts = Alerts(self.camera)
        self.zones: list[Zone] = []
        self.lines: list[Line] = []
        self._size: tuple[int, int] | None = None
        self.scene: SceneModule | None = None
        # the newest frame with its tracks: for the end of the stream, and kept by reference
        # for whoever looks (debug view)
        self.latest: tuple[Frame, TrackedFrame] | None = None
        self.track_s = 0.0  # the last tracker update's seconds
        # for the motion gate, which reads them from the source thread: each is replaced
        # whole, never changed in place
        self.region: Region | None = None  # what the zones, lines and scene watch
        self.busy = False  # the next frames are needed whether or not anything moves

    def check_geometry(self) -> None:
        """Raise FieldError for zone or line settings that no picture size can fix."""
        base = ("cameras", self.camera)
        for name, line in self.config.lines.items():
            pts = np.asarray(line.points, np.float64)
            d = line.directions
            try:
                Line(self.camera, name, pts, line.anchor, None, in_direction(pts, d.in_, d.out))
            except ValueError as exc:
                raise FieldError((*base, "lines", name, "directions"), str(exc)) from None
        for kind, items in (("zones", self.config.zones), ("lines", self.config.lines)):
            for name, item in items.items():
                try:
                    class_ids(self.labels, item.classes)
                except ValueError as exc:
                    raise FieldError((*base, kind, name, "classes"), str(exc)) from None
        try:
            class_ids(self.labels, self.config.detect.classes)
        except ValueError as exc:
            raise FieldError((*base, "detect", "classes"), str(exc)) from None
        try:
            same_object_map(self.labels, self.config.detect.same_object)
        except ValueError as exc:
            raise FieldError((*base, "detect", "same_object"), str(exc)) from None
        try:
            class_floors(self.labels, self.config.detect, self.model_floors)
        except ValueError as exc:
            raise FieldError((*base, "detect", "min_scores"), str(exc)) from None
        if self.config.snapshots is not None:
            try:
                class_ids(self.labels, self.config.snapshots.privacy.classes)
            except ValueError as exc:
                loc = (*base, "snapshots", "privacy", "classes")
                raise FieldError(loc, str(exc)) from None
        # a scene checks its own settings when built; build one now so errors show at start
        make_scene(self.camera, self.config, self.labels, 1920, 1080)

    def _place(self, width: int, height: int) -> None:
        self._size = (width, height)
        self._warn_outside(width, height)
        self.scene = make_scene(self.camera, self.config, self.labels, width, height)
        self.zones = [self._zone(name, z, width, height) for name, z in self.config.zones.items()]
        self.lines = [self._line(name, ln, width, height) for name, ln in self.config.lines.items()]
        self._publish_region()

    def _publish_region(self) -> None:
        assert self._size is not None
        width, height = self._size
        shapes: list[BaseGeometry] = [z.polygon for z in self.zones]
        shapes += [_line_shape(ln, width, height) for ln in self.lines]
        if self.scene is not None:
            shapes += self.scene.regions
        self.region = Region(self._size, tuple(shapes))

    def _warn_outside(self, width: int, height: int) -> None:
        """Pixel geometry wholly outside the picture can never count: said once, when the
        picture's size is first known (``edged check`` refuses it where it knows the size)."""
        for name, z in self.config.zones.items():
            if polygon_misses(to_pixels(z.polygon, width, height), width, height):
                log.warning(
                    "%s: zone %s lies wholly outside the %dx%d picture: it will never count",
                    self.camera,
                    name,
                    width,
                    height,
                )
        for name, ln in self.config.lines.items():
            if line_misses(to_pixels(ln.points, width, height), ln.segment, width, height):
                log.warning(
                    "%s: line %s lies wholly outside the %dx%d picture: it will never count",
                    self.camera,
                    name,
                    width,
                    height,
                )

    def _zone(self, name: str, z: ZoneConfig, width: int, height: int) -> Zone:
        return Zone(
            self.camera,
            name,
            to_pixels(z.polygon, width, height),
            z,
            class_ids(self.labels, z.classes),
            self.alerts,
            ratio=self._ratio_settings() if z.occupancy_ratio else None,
        )

    def _line(self, name: str, ln: LineConfig, width: int, height: int) -> Line:
        pts = to_pixels(ln.points, width, height)
        try:
            in_dir = in_direction(pts, ln.directions.in_, ln.directions.out)
            rules = LineRules(
                band_px=ln.hysteresis * float(np.hypot(width, height)),
                cancel_s=ln.cancel_s,
                segment=ln.segment,
            )
            return Line(
                self.camera,
                name,
                pts,
                ln.anchor,
                class_ids(self.labels, ln.classes),
                in_dir,
                rules,
            )
        except ValueError as exc:
            raise FieldError(("cameras", self.camera, "lines", name), str(exc)) from None

    def _ratio_settings(self) -> tuple[float, float] | None:
        seg = self.config.segment
        return None if seg is None else (seg.threshold, seg.min_change)

    def process(
        self, frame: Frame, detections: Detections, people: PersonMask | None = None
    ) -> list[Event]:
        if self._size != (frame.width, frame.height):
            self._place(frame.width, frame.height)
        detections = of_size(detections.of_classes(self.keep), self.config.detect, frame)
        detections = merge_same_object(detections, self.same, self.config.detect.nms_iou)
        t0 = time.perf_counter()
        objects = self.tracker.update(detections, frame.media_ts)
        self.track_s = time.perf_counter() - t0
        tf = TrackedFrame(
            self.camera,
            frame.media_ts,
            frame.wall_ts,
            objects,
            self.tracker.ended,
            self.labels,
            people,
        )
        self.latest = (frame, tf)
        events = self._analyse(tf)
        if self.scene is not None:
            events += self.scene.update(frame, tf, events)
        self.busy = (
            self.tracker.tracking
            or any(line.pending for line in self.lines)
            or (self.scene is not None and self.scene.busy)
        )
        return self.active.follow(events)

    def _analyse(self, tf: TrackedFrame) -> list[Event]:
        zone_events = [e for z in self.zones for e in z.update(tf)]
        zones_of: dict[int, tuple[str, ...]] = {}
        for z in self.zones:
            for tid in z.inside:
                zones_of[tid] = (*zones_of.get(tid, ()), z.name)
        events = self.lifecycle.update(tf, zones_of)
        events += zone_events
        for line in self.lines:
            events += line.update(tf)
        return events

    @property
    def active_tracks(self) -> int:
        return len(self.lifecycle.objects)

    def _end_frame(self, ended: list[int]) -> TrackedFrame:
        """A frame with no objects at the last frame's time, on which ``ended`` tracks end."""
        assert self.latest is not None
        last = self.latest[1]
        return TrackedFrame(
            self.camera,
            last.media_ts,
            last.wall_ts,
            Detections.empty() if last.objects.track_id is None else last.objects[:0],
            ended,
            self.labels,
        )

    def finish(self) -> list[Event]:
        """End every live object, as if all tracks ended on the last frame seen."""
        return self.active.follow(self._finish())

    def _finish(self) -> list[Event]:
        if self.latest is None:
            return []
        tf = self._end_frame(list(self.lifecycle.objects))
        events = self._analyse(tf)
        for line in self.lines:
            events += line.finish(tf)
        if self.scene is not None:
            # the scene sees the last events (crossings confirmed at the end) before it ends
            events += self.scene.update(self.latest[0], tf, events)
            events += self.scene.finish(tf)
        return events + self.alerts.end_all(tf.media_ts, tf.wall_ts)

    def reconfigure(self, config: CameraConfig) -> list[Event]:
        """Apply a reloaded (already checked) config; call it where ``process`` runs.

        What the change does not touch keeps its state: the tracker and its objects, and
        every zone and line whose settings are the same. A zone or line that changed or went
        away ends as at the end of a stream (its objects exit, pending crossings count, its
        alerts end); a changed one starts afresh. A changed scene, or one whose zones or lines
        changed, is finished and built again. New tracker settings restart tracking: every
        object ends and tracks start from new ids.
        """
        self.active.expect(alert_kinds(config))
        return self.active.follow(self._reconfigure(config))

    def _reconfigure(self, config: CameraConfig) -> list[Event]:
        old, self.config = self.config, config
        events: list[Event] = []
        if config.tracker != old.tracker:
            self.config = old
            events = self._finish()
            self.config = config
            self._use_detect(config.detect)
            self._start_tracking()
            return events
        self._use_detect(config.detect)
        # new floors move the thresholds the tracker's follow, its tracks kept
        self.tracker.floors = self.floors
        self.lifecycle.rules = config.updates
        if self._size is None or self.latest is None:
            self._size = None  # placed with the new settings on the next frame
            return []
        width, height = self._size
        zones = {z.name: z for z in self.zones}
        for name, zone in zones.items():
            if config.zones.get(name) != old.zones[name]:
                events += zone.update(self._end_frame(list(zone.members)))
        lines = {ln.name: ln for ln in self.lines}
        for name, line in lines.items():
            if config.lines.get(name) != old.lines[name]:
                events += line.finish(self._end_frame([]))
        self.zones = [
            zones[name] if old.zones.get(name) == z else self._zone(name, z, width, height)
            for name, z in config.zones.items()
        ]
        self.lines = [
            lines[name] if old.lines.get(name) == ln else self._line(name, ln, width, height)
            for name, ln in config.lines.items()
        ]
        changed = (config.scene, config.zones, config.lines) != (old.scene, old.zones, old.lines)
        if changed:
            if self.scene is not None:
                events += self.scene.finish(self._end_frame([]))
            self.scene = make_scene(self.camera, config, self.labels, width, height)
            self._publish_region()
        return events


def _line_shape(line: Line, width: int, height: int) -> BaseGeometry:
    """A line as the motion gate watches it: its segment, or the infinite line through it
    across the whole picture."""
    if line.rules.segment:
        return line.segment
    # far enough both ways to cross the picture from any point of the line
    far = float(np.hypot(*line.p0)) + float(np.hypot(width, height))
    reach = far / float(np.hypot(*line.d))
    return LineString([line.p0 - reach * line.d, line.p0 + reach * line.d])
