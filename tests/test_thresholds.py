"""Per-class floors (the model's, a camera's own), tracker thresholds that follow them, box
area limits, and one object for the car and truck boxes the detector gives one vehicle."""

from __future__ import annotations

import numpy as np
import pytest

from edged.analytics.same_object import merge_same_object, same_object_map
from edged.camera.analytics import of_size
from edged.camera.thresholds import class_floors
from edged.config.camera import DetectConfig, TrackerConfig
from edged.core.detections import Detections
from edged.core.frame import Frame
from edged.models.manifest import Manifest
from edged.tracking import ByteTracker

LABELS = ["person", "bicycle", "car", "motorcycle", "bus", "truck"]
FLOORS = {"car": 0.2, "truck": 0.2}


def detect(**settings: object) -> DetectConfig:
    return DetectConfig.model_validate({"model": "coco", **settings})


def test_floors_come_from_the_model_unless_the_camera_sets_its_own() -> None:
    assert class_floors(LABELS, detect(), FLOORS).tolist() == pytest.approx(
        [0.35, 0.35, 0.2, 0.35, 0.35, 0.2]
    )
    # one min_score is for every class, the model's floors no longer apply
    assert class_floors(LABELS, detect(min_score=0.3), FLOORS).tolist() == pytest.approx([0.3] * 6)
    own = class_floors(LABELS, detect(min_scores={"person": 0.5, "truck": 0.25}), FLOORS)
    assert own.tolist() == pytest.approx([0.5, 0.35, 0.2, 0.35, 0.35, 0.25])
    with pytest.raises(ValueError, match="unknown classes 'van'"):
        class_floors(LABELS, detect(min_scores={"van": 0.2}), FLOORS)


def test_a_manifest_floor_must_name_a_label_of_the_model() -> None:
    data = {
        "name": "m",
        "family": "nanodet",
        "file": "m.onnx",
        "sha256": "0" * 64,
        "license": "x",
        "source": "x",
        "input": {"name": "data", "size": [416, 416]},
        "labels": LABELS,
        "min_scores": {"van": 0.2},
    }
    with pytest.raises(ValueError, match="does not have: \\['van'\\]"):
        Manifest.model_validate(data)


def box(x: float) -> list[float]:
    return [x, 100.0, x + 40.0, 140.0]


def one(x: float, score: float, cls: int) -> Detections:
    return Detections(
        xyxy=np.array([box(x)], np.float32),
        score=np.array([score], np.float32),
        class_id=np.array([cls], np.int32),
    )


def test_default_tracker_thresholds_follow_the_class_floor() -> None:
    """A car at 0.36 starts a track where the car floor is 0.2 (start at 0.34, not 0.6); a
    person at 0.36 does not; set thresholds apply to every class alike."""
    floors = class_floors(LABELS, detect(), FLOORS)
    car, person = LABELS.index("car"), 0
    for cls, tracked in ((car, True), (person, False)):
        tracker = ByteTracker(TrackerConfig(), floors=floors)
        out = [len(tracker.update(one(10 + 3 * k, 0.36, cls), k / 10)) for k in range(4)]
        assert (out[-1] == 1) is tracked, (cls, out)
    fixed = ByteTracker(TrackerConfig(high_thresh=0.5, new_track_thresh=0.6), floors=floors)
    assert [len(fixed.update(one(10 + 3 * k, 0.36, car), k / 10)) for k in range(4)] == [0] * 4


def test_area_limits_in_pixels_or_a_share_of_the_picture() -> None:
    frame = Frame("cam", 0, 0.0, 0.0, 0.0, np.zeros((100, 200, 3), np.uint8))
    dets = Detections(
        xyxy=np.array([[0, 0, 10, 10], [0, 0, 50, 40], [0, 0, 200, 100]], np.float32),
        score=np.full(3, 0.9, np.float32),
        class_id=np.zeros(3, np.int32),
    )
    assert len(of_size(dets, detect(), frame)) == 3
    assert of_size(dets, detect(min_area=200), frame).xyxy[:, 2].tolist() == [50, 200]
    # a share: 0.5 of 20 000 px² is 10 000
    assert of_size(dets, detect(max_area=0.5), frame).xyxy[:, 2].tolist() == [10, 50]


def test_the_car_and_truck_boxes_of_one_vehicle_are_one_object() -> None:
    mapping = same_object_map(LABELS, None)  # the shipped vehicle group
    car, truck, person = LABELS.index("car"), LABELS.index("truck"), 0
    dets = Detections(
        xyxy=np.array([box(10), box(12), box(11), box(200)], np.float32),
        score=np.array([0.4, 0.3, 0.8, 0.5], np.float32),
        class_id=np.array([car, truck, person, truck], np.int32),
    )
    merged = merge_same_object(dets, mapping, 0.5)
    # the truck box over the car is gone; the person on it and the other truck stay
    assert merged.class_id.tolist() == [car, person, truck]
    assert same_object_map(LABELS, []) is None
    with pytest.raises(ValueError, match="unknown classes"):
        same_object_map(LABELS, [["car", "van"]])
