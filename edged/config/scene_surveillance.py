"""Settings of the surveillance scene preset."""

from __future__ import annotations

import re
from typing import ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from edged.config.base import StrictModel
from edged.config.scene_preset import PresetConfig

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class TimeWindow(StrictModel):
    """Armed from ``start`` to ``end`` (local time) on the given days; an ``end`` before the
    ``start`` runs past midnight into the next day."""

    days: list[Day] = Field(default_factory=lambda: list(DAYS))
    start: str = Field("00:00", description="HH:MM")
    end: str = Field("24:00", description="HH:MM, or 24:00")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if v != "24:00" and not _HHMM.match(v):
            raise ValueError(f"{v!r} is not a time of day HH:MM")
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.start == self.end:
            raise ValueError("start and end are equal: the window would be empty")
        return self


class RestrictedZone(StrictModel):
    classes: list[str] | None = Field(None, description="who intrudes (default: every class)")
    schedule: list[TimeWindow] = Field(
        default_factory=lambda: [TimeWindow()], description="when the zone is armed"
    )


class SurveillanceConfig(PresetConfig):
    preset: Literal["surveillance"]
    alerts: ClassVar[tuple[str, ...]] = ("intrusion",)
    event_kinds: ClassVar[tuple[str, ...]] = ("entrance_occupancy",)

    timezone: str | None = Field(None, description="IANA name for schedules (default: local)")
    restricted: dict[str, RestrictedZone] = Field(
        default_factory=dict, description="zones (by name) where presence is an intrusion"
    )
    entrances: list[str] = Field(
        default_factory=list,
        description="lines (by name) whose in − out estimate how many are inside",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r}") from None
        return v
