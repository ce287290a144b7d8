"""The JSON Schema of every event payload (v1), shipped beside this module."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of every JSON payload, shipped in the package."""
    text = resources.files("edged.outputs").joinpath("event-v1.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema
