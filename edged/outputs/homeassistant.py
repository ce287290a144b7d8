"""Home Assistant MQTT discovery: one HA device per edged, entities on edged's own topics.

Sensors for zone occupancy, line totals and what the scene presets count (traffic per lane
and group, lane speeds, shelf stock, the surveillance inside estimate), binary sensors for
zone presence, camera status and alerts (on while any alert of the kind is active), images
of the published snapshots. Every entity is tied to edged's ``availability`` topic, so it
goes unavailable when the daemon stops or dies (last will). The configs are retained and
sent on each connect; a reload that drops an entity clears its config
(``MqttPublisher.replace_announce``).
"""

from __future__ import annotations

import json
import re
import socket
from typing import Any

from edged import __version__
from edged.config import Config
from edged.config.camera import CameraConfig, alert_kinds
from edged.config.scene_retail import RetailShelfConfig
from edged.config.scene_surveillance import SurveillanceConfig
from edged.config.scene_traffic import TrafficConfig
from edged.core import topics

# HA's units of speed (UnitOfSpeed) for the traffic preset's
SPEED_UNITS = {"kmh": "km/h", "mph": "mph"}
# addresses a server listens on that no browser can open
_ANY_HOST = ("0.0.0.0", "::", "")


def configuration_url(config: Config) -> str | None:
    """Where the device's link in HA goes: ``homeassistant.configuration_url``, else the
    debug view (its index lists the cameras), else nowhere."""
    ha = config.homeassistant
    if ha is not None and ha.configuration_url is not None:
        return ha.configuration_url
    view = config.debug_view
    if view is None:
        return None
    host = socket.gethostname() if view.host in _ANY_HOST else view.host
    if ":" in host:  # an IPv6 address goes in brackets in a URL
        host = f"[{host}]"
    return f"http://{host}:{view.port}/"


def snapshot_names(camera: CameraConfig) -> list[str]:
    """The ``<camera>/snapshots/<name>`` topics the camera publishes JPEGs on: per alert kind,
    and per object label when its classes are listed (without a list the model's labels are
    not known here)."""
    shots = camera.snapshots
    if shots is None or not shots.publish:
        return []
    names: set[str] = set()
    if "alert" in shots.on:
        names.update(alert_kinds(camera))
    if "new" in shots.on and camera.detect.classes is not None:
        names.update(camera.detect.classes)
    return sorted(names)


def _object_id(name: str) -> str:
    """``name`` as a part of an HA object id ([A-Za-z0-9_-]; a lane group may be any text)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


class _Entities:
    """The discovery configs being made: each entity on ``<base>/<topic>``, of one device."""

    def __init__(self, prefix: str, base: str, node: str, common: dict[str, Any]) -> None:
        self.prefix, self.base, self.node, self.common = prefix, base, node, common
        self.out: list[tuple[str, str]] = []

    def add(
        self, component: str, object_id: str, name: str, topic: str | None, **fields: Any
    ) -> None:
        """``topic``: the state topic below ``<prefix>/<device>/`` (None: an image's)."""
        payload: dict[str, Any] = {
            **self.common,
            "name": name,
            "unique_id": f"{self.node}_{object_id}",
        }
        if topic is not None:
            payload["state_topic"] = f"{self.base}/{topic}"
        payload.update(fields)
        config_topic = f"{self.prefix}/{component}/{self.node}/{object_id}/config"
        self.out.append((config_topic, json.dumps(payload)))

    def attributes(self, topic: str, template: str) -> dict[str, str]:
        return {
            "json_attributes_topic": f"{self.base}/{topic}",
            "json_attributes_template": template,
        }


def discovery(config: Config) -> list[tuple[str, str]]:
    """(topic, JSON payload) for every entity, to be published retained."""
    ha = config.homeassistant
    assert ha is not None and config.mqtt is not None
    device_id = config.device_id
    base = f"{config.mqtt.topic_prefix}/{device_id}"
    node = f"edged_{device_id}"
    device: dict[str, Any] = {
        "identifiers": [node],
        "name": ha.name or f"edged {device_id}",
        "manufacturer": "edged",
        "model": "edge video analytics",
        "sw_version": __version__,
    }
    url = configuration_url(config)
    if url is not None:
        device["configuration_url"] = url
    common: dict[str, Any] = {
        "availability_topic": f"{base}/{topics.AVAILABILITY}",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": device,
        "origin": {"name": "edged", "sw_version": __version__},
    }
    ents = _Entities(ha.prefix, base, node, common)
    for cam_name, cam in config.cameras.items():
        if cam.enabled:
            _camera(ents, cam_name, cam)
    return ents.out


def _camera(ents: _Entities, cam_name: str, cam: CameraConfig) -> None:
    ents.add(
        "binary_sensor",
        f"{cam_name}_status",
        f"{cam_name} camera",
        topics.camera_status(cam_name),
        device_class="connectivity",
        value_template="{{ 'ON' if value_json.status == 'online' else 'OFF' }}",
    )
    for zone in cam.zones:
        occupancy = topics.zone_occupancy(cam_name, zone)
        ents.add(
            "sensor",
            f"{cam_name}_{zone}_occupancy",
            f"{cam_name} {zone} occupancy",
            occupancy,
            value_template="{{ value_json.total }}",
            state_class="measurement",
            unit_of_measurement="objects",
            **ents.attributes(occupancy, "{{ value_json.counts | tojson }}"),
        )
        ents.add(
            "binary_sensor",
            f"{cam_name}_{zone}_presence",
            f"{cam_name} {zone} presence",
            occupancy,
            device_class="occupancy",
            value_template="{{ 'ON' if value_json.total > 0 else 'OFF' }}",
        )
    for line in cam.lines:
        for direction in ("in", "out"):
            ents.add(
                "sensor",
                f"{cam_name}_{line}_{direction}",
                f"{cam_name} {line} {direction}",
                topics.line_totals(cam_name, line),
                value_template=f"{{{{ value_json.{direction}_total }}}}",
                state_class="total_increasing",
                unit_of_measurement="objects",
            )
    for kind in alert_kinds(cam):
        # the count of active alerts, not the latest alert message: with three vehicles
        # speeding and one gone, the latest says "end" while two still are
        active = topics.alerts_active(cam_name, kind)
        ents.add(
            "binary_sensor",
            f"{cam_name}_{kind}",
            f"{cam_name} {kind.replace('_', ' ')}",
            active,
            device_class="problem",
            value_template="{{ 'ON' if value_json.active > 0 else 'OFF' }}",
            **ents.attributes(
                active, "{{ {'active': value_json.active, 'alerts': value_json.alerts} | tojson }}"
            ),
        )
    scene = cam.scene
    if isinstance(scene, TrafficConfig):
        _traffic(ents, cam_name, scene)
    elif isinstance(scene, RetailShelfConfig):
        for slot in scene.slots:
            stock = topics.scene(cam_name, f"shelf/{slot}")
            ents.add(
                "sensor",
                f"{cam_name}_slot_{slot}_stock",
                f"{cam_name} {slot} stock",
                stock,
                # null while the slot is not yet judged: the sensor shows unknown
                value_template="{{ value_json.after }}",
                state_class="measurement",
                unit_of_measurement="items",
                **ents.attributes(
                    stock,
                    "{{ {'expected': value_json.expected, 'method': value_json.method} | tojson }}",
                ),
            )
    elif isinstance(scene, SurveillanceConfig) and scene.entrances:
        inside = topics.scene(cam_name, "surveillance/occupancy")
        ents.add(
            "sensor",
            f"{cam_name}_inside",
            f"{cam_name} inside",
            inside,
            value_template="{{ value_json.inside }}",
            state_class="measurement",
            unit_of_measurement="objects",
            **ents.attributes(
                inside,
                "{{ {'entered': value_json.entered, 'exited': value_json.exited} | tojson }}",
            ),
        )
    for name in snapshot_names(cam):
        ents.add(
            "image",
            f"{cam_name}_snapshot_{name}",
            f"{cam_name} {name.replace('_', ' ')} snapshot",
            None,
            image_topic=f"{ents.base}/{topics.snapshot(cam_name, name)}",
            content_type="image/jpeg",
        )


def _traffic(ents: _Entities, cam_name: str, scene: TrafficConfig) -> None:
    """Vehicles counted per lane and per group (``traffic_totals``), and each lane's latest
    passage speed (``traffic_passage``)."""
    totals = topics.scene(cam_name, "traffic/totals")
    for lane in scene.lanes:
        key = json.dumps(lane)  # a quoted name in the template, whatever its characters
        ents.add(
            "sensor",
            f"{cam_name}_lane_{lane}_vehicles",
            f"{cam_name} {lane} vehicles",
            totals,
            value_template=f"{{{{ value_json.lanes[{key}].total }}}}",
            state_class="total_increasing",
            unit_of_measurement="vehicles",
            **ents.attributes(totals, f"{{{{ value_json.lanes[{key}] | tojson }}}}"),
        )
        passages = topics.scene(cam_name, f"traffic/lanes/{lane}")
        ents.add(
            "sensor",
            f"{cam_name}_lane_{lane}_speed",
            f"{cam_name} {lane} speed",
            passages,
            # a passage too short to measure says null: the sensor shows unknown
            value_template="{{ value_json.mean_speed }}",
            device_class="speed",
            state_class="measurement",
            unit_of_measurement=SPEED_UNITS[scene.unit],
            **ents.attributes(
                passages,
                "{{ {'label': value_json.label, 'direction': value_json.direction,"
                " 'max_speed': value_json.max_speed} | tojson }}",
            ),
        )
    members: dict[str, list[str]] = {}
    for name, settings in scene.lanes.items():
        members.setdefault(settings.group or name, []).append(name)
    for group, lanes in sorted(members.items()):
        if lanes == [group]:
            continue  # a lane of its own (the default): its lane sensor says it
        key = json.dumps(group)
        ents.add(
            "sensor",
            f"{cam_name}_group_{_object_id(group)}_vehicles",
            f"{cam_name} {group.replace('_', ' ')} vehicles",
            totals,
            value_template=f"{{{{ value_json.groups[{key}].total }}}}",
            state_class="total_increasing",
            unit_of_measurement="vehicles",
            **ents.attributes(totals, f"{{{{ value_json.groups[{key}] | tojson }}}}"),
        )
