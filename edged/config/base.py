"""The base every config model shares: unknown keys are errors, values are checked on assignment."""

from __future__ import annotations

import re
from typing import Annotated, TypeVar

from pydantic import BaseModel, ConfigDict, Field

NAME = r"^[A-Za-z0-9_-]+$"
T = TypeVar("T")

# The longest a timeout, delay or interval may be. Longer is a typo or ``.inf``: a wait
# that never ends, or a backoff that overflows when it doubles.
MAX_DURATION_S = 86400.0
# The longest a retention age (how long files are kept) may be.
MAX_AGE_S = 366 * 86400.0

Seconds = Annotated[float, Field(ge=0, le=MAX_DURATION_S)]
PositiveSeconds = Annotated[float, Field(gt=0, le=MAX_DURATION_S)]
AgeSeconds = Annotated[float, Field(gt=0, le=MAX_AGE_S)]


class StrictModel(BaseModel):
    # no ``.inf`` or ``.nan`` anywhere: every number of a config is a finite one
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def topic_level_names(items: dict[str, T]) -> dict[str, T]:
    """Names that become MQTT topic levels (cameras, zones, lines) must be plain words."""
    for name in items:
        if not re.match(NAME, name):
            raise ValueError(f"name {name!r} must match {NAME} (it becomes an MQTT topic level)")
    return items
