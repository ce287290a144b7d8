"""The base every config model shares: unknown keys are errors, values are checked on assignment."""

from __future__ import annotations

import re
from typing import TypeVar

from pydantic import BaseModel, ConfigDict

NAME = r"^[A-Za-z0-9_-]+$"
T = TypeVar("T")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def topic_level_names(items: dict[str, T]) -> dict[str, T]:
    """Names that become MQTT topic levels (cameras, zones, lines) must be plain words."""
    for name in items:
        if not re.match(NAME, name):
            raise ValueError(f"name {name!r} must match {NAME} (it becomes an MQTT topic level)")
    return items
