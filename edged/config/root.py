"""The whole device config: one YAML file per device."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, Field, PrivateAttr, model_validator

from edged.config.base import NAME, PositiveSeconds, StrictModel, topic_level_names
from edged.config.camera import CameraConfig
from edged.config.class_groups import DEFAULT_GROUPS, check_groups, expand_classes
from edged.config.events import (
    DebugViewConfig,
    HomeAssistantConfig,
    JournalConfig,
    MetricsConfig,
    MqttConfig,
)
from edged.config.model import ModelConfig
from edged.config.outputs import OutputsConfig
from edged.config.service import ServiceConfig

Loc = tuple[str | int, ...]


class Config(StrictModel):
    device_id: str = Field(pattern=NAME)
    mqtt: MqttConfig | None = Field(None, description="absent: events go to the journal only")
    outputs: OutputsConfig = Field(
        OutputsConfig(), description="outputs beside mqtt, each fed from the journal"
    )
    journal: JournalConfig = JournalConfig()
    homeassistant: HomeAssistantConfig | None = Field(
        None, description="Home Assistant MQTT discovery (needs mqtt)"
    )
    metrics: MetricsConfig | None = Field(None, description="absent: no Prometheus endpoint")
    debug_view: DebugViewConfig | None = Field(None, description="absent: no debug view")
    stats_interval_s: PositiveSeconds = Field(60.0, description="how often to publish stats")
    service: ServiceConfig = ServiceConfig()
    class_groups: Annotated[dict[str, list[str]], AfterValidator(check_groups)] = Field(
        default_factory=dict,
        description="names for several labels, usable in any classes list (shipped: vehicle)",
    )
    models: Annotated[dict[str, ModelConfig], AfterValidator(topic_level_names)]
    cameras: Annotated[dict[str, CameraConfig], AfterValidator(topic_level_names)]
    # where each value came from (file:line:col), filled by the loader for later errors
    _places: dict[Loc, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _expand_groups(cls, data: Any) -> Any:
        """Group names in the cameras' ``classes`` lists become their labels (a malformed
        ``class_groups`` is left for its own validation to report)."""
        if not isinstance(data, dict) or "cameras" not in data:
            return data
        groups = data.get("class_groups") or {}
        if not isinstance(groups, dict) or not all(isinstance(v, list) for v in groups.values()):
            return data
        return {**data, "cameras": expand_classes(data["cameras"], {**DEFAULT_GROUPS, **groups})}

    def reference_errors(self) -> list[tuple[Loc, str]]:
        """Errors that span sections (a camera naming a model that isn't defined)."""
        errors: list[tuple[Loc, str]] = []
        known = ", ".join(sorted(self.models)) or "none"
        for name, cam in self.cameras.items():
            refs = [("detect", cam.detect.model)]
            if cam.segment is not None:
                refs.append(("segment", cam.segment.model))
            for section, model in refs:
                if model not in self.models:
                    errors.append(
                        (
                            ("cameras", name, section, "model"),
                            f"unknown model {model!r} (defined: {known})",
                        )
                    )
            snap = cam.snapshots
            if snap is not None and snap.privacy.blur == "mask" and cam.segment is None:
                errors.append(
                    (
                        ("cameras", name, "snapshots", "privacy", "blur"),
                        "mask needs a person segmenter: add segment: {model: …} to the camera",
                    )
                )
            if cam.segment is None:
                for zone, z in cam.zones.items():
                    if z.occupancy_ratio:
                        errors.append(
                            (
                                ("cameras", name, "zones", zone, "occupancy_ratio"),
                                "needs a person segmenter: add segment: {model: …} to the camera",
                            )
                        )
        m, d = self.metrics, self.debug_view
        shared = m is not None and d is not None and (m.host, m.port) == (d.host, d.port)
        if shared and m is not None and d is not None and m.access() != d.access():
            errors.append(
                (
                    ("debug_view",),
                    "served by the metrics server (same host and port), so its token,"
                    " username, password, max_connections and read_timeout_s must be the"
                    " same as metrics'",
                )
            )
        if self.homeassistant is not None and self.mqtt is None:
            errors.append((("homeassistant",), "needs an mqtt section to publish to"))
        if not any(c.enabled for c in self.cameras.values()):
            errors.append((("cameras",), "no enabled camera"))
        return errors
