"""A camera's scene preset: one of the documented presets, chosen by ``preset``.

The union below is the one list of presets; everything else that depends on which presets
exist (the scene classes, Home Assistant's alert entities, the event schema's kinds) reads
``PRESETS`` and each preset's declarations (``edged.config.scene_preset``).
"""

from __future__ import annotations

from typing import Annotated, get_args

from pydantic import Field

from edged.config.scene_preset import PresetConfig
from edged.config.scene_retail import RetailShelfConfig
from edged.config.scene_surveillance import SurveillanceConfig
from edged.config.scene_traffic import TrafficConfig

SceneConfig = Annotated[
    SurveillanceConfig | RetailShelfConfig | TrafficConfig, Field(discriminator="preset")
]

# the settings model of every preset, by preset name
PRESETS: dict[str, type[PresetConfig]] = {
    model.preset_name(): model for model in get_args(get_args(SceneConfig)[0])
}
