"""Home Assistant MQTT discovery: one HA device per edged, entities on edged's own topics.

Sensors for zone occupancy and line totals, binary sensors for zone presence, camera status
and alerts (on while any alert of the kind is active); every entity is tied to edged's
``availability`` topic, so it goes unavailable when the daemon stops or dies (last will).
The configs are retained and sent on each connect.
"""

from __future__ import annotations

import json
from typing import Any

from edged import __version__
from edged.config import Config
from edged.config.camera import alert_kinds
from edged.core import topics


def discovery(config: Config) -> list[tuple[str, str]]:
    """(topic, JSON payload) for every entity, to be published retained."""
    ha = config.homeassistant
    assert ha is not None and config.mqtt is not None
    device_id = config.device_id
    base = f"{config.mqtt.topic_prefix}/{device_id}"
    node = f"edged_{device_id}"
    common: dict[str, Any] = {
        "availability_topic": f"{base}/{topics.AVAILABILITY}",
        "payload_available": "online",
        "payload_not_available": "offline",
        "device": {
            "identifiers": [node],
            "name": ha.name or f"edged {device_id}",
            "manufacturer": "edged",
            "model": "edge video analytics",
            "sw_version": __version__,
        },
        "origin": {"name": "edged", "sw_version": __version__},
    }
    out: list[tuple[str, str]] = []

    def entity(component: str, object_id: str, name: str, topic: str, **fields: Any) -> None:
        unique = f"{node}_{object_id}"
        payload = {
            **common,
            "name": name,
            "unique_id": unique,
            "state_topic": f"{base}/{topic}",
            **fields,
        }
        out.append((f"{ha.prefix}/{component}/{node}/{object_id}/config", json.dumps(payload)))

    for cam_name, cam in config.cameras.items():
        if not cam.enabled:
            continue
        entity(
            "binary_sensor",
            f"{cam_name}_status",
            f"{cam_name} camera",
            topics.camera_status(cam_name),
            device_class="connectivity",
            value_template="{{ 'ON' if value_json.status == 'online' else 'OFF' }}",
        )
        for zone in cam.zones:
            occupancy = topics.zone_occupancy(cam_name, zone)
            entity(
                "sensor",
                f"{cam_name}_{zone}_occupancy",
                f"{cam_name} {zone} occupancy",
                occupancy,
                value_template="{{ value_json.total }}",
                state_class="measurement",
                unit_of_measurement="objects",
                json_attributes_topic=f"{base}/{occupancy}",
                json_attributes_template="{{ value_json.counts | tojson }}",
            )
            entity(
                "binary_sensor",
                f"{cam_name}_{zone}_presence",
                f"{cam_name} {zone} presence",
                occupancy,
                device_class="occupancy",
                value_template="{{ 'ON' if value_json.total > 0 else 'OFF' }}",
            )
        for line in cam.lines:
            for direction in ("in", "out"):
                entity(
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
            entity(
                "binary_sensor",
                f"{cam_name}_{kind}",
                f"{cam_name} {kind.replace('_', ' ')}",
                active,
                device_class="problem",
                value_template="{{ 'ON' if value_json.active > 0 else 'OFF' }}",
                json_attributes_topic=f"{base}/{active}",
                json_attributes_template=(
                    "{{ {'active': value_json.active, 'alerts': value_json.alerts} | tojson }}"
                ),
            )
    return out
