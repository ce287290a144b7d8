"""Class groups: ``vehicle`` (shipped) and a user's own stand for their labels in every
``classes`` list; a line counting vehicles counts a car and a truck once each."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from edged.camera.analytics import CameraAnalytics
from edged.config import Config
from edged.core.detections import Detections
from edged.core.frame import Frame
from tests.paths import MODEL

COCO = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck"]


def config(camera: dict[str, Any], **root: Any) -> Config:
    return Config.model_validate(
        {
            "device_id": "test",
            "models": {"coco": {"path": str(MODEL)}},
            "cameras": {"road": {"source": {"uri": "rtsp://cam/1"}, **camera}},
            **root,
        }
    )


def test_group_names_become_their_labels_in_every_classes_list() -> None:
    cam = config(
        {
            "detect": {"model": "coco", "classes": ["vehicle", "person", "car"]},
            "zones": {"kerb": {"polygon": [[0, 0], [1, 0], [1, 1]], "classes": ["riders"]}},
            "lines": {"gate": {"points": [[0, 0.5], [1, 0.5]], "classes": ["vehicle"]}},
        },
        class_groups={"riders": ["bicycle", "motorcycle"]},
    ).cameras["road"]
    assert cam.detect.classes == ["car", "truck", "bus", "motorcycle", "person"]
    assert cam.zones["kerb"].classes == ["bicycle", "motorcycle"]
    assert cam.lines["gate"].classes == ["car", "truck", "bus", "motorcycle"]


def test_a_users_group_replaces_a_shipped_one_and_groups_do_not_nest() -> None:
    cam = config(
        {"detect": {"model": "coco", "classes": ["vehicle"]}},
        class_groups={"vehicle": ["car", "bus"]},
    ).cameras["road"]
    assert cam.detect.classes == ["car", "bus"]
    with pytest.raises(ValidationError, match="names groups \\['vehicle'\\]"):
        config({"detect": {"model": "coco"}}, class_groups={"road_users": ["vehicle", "person"]})
    with pytest.raises(ValidationError, match="names no labels"):
        config({"detect": {"model": "coco"}}, class_groups={"empty": []})


def test_a_vehicle_line_counts_a_car_and_a_truck_once_each() -> None:
    cam = config(
        {
            "detect": {"model": "coco", "classes": ["vehicle", "person"]},
            "lines": {"gate": {"points": [[0.5, 0.0], [0.5, 1.0]], "classes": ["vehicle"]}},
        }
    ).cameras["road"]
    analytics = CameraAnalytics("road", cam, COCO)
    image = np.zeros((400, 400, 3), np.uint8)
    events = []
    for k in range(30):  # a car, a truck and a person, left to right across the line
        t = k / 10
        x = 60 + 10 * k
        boxes = [[x - 20, 60, x + 20, 100], [x - 30, 180, x + 30, 240], [x - 10, 300, x + 10, 360]]
        dets = Detections(
            xyxy=np.array(boxes, np.float32),
            score=np.full(3, 0.9, np.float32),
            class_id=np.array([COCO.index("car"), COCO.index("truck"), 0], np.int32),
        )
        events += analytics.process(Frame("road", k, t, 1000 + t, t, image), dets)
    crossings = [e.payload for e in events if e.kind == "line_crossing"]
    assert sorted(c["label"] for c in crossings) == ["car", "truck"]
    assert len({c["track_id"] for c in crossings}) == 2
