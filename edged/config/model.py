"""Models (detectors, segmenters) a device loads once and shares between cameras."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from edged.config.base import StrictModel
from edged.config.paths import resolve

Backend = Literal["auto", "cpu", "cuda", "tensorrt", "tensorrt-native"]


def default_cache_dir() -> Path:
    """systemd's CacheDirectory= when run as a service, else the user's cache."""
    base = os.environ.get("CACHE_DIRECTORY") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edged"
    )
    return Path(base)


class ModelConfig(StrictModel):
    path: Path
    backend: Backend = Field(
        "auto",
        description="ONNX Runtime with the TensorRT, CUDA or CPU provider (auto: the best "
        "present), or tensorrt-native: TensorRT plans built by `edged engine build`",
    )
    precision: Literal["auto", "fp32", "fp16", "int8"] | None = Field(
        "auto",
        description="auto: on the CPU the model's INT8 variant where the CPU has VNNI/AMX "
        "or a speed check (once per machine, remembered in cache_dir) finds it faster, else "
        "the file's own precision; int8 on the CPU: the INT8 variant; on TensorRT what it "
        "builds; null: the file's own precision",
    )
    threads: int = Field(2, ge=1, le=256, description="ONNX Runtime threads, in all")
    streams: int | Literal["auto"] = Field(
        "auto",
        description="engine runs in flight at once, each with threads ÷ streams intra-op "
        "threads (auto: on the CPU one per thread for an INT8 model, one for FP32 — what "
        "measured faster here; one on a GPU)",
    )

    @field_validator("streams")
    @classmethod
    def _streams(cls, v: int | str) -> int | str:
        if isinstance(v, int) and not 1 <= v <= 64:
            raise ValueError("streams: 1 to 64, or auto")
        return v

    preprocess: Literal["auto", "cpu", "graph"] = Field(
        "auto",
        description="graph: resize and normalise inside the model, so a GPU engine does it "
        "(auto: graph on GPU backends, the CPU's lookup tables otherwise)",
    )
    max_batch: int = Field(4, ge=1, le=64, description="frames per inference, across cameras")
    batch_timeout_ms: float = Field(
        5.0, ge=0, le=1000, description="how long a partial batch waits for more frames"
    )
    cache_dir: Path = Field(
        default_factory=default_cache_dir,
        description="built engines, and the INT8 speed check's result",
    )

    @field_validator("path", "cache_dir")
    @classmethod
    def _relative_to_config(cls, v: Path, info: ValidationInfo) -> Path:
        return resolve(v, info)
