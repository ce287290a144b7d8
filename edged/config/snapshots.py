"""Snapshots: a JPEG on object ``new`` and alert ``start`` events, with privacy masking."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from edged.config.base import AgeSeconds, StrictModel
from edged.config.paths import resolve


class PrivacyConfig(StrictModel):
    """Blur people (any of ``classes``) before a snapshot leaves the device."""

    blur: Literal["off", "boxes", "mask"] = Field(
        "off", description="boxes: every detected box; mask: the person segmenter's mask"
    )
    classes: list[str] = Field(default_factory=lambda: ["person"], min_length=1)


class SnapshotConfig(StrictModel):
    on: list[Literal["new", "alert"]] = Field(
        ["new", "alert"], min_length=1, description="which events"
    )
    mode: Literal["frame", "crop"] = Field(
        "frame", description="frame: the whole frame with boxes; crop: the object (alerts: frame)"
    )
    publish: bool = Field(True, description="to <camera>/snapshots/<label|alert>, retained")
    dir: Path | None = Field(None, description="also write files here (<dir>/<camera>/…)")
    keep: int = Field(1000, ge=1, description="files kept per camera")
    max_age_s: AgeSeconds | None = Field(7 * 86400.0, description="files older are deleted")
    quality: int = Field(85, ge=10, le=100, description="JPEG quality")
    max_width: int | None = Field(None, ge=64, description="scale larger frames down to this")
    crop_margin: float = Field(0.15, ge=0, le=1, description="crop: margin around the box")
    privacy: PrivacyConfig = PrivacyConfig()

    @field_validator("dir")
    @classmethod
    def _relative_to_config(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else resolve(v, info)
