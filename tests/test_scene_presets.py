"""Each scene preset declared once, on its settings model: the registry has a scene for every
preset and a preset for every scene, and Home Assistant offers each preset's alerts."""

from __future__ import annotations

from typing import Any

from edged.config.camera import CameraConfig, alert_kinds
from edged.config.scenes import PRESETS
from edged.scenes.registry import SCENES

SQUARE = [[0, 0], [1, 0], [1, 1], [0, 1]]


def test_every_preset_has_a_scene_and_every_scene_a_preset() -> None:
    assert set(SCENES) == set(PRESETS.values())
    assert sorted(PRESETS) == ["retail_shelf", "surveillance", "traffic"]


def test_every_preset_declares_its_name_alerts_and_event_kinds() -> None:
    for name, model in PRESETS.items():
        assert model.preset_name() == name
        assert model.alerts and all(isinstance(k, str) for k in model.alerts)
        assert model.event_kinds and all(isinstance(k, str) for k in model.event_kinds)
    kinds = [k for model in PRESETS.values() for k in model.event_kinds]
    assert len(kinds) == len(set(kinds)), "two presets claim one event kind"


def camera(scene: dict[str, Any] | None, **zone: Any) -> CameraConfig:
    return CameraConfig.model_validate(
        {
            "source": {"uri": "clip.mp4"},
            "detect": {"model": "coco"},
            "zones": {"z": {"polygon": SQUARE, **zone}},
            "scene": scene,
        }
    )


def test_home_assistant_offers_the_zones_and_the_presets_alerts() -> None:
    ground = [[0, 0], [30, 0], [30, 20], [0, 20]]
    traffic = {
        "preset": "traffic",
        "calibration": {"image": SQUARE, "ground": ground},
        "lanes": {"a": {"polygon": SQUARE, "direction": "left_to_right"}},
    }
    retail = {"preset": "retail_shelf", "slots": {"s": {"polygon": SQUARE, "expected": 1}}}
    assert alert_kinds(camera(None)) == []
    assert alert_kinds(camera(None, loiter_s=5, crowd_threshold=3)) == ["crowding", "loitering"]
    assert alert_kinds(camera({"preset": "surveillance"}, loiter_s=5)) == [
        "intrusion",
        "loitering",
    ]
    assert alert_kinds(camera(retail)) == ["empty_slot", "long_queue", "low_stock"]
    assert alert_kinds(camera(traffic)) == [
        "congestion",
        "speeding",
        "stopped_vehicle",
        "wrong_way",
    ]
