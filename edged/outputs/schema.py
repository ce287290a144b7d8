"""The JSON Schema of every event payload (v1): the envelope and each kind's fields are shipped
beside this module; which kinds exist comes from here and from the scene presets."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from edged.config.scenes import PRESETS

# the kinds of events edged makes whatever the scene
GENERIC_KINDS = (
    "alert",
    "alerts_active",
    "camera_status",
    "config_reload",
    "journal_recovered",
    "line_crossing",
    "line_totals",
    "object",
    "overflow",
    "stats",
    "zone_enter",
    "zone_exit",
    "zone_occupancy",
)


def event_kinds() -> list[str]:
    """Every event kind, sorted: the generic ones and every scene preset's."""
    return sorted({*GENERIC_KINDS, *(k for model in PRESETS.values() for k in model.event_kinds)})


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of every JSON payload: the shipped envelope and
    definitions, with ``kind`` one of ``event_kinds()`` and each kind's fields required."""
    text = resources.files("edged.outputs").joinpath("event-v1.schema.json").read_text("utf-8")
    shipped: dict[str, Any] = json.loads(text)
    defs: dict[str, Any] = shipped["$defs"]
    kinds = event_kinds()
    missing = [k for k in kinds if k not in defs]
    if missing:
        raise LookupError(f"event-v1.schema.json has no $defs for the kinds {missing}")
    schema = {k: v for k, v in shipped.items() if k != "$defs"}
    schema["properties"] = {**shipped["properties"], "kind": {"enum": kinds}}
    schema["allOf"] = [
        {"if": {"properties": {"kind": {"const": k}}}, "then": {"$ref": f"#/$defs/{k}"}}
        for k in kinds
    ]
    schema["$defs"] = defs
    return schema
