"""Models (detectors) a device loads once and shares between cameras."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from edged.config.base import StrictModel
from edged.config.paths import resolve


class ModelConfig(StrictModel):
    path: Path
    backend: Literal["auto", "cpu", "cuda", "tensorrt"] = "auto"
    precision: Literal["fp32"] = "fp32"
    threads: int = Field(2, ge=1, le=256, description="ONNX Runtime intra-op threads")

    @field_validator("path")
    @classmethod
    def _relative_to_config(cls, v: Path, info: ValidationInfo) -> Path:
        return resolve(v, info)
