"""The precision a model config runs at, given the model file and the backend."""

from __future__ import annotations

from edged.config.model import ModelConfig
from edged.engines.base import EngineError
from edged.models.manifest import Manifest


def check_precision(config: ModelConfig, manifest: Manifest, backend: str) -> str:
    """The precision to run at; a combination that cannot work is refused with a hint."""
    model = manifest.precision
    wanted = model if config.precision in (None, "auto") else config.precision
    if wanted == model:
        return wanted
    if backend in ("tensorrt", "tensorrt-native") and model == "fp32" and wanted == "fp16":
        return wanted  # TensorRT builds FP16 kernels from an FP32 model
    hint = {
        "int8": "make an INT8 model with `edged calibrate` and point path at it",
        "fp16": "make an FP16 model with `edged convert --fp16` and point path at it",
        "fp32": "point path at the FP32 model",
    }[wanted]
    raise EngineError(
        f"{config.path.name} is {model}; precision {wanted} on backend {backend} needs "
        f"a {wanted} model: {hint}"
    )
