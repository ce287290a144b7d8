"""Snapshots: a JPEG for object ``new`` and alert ``start`` events, people blurred if asked.

The picture is taken on the camera's analytics thread from the frame the event is about,
before the event is committed, so the event can say where its picture went (``snapshot`` in
its payload). The JPEG itself is published retained to ``<camera>/snapshots/<label|alert>``
when the broker is up (best effort: a picture is not journaled, its event is) and/or written
to ``<dir>/<camera>/`` with a count and age retention.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edged.config.snapshots import SnapshotConfig
from edged.core import draw, topics
from edged.core.detections import Detections, class_ids
from edged.core.event import Event
from edged.core.frame import Frame
from edged.core.masks import PersonMask

log = logging.getLogger(__name__)

# publish(topic below <prefix>/<device>/, jpeg, event id) -> whether it went out
PublishImage = Callable[[str, bytes, str], bool]

SUBJECT = (0, 0, 255)  # BGR: the event's object
OTHER = (0, 200, 255)


@dataclass(frozen=True, slots=True)
class Snapshot:
    jpeg: bytes
    width: int
    height: int


def blur_regions(image: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """A copy with each box (N×4 xyxy, source pixels) blurred beyond recognition."""
    out = image.copy()
    h, w = image.shape[:2]
    for x1, y1, x2, y2 in np.asarray(boxes, np.float64):
        x1, y1 = max(0, int(x1)), max(0, int(y1))
        x2, y2 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
        if x2 <= x1 or y2 <= y1:
            continue
        roi = out[y1:y2, x1:x2]
        # a kernel about half the box: faces and figures become colour blobs
        k = max(3, (max(x2 - x1, y2 - y1) // 2) | 1)
        out[y1:y2, x1:x2] = cv2.GaussianBlur(roi, (k, k), 0)
    return out


def blur_mask(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A copy with the pixels where ``mask`` (H×W bool) is set blurred."""
    h, w = image.shape[:2]
    k = max(3, (max(h, w) // 10) | 1)
    blurred = cv2.GaussianBlur(image, (k, k), 0)
    return np.where(mask[:, :, None], blurred, image)


def encode(image: np.ndarray, quality: int, max_width: int | None = None) -> Snapshot:
    h, w = image.shape[:2]
    if max_width is not None and w > max_width:
        h, w = round(h * max_width / w), max_width
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding of a {w}x{h} image failed")
    return Snapshot(buf.tobytes(), w, h)


def crop_box(box: list[float], margin: float, width: int, height: int) -> tuple[int, ...]:
    x1, y1, x2, y2 = box
    mx, my = (x2 - x1) * margin, (y2 - y1) * margin
    return (
        max(0, int(x1 - mx)),
        max(0, int(y1 - my)),
        min(width, int(np.ceil(x2 + mx))),
        min(height, int(np.ceil(y2 + my))),
    )


class Snapshotter:
    """One camera's snapshots. ``take`` returns the events, with ``snapshot`` added to those
    that got one."""

    def __init__(
        self,
        camera: str,
        config: SnapshotConfig,
        labels: list[str],
        publish: PublishImage | None = None,
        mask_threshold: float = 0.5,
    ) -> None:
        self.camera = camera
        self.config = config
        self.labels = labels
        self.publish = publish if config.publish else None
        self.mask_threshold = mask_threshold
        private = class_ids(labels, config.privacy.classes)
        assert private is not None
        self.private = private
        self.dir = None if config.dir is None else config.dir / camera
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
        self.failed = 0

    def wants(self, event: Event) -> bool:
        p = event.payload
        if event.kind == "object" and p.get("type") == "new":
            return "new" in self.config.on
        return event.kind == "alert" and p.get("state") == "start" and "alert" in self.config.on

    def take(
        self,
        frame: Frame,
        detections: Detections,
        people: PersonMask | None,
        events: list[Event],
    ) -> list[Event]:
        wanted = [i for i, e in enumerate(events) if self.wants(e)]
        if not wanted:
            return events
        out = list(events)
        clean: np.ndarray | None = None
        for i in wanted:
            try:
                if clean is None:
                    clean = self.private_image(frame.image, detections, people)
                out[i] = self._one(clean, detections, events[i])
            except (OSError, ValueError, cv2.error) as exc:
                # the event matters more than its picture: it goes out without one
                self.failed += 1
                log.error("%s: snapshot for event %s failed: %s", self.camera, events[i].id, exc)
        return out

    def private_image(
        self, image: np.ndarray, detections: Detections, people: PersonMask | None
    ) -> np.ndarray:
        blur = self.config.privacy.blur
        if blur == "boxes":
            return blur_regions(image, detections.of_classes(self.private).xyxy)
        if blur == "mask":
            if people is None:
                raise ValueError(f"{self.camera}: privacy blur 'mask' without a person mask")
            return blur_mask(image, people.to_source(self.mask_threshold))
        return image

    def render(self, image: np.ndarray, detections: Detections, event: Event) -> Snapshot:
        p = event.payload
        box = p["after"]["box"] if event.kind == "object" else None
        if self.config.mode == "crop" and box is not None:
            x1, y1, x2, y2 = crop_box(box, self.config.crop_margin, image.shape[1], image.shape[0])
            return encode(image[y1:y2, x1:x2], self.config.quality, self.config.max_width)
        canvas = image.copy()
        thick = max(1, round(max(image.shape[:2]) / 400))
        for b in detections.xyxy:
            draw.box(canvas, b, OTHER, thick, smooth=False)
        if box is not None:
            draw.box(canvas, box, SUBJECT, 2 * thick, smooth=False)
            text = f"{p['after']['label']} #{p['after']['track_id']}"
            at = (box[0], max(12, box[1] - 4))
            draw.text(canvas, text, at, SUBJECT, 0.5, 1, smooth=False)
        return encode(canvas, self.config.quality, self.config.max_width)

    def _one(self, image: np.ndarray, detections: Detections, event: Event) -> Event:
        shot = self.render(image, detections, event)
        name = event.payload["after"]["label"] if event.kind == "object" else event.payload["alert"]
        info: dict[str, Any] = {
            "width": shot.width,
            "height": shot.height,
            "mode": "crop" if self.config.mode == "crop" and event.kind == "object" else "frame",
            "bytes": len(shot.jpeg),
            "privacy": self.config.privacy.blur,
        }
        if self.publish is not None:
            topic = topics.snapshot(self.camera, name)
            info["topic"] = topic
            self.publish(topic, shot.jpeg, event.id)
        if self.dir is not None:
            path = self.dir / f"{int(event.ts * 1000)}-{name}-{event.id}.jpg"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(shot.jpeg)
            tmp.replace(path)  # readers never see half a file
            info["path"] = str(path)
            self._retain()
        return replace(event, payload={**event.payload, "snapshot": info})

    def _retain(self) -> None:
        assert self.dir is not None
        files = sorted(self.dir.glob("*.jpg"))  # named by time first
        doomed = files[: max(0, len(files) - self.config.keep)]
        if self.config.max_age_s is not None:
            cutoff = time.time() - self.config.max_age_s
            doomed += [f for f in files[len(doomed) :] if _mtime(f) < cutoff]
        for f in doomed:
            f.unlink(missing_ok=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")
