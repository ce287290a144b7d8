"""How a plan gets the precision asked for out of a model with the installed TensorRT, as
assumed for TensorRT 10.x and 11.x (the 10.13 and 11.4 Python bindings were inspected; no
GPU was available to run them):

- TensorRT ≥ 10 networks are always explicit-batch (the EXPLICIT_BATCH flag is deprecated in
  10 and gone in 11); it is set only for TensorRT < 10.
- When the ONNX already carries the precision asked for — an FP32 model for fp32, an FP16
  model (e.g. onnxconverter-common's ``keep_io_types``) for fp16, a Q/DQ model from
  ``edged calibrate`` for int8 — the network is created ``STRONGLY_TYPED``: TensorRT follows
  the model's types, which works the same on 10.x and 11.x.
- An FP32 model asked to build fp16 uses ``BuilderFlag.FP16`` where that flag exists
  (TensorRT 10.x, weakly typed network). TensorRT 11 removed the flag; there the model is
  converted to FP16 first (onnxconverter-common, ``keep_io_types=True``, the nodes the
  caller names kept in FP32, e.g. a prepared graph's preprocessing) and built strongly typed.
- int8 needs a Q/DQ model. Implicit calibration (``int8_calibrator``) is not used: TensorRT 11
  removed it. TensorRT's Q/DQ must be symmetric signed INT8 (zero point 0, int8 type); a
  model quantized for ONNX Runtime on x86 with uint8 activations is refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edged.engines.base import EngineError
from edged.engines.onnx_facts import OnnxFacts
from edged.engines.plan_cache import PRECISIONS


@dataclass(frozen=True)
class BuildStrategy:
    strongly_typed: bool
    flags: tuple[str, ...] = ()  # BuilderFlag names
    convert_fp16: bool = False

    def describe(self) -> str:
        parts = ["strongly typed" if self.strongly_typed else "weakly typed"]
        parts += [f"BuilderFlag.{f}" for f in self.flags]
        if self.convert_fp16:
            parts.append("converted to FP16 first")
        return ", ".join(parts)


@dataclass(frozen=True)
class TrtCapabilities:
    """What the installed TensorRT offers, by name (so the decision is testable without it)."""

    version: str
    network_flags: frozenset[str] = field(default_factory=frozenset)
    builder_flags: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, trt: Any) -> TrtCapabilities:
        def members(enum: Any) -> frozenset[str]:
            return frozenset(m for m in dir(enum) if m.isupper())

        return cls(
            version=str(trt.__version__),
            network_flags=members(trt.NetworkDefinitionCreationFlag),
            builder_flags=members(trt.BuilderFlag),
        )

    @property
    def major(self) -> int:
        try:
            return int(self.version.split(".")[0])
        except ValueError:
            return 0


def choose_strategy(
    requested: str, facts: OnnxFacts, caps: TrtCapabilities, can_convert_fp16: bool = True
) -> BuildStrategy:
    """How to get ``requested`` precision out of this model with this TensorRT (see the
    module docstring); EngineError saying what to do when it cannot."""
    if requested not in PRECISIONS:
        raise EngineError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    strongly = "STRONGLY_TYPED" in caps.network_flags
    carried = facts.precision
    if requested == "int8":
        if carried != "int8":
            raise EngineError(
                f"int8 needs a Q/DQ model: run `edged calibrate` and build that; this model is "
                f"{carried} (TensorRT's implicit INT8 calibration is not used: TensorRT 11 "
                f"removed it)"
            )
        if facts.qdq_problems:
            shown = "; ".join(facts.qdq_problems[:3])
            more = len(facts.qdq_problems) - 3
            raise EngineError(
                "TensorRT takes symmetric int8 Q/DQ only (zero point 0); calibrate for "
                f"TensorRT: {shown}" + (f" (and {more} more)" if more > 0 else "")
            )
        if strongly:
            return BuildStrategy(strongly_typed=True)
        if "INT8" in caps.builder_flags:
            return BuildStrategy(strongly_typed=False, flags=("INT8",))
        raise EngineError(f"TensorRT {caps.version} has neither strongly typed networks nor INT8")
    if carried == "int8":
        raise EngineError(
            f"this is a Q/DQ (int8) model; build it with precision int8, not {requested}"
        )
    if requested == carried:
        return BuildStrategy(strongly_typed=strongly)
    if requested == "fp32":  # an fp16 model asked for fp32
        raise EngineError("this model is fp16; build it as fp16, or build the fp32 model")
    # an fp32 model asked for fp16
    if "FP16" in caps.builder_flags:
        return BuildStrategy(strongly_typed=False, flags=("FP16",))
    if strongly and can_convert_fp16:
        return BuildStrategy(strongly_typed=True, convert_fp16=True)
    raise EngineError(
        f"TensorRT {caps.version} has no FP16 builder flag: convert the model to FP16 first "
        "(onnxconverter-common, keep_io_types) or pip install 'edged[tensorrt]'"
    )
