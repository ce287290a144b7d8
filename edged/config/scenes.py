"""A camera's scene preset: one of the documented presets, chosen by ``preset``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from edged.config.scene_retail import RetailShelfConfig
from edged.config.scene_surveillance import SurveillanceConfig
from edged.config.scene_traffic import TrafficConfig

SceneConfig = Annotated[
    SurveillanceConfig | RetailShelfConfig | TrafficConfig, Field(discriminator="preset")
]
