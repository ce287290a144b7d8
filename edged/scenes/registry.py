"""The scene module for a camera's ``scene.preset``."""

from __future__ import annotations

import importlib

from edged.config.camera import CameraConfig
from edged.scenes.base import SceneModule

# preset → "module:Class"; each class is built as Class(camera, camera_config, labels, w, h)
PRESETS = {
    "surveillance": "edged.scenes.surveillance:Surveillance",
    "retail_shelf": "edged.scenes.retail_shelf:RetailShelf",
    "traffic": "edged.scenes.traffic:Traffic",
}


def make_scene(
    camera: str, config: CameraConfig, labels: list[str], width: int, height: int
) -> SceneModule | None:
    if config.scene is None:
        return None
    module, _, cls = PRESETS[config.scene.preset].partition(":")
    scene_cls = getattr(importlib.import_module(module), cls)
    return scene_cls(camera, config, labels, width, height)  # type: ignore[no-any-return]
