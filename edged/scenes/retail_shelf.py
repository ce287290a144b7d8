"""Retail shelf: stock per slot, shopper dwell at the shelf, the checkout queue.

Each slot is counted by the detector (product boxes of the slot's product groups whose centre
lies in the slot; boxes of one group overlapping by ``product_iou`` are one item, so a bottle
seen as both ``bottle`` and ``vase`` counts once), by the model-free monitor
(``edged.scenes.shelf_monitor``: the share of the slot's learned stocked look that is gone,
scaled to ``expected``), or by both, fused per frame: ``max`` (stocked if either method sees
it — the detector covers products nudged off their learned place, the monitor covers products
the detector scores too low or doesn't know) or ``min`` (empty if either says so). With both,
a slot has no state until the monitor has learned (a slot whose stocked look has no edges
falls back to the detector alone); the detector's count waits for track confirmation.

A slot is frozen — no observation, no learning — while an occluder (a tracked person or hand
box) covers part of it or the picture over it moves, and for ``settle_s`` after; a frozen slot
keeps its state rather than reporting the hand in front of it. A new count must then be
observed without a break for ``hold_s`` seconds of media time before it becomes the slot's
state: then one ``stock_change`` (retained, on ``<camera>/shelf/<slot>``) and the slot's
``empty_slot`` / ``low_stock`` alerts start or end (``edged.analytics.alerts``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import shapely
from shapely.geometry import Polygon, box
from shapely.geometry.base import BaseGeometry

from edged.analytics.alerts import Alerts
from edged.analytics.tracked import TrackedFrame
from edged.config.camera import CameraConfig
from edged.config.errors import FieldError
from edged.config.geometry import to_pixels
from edged.config.scene_retail import RetailShelfConfig, SlotConfig
from edged.core import topics
from edged.core.boxes import nms
from edged.core.detections import Detections, class_ids
from edged.core.event import Event
from edged.core.frame import Frame
from edged.core.hold import Hold
from edged.scenes.shelf_monitor import Prepared, SlotMonitor, prepare, union_rect


@dataclass(slots=True)
class _Slot:
    name: str
    config: SlotConfig
    method: str
    polygon: Polygon
    groups: list[str]
    monitor: SlotMonitor
    held: Hold[int]  # the slot's count: a new one must be observed hold_s (gaps pause)
    frozen_until: float = float("-inf")
    # this frame's observations, for the payload
    detector: int | None = None
    monitor_count: int | None = None
    missing: float | None = None


@dataclass(slots=True)
class _Visit:
    label: str
    entered: float


class RetailShelf:
    def __init__(
        self, camera: str, config: CameraConfig, labels: list[str], width: int, height: int
    ) -> None:
        scene = config.scene
        assert isinstance(scene, RetailShelfConfig)
        self.camera = camera
        self.config = scene
        self.labels = labels
        base = ("cameras", camera, "scene")
        detected = None if config.detect.classes is None else set(config.detect.classes)

        def ids(loc: tuple[str | int, ...], names: list[str]) -> np.ndarray:
            try:
                found = class_ids(labels, names)
            except ValueError as exc:
                raise FieldError((*base, *loc), str(exc)) from None
            assert found is not None
            dropped = sorted(set(names) - detected) if detected is not None else []
            if dropped:
                raise FieldError(
                    (*base, *loc),
                    f"{dropped} are not in cameras.{camera}.detect.classes: never seen",
                )
            return found

        uses_detector = any((s.method or scene.method) != "monitor" for s in scene.slots.values())
        self.groups: dict[str, np.ndarray] = {}
        for group, names in scene.products.items():
            if uses_detector:
                self.groups[group] = ids(("products", group), names)
        self.occluders = ids(("occluders",), scene.occluders) if scene.occluders else None
        polygons = {n: to_pixels(s.polygon, width, height) for n, s in scene.slots.items()}
        try:
            self.rect = union_rect(list(polygons.values()), width, height)
        except ValueError as exc:
            raise FieldError((*base, "slots"), str(exc)) from None
        self.slots: list[_Slot] = []
        for name, s in scene.slots.items():
            pts = polygons[name]
            poly = Polygon(pts)
            shapely.prepare(poly)
            try:
                monitor = SlotMonitor(pts, self.rect, scene.monitor, s.expected, f"{camera}/{name}")
            except ValueError as exc:
                raise FieldError((*base, "slots", name, "polygon"), str(exc)) from None
            self.slots.append(
                _Slot(
                    name,
                    s,
                    s.method or scene.method,
                    poly,
                    list(self.groups) if s.products is None else s.products,
                    monitor,
                    Hold[int](scene.hold_s, clock="observed"),
                )
            )
        ref = scene.monitor.reference_image
        if ref is not None:
            prep = self._reference(ref, width, height, base)
            for slot in self.slots:
                slot.monitor.set_reference(prep)
        self.alerts = Alerts(camera)
        self.visits: dict[int, _Visit] = {}
        self.shelf: Polygon | None = None
        self.shoppers: np.ndarray | None = None
        if scene.shelf_zone is not None:
            self.shelf = Polygon(to_pixels(scene.shelf_zone.polygon, width, height))
            shapely.prepare(self.shelf)
            self.shoppers = ids(("shelf_zone", "classes"), scene.shelf_zone.classes)
        if scene.checkout is not None and scene.checkout.zone not in config.zones:
            known = ", ".join(sorted(config.zones)) or "none"
            raise FieldError(
                (*base, "checkout", "zone"),
                f"no zone named {scene.checkout.zone!r} (defined: {known})",
            )
        self.queue: int | None = None
        # products show up only once their tracks are confirmed: no detector count before
        self._warmup = config.tracker.min_hits
        self._frames = 0
        self._now = float("-inf")  # the latest frame's media time

    def _reference(self, path: Path, width: int, height: int, base: tuple[str, ...]) -> Prepared:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FieldError((*base, "monitor", "reference_image"), f"cannot read {path}")
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return prepare(image, self.rect, self.config.monitor.edge_threshold)

    # -- per frame -------------------------------------------------------------------

    def update(self, frame: Frame, tf: TrackedFrame, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        prep = prepare(frame.image, self.rect, self.config.monitor.edge_threshold)
        objects = tf.objects
        covers = self._occluder_boxes(objects)
        centres = self._products(objects)
        ts = self._now = tf.media_ts
        self._frames += 1
        for slot in self.slots:
            out += self._slot(slot, prep, tf, covers, centres, ts)
        out += self._dwell(tf)
        out += self._checkout(tf, events)
        return out

    def _occluder_boxes(self, objects: Detections) -> list[Any]:
        if self.occluders is None or not len(objects):
            return []
        keep = np.isin(objects.class_id, self.occluders)
        return [box(*map(float, b)) for b in objects.xyxy[keep]]

    def _products(self, objects: Detections) -> dict[str, np.ndarray]:
        """Per product group: the centres (N×2) of its items, duplicates merged."""
        out: dict[str, np.ndarray] = {}
        for group, ids in self.groups.items():
            mine = objects[np.isin(objects.class_id, ids)] if len(objects) else objects
            if not len(mine):
                out[group] = np.zeros((0, 2), np.float32)
                continue
            keep = nms(mine.xyxy, mine.score, self.config.product_iou)
            xyxy = mine.xyxy[keep]
            out[group] = np.stack(
                [(xyxy[:, 0] + xyxy[:, 2]) * 0.5, (xyxy[:, 1] + xyxy[:, 3]) * 0.5], axis=1
            )
        return out

    def _slot(
        self,
        slot: _Slot,
        prep: Prepared,
        tf: TrackedFrame,
        covers: list[Any],
        centres: dict[str, np.ndarray],
        ts: float,
    ) -> list[Event]:
        scene = self.config
        moving = slot.monitor.motion(prep) > scene.monitor.motion_share
        area = slot.polygon.area
        covered = any(
            c.intersection(slot.polygon).area >= scene.occlusion_share * area
            for c in covers
            if c.intersects(slot.polygon)
        )
        if moving or covered:
            slot.frozen_until = ts + scene.settle_s
        still = not (moving or covered) and ts >= slot.frozen_until
        expected = slot.config.expected
        slot.monitor_count = slot.missing = slot.detector = None
        if slot.method != "detector":
            missing = slot.monitor.measure(prep, ts, still, slot.held.state == expected)
            if missing is not None:
                slot.missing = missing
                slot.monitor_count = slot.monitor.count(missing)
        if slot.method != "monitor" and self._frames >= self._warmup:
            slot.detector = sum(
                int(shapely.contains_xy(slot.polygon, c[:, 0], c[:, 1]).sum())
                for g, c in centres.items()
                if g in slot.groups and len(c)
            )
        seen = [n for n in (slot.detector, slot.monitor_count) if n is not None]
        if slot.method == "both" and not slot.monitor.learned:
            seen = []  # fusing needs both: no state from half the evidence while learning
        observed = None
        if still and seen:
            observed = max(seen) if scene.fuse == "max" else min(seen)
        before = slot.held.state
        if not slot.held.update(observed, ts):
            return []
        return [self._stock_change(slot, before, tf), *self._slot_alerts(slot, tf)]

    def _stock_change(self, slot: _Slot, before: int | None, tf: TrackedFrame) -> Event:
        after = slot.held.state
        payload: dict[str, Any] = {
            "slot": slot.name,
            "before": before,
            "after": after,
            "expected": slot.config.expected,
            "method": slot.method,
            "media_ts": round(tf.media_ts, 3),
            "since_media_ts": round(min(slot.held.since, tf.media_ts), 3),  # first seen
            "held_s": round(slot.held.held_s, 3),
        }
        if slot.detector is not None:
            payload["detector_count"] = slot.detector
        if slot.monitor_count is not None:
            payload["monitor_count"] = slot.monitor_count
            payload["missing_share"] = round(slot.missing or 0.0, 3)
        return Event(
            kind="stock_change",
            camera=self.camera,
            topic=topics.scene(self.camera, f"shelf/{slot.name}"),
            payload=payload,
            frame_ts=tf.wall_ts,
            retain=True,
        )

    def _slot_alerts(self, slot: _Slot, tf: TrackedFrame) -> list[Event]:
        n = slot.held.state
        assert n is not None
        low = slot.config.low_below
        details = {
            "slot": slot.name,
            "count": n,
            "expected": slot.config.expected,
            "low_below": low,
        }
        wanted = [("empty_slot", n == 0), ("low_stock", low is not None and 0 < n < low)]
        # an alert that ends goes out before one that starts (low → empty, empty → low)
        wanted.sort(key=lambda kv: kv[1])
        out: list[Event] = []
        for kind, active in wanted:
            out += self.alerts.update(kind, slot.name, active, tf.media_ts, tf.wall_ts, details)
        return out

    # -- shoppers and the checkout ------------------------------------------------------

    def _dwell(self, tf: TrackedFrame) -> list[Event]:
        if self.shelf is None or self.config.shelf_zone is None or self.shoppers is None:
            return []
        objects = tf.objects
        out: list[Event] = []
        seen: set[int] = set()
        if len(objects) and objects.track_id is not None:
            pts = objects.anchors(self.config.shelf_zone.anchor)
            inside = shapely.contains_xy(self.shelf, pts[:, 0], pts[:, 1])
            inside &= np.isin(objects.class_id, self.shoppers)
            for i, tid in enumerate(objects.track_id.tolist()):
                seen.add(tid)
                if inside[i] and tid not in self.visits:
                    self.visits[tid] = _Visit(tf.label(i), tf.media_ts)
                elif not inside[i] and tid in self.visits:
                    out += self._left(tid, tf)
        for tid in tf.ended:
            if tid in self.visits and tid not in seen:
                out += self._left(tid, tf)
        return out

    def _left(self, tid: int, tf: TrackedFrame) -> list[Event]:
        visit = self.visits.pop(tid)
        dwell = tf.media_ts - visit.entered
        assert self.config.shelf_zone is not None
        if dwell < self.config.shelf_zone.min_dwell_s:
            return []
        return [
            Event(
                kind="shopper_dwell",
                camera=self.camera,
                topic=topics.scene(self.camera, "shoppers"),
                payload={"track_id": tid, "label": visit.label, "dwell_s": round(dwell, 3)},
                frame_ts=tf.wall_ts,
            )
        ]

    def _checkout(self, tf: TrackedFrame, events: list[Event]) -> list[Event]:
        checkout = self.config.checkout
        if checkout is None:
            return []
        length = self.queue
        for e in events:
            if e.kind == "zone_occupancy" and e.payload.get("zone") == checkout.zone:
                length = int(e.payload.get("total", 0))
        if length is None or length == self.queue:
            return []
        self.queue = length
        out = [
            Event(
                kind="checkout_queue",
                camera=self.camera,
                topic=topics.scene(self.camera, "checkout"),
                payload={"zone": checkout.zone, "length": length},
                frame_ts=tf.wall_ts,
                retain=True,
            )
        ]
        if checkout.alert_at is not None:
            out += self.alerts.update(
                "long_queue",
                checkout.zone,
                length >= checkout.alert_at,
                tf.media_ts,
                tf.wall_ts,
                {"zone": checkout.zone, "length": length, "alert_at": checkout.alert_at},
            )
        return out

    @property
    def regions(self) -> tuple[BaseGeometry, ...]:
        shapes: list[BaseGeometry] = [slot.polygon for slot in self.slots]
        return (*shapes, self.shelf) if self.shelf is not None else tuple(shapes)

    @property
    def busy(self) -> bool:
        """A slot settles after motion, holds a new count, has no count yet, or still learns
        its stocked look: each needs the next still frames, which motion gating would skip."""
        return any(
            self._now < slot.frozen_until
            or slot.held.state is None
            or slot.held.candidate is not None
            or (slot.method != "detector" and not slot.monitor.learned)
            for slot in self.slots
        )

    def finish(self, tf: TrackedFrame) -> list[Event]:
        out: list[Event] = []
        for tid in list(self.visits):
            out += self._left(tid, tf)
        return out + self.alerts.end_all(tf.media_ts, tf.wall_ts)
