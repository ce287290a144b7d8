"""The scene module for a camera's ``scene.preset``: each preset's settings model (the
presets are listed once, in ``edged.config.scenes``) and the scene class it configures."""

from __future__ import annotations

from collections.abc import Callable

from edged.config.camera import CameraConfig
from edged.config.scene_preset import PresetConfig
from edged.config.scene_retail import RetailShelfConfig
from edged.config.scene_surveillance import SurveillanceConfig
from edged.config.scene_traffic import TrafficConfig
from edged.scenes.base import SceneModule
from edged.scenes.retail_shelf import RetailShelf
from edged.scenes.surveillance import Surveillance
from edged.scenes.traffic import Traffic

# built as scene(camera, camera_config, labels, width, height)
SceneFactory = Callable[[str, CameraConfig, list[str], int, int], SceneModule]

SCENES: dict[type[PresetConfig], SceneFactory] = {
    SurveillanceConfig: Surveillance,
    RetailShelfConfig: RetailShelf,
    TrafficConfig: Traffic,
}


def make_scene(
    camera: str, config: CameraConfig, labels: list[str], width: int, height: int
) -> SceneModule | None:
    if config.scene is None:
        return None
    return SCENES[type(config.scene)](camera, config, labels, width, height)
