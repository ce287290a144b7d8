"""What a model says about itself before TensorRT sees it: its inputs, the precision its own
types carry, whether TensorRT would take its Q/DQ nodes; and the optimization profile of
its inputs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edged.engines.base import EngineError
from edged.engines.plan_cache import Profile, ShapeSpec, canonical_shapes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OnnxFacts:
    """What the builder needs to know about a model before TensorRT sees it."""

    inputs: dict[str, tuple[int | str, ...]]  # dims: int, or a name/"?" when dynamic
    precision: str  # what the model's own types say: fp32 | fp16 | int8 (Q/DQ)
    qdq_problems: tuple[str, ...] = ()  # why TensorRT would refuse its Q/DQ nodes


def inspect_onnx(onnx_path: Path) -> OnnxFacts:
    try:
        import onnx
        from onnx import TensorProto, numpy_helper
    except ImportError as exc:
        raise EngineError("building a plan needs onnx: pip install 'edged[tensorrt]'") from exc
    model = onnx.load(str(onnx_path), load_external_data=False)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consts = {
        n.output[0]: a.t
        for n in graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value"
    }
    inputs: dict[str, tuple[int | str, ...]] = {}
    for value in graph.input:
        if value.name in inits:
            continue
        dims = value.type.tensor_type.shape.dim
        inputs[value.name] = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims
        )
    fp16 = TensorProto.FLOAT16
    qdq = False
    problems: list[str] = []
    has_fp16 = any(i.data_type == fp16 for i in graph.initializer) or any(
        v.type.tensor_type.elem_type == fp16
        for v in (*graph.input, *graph.output, *graph.value_info)
    )
    for node in graph.node:
        if node.op_type == "Cast" and any(a.name == "to" and a.i == fp16 for a in node.attribute):
            has_fp16 = True
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        qdq = True
        label = f"{node.op_type} {node.name or node.output[0]!r}"
        zp_name = node.input[2] if len(node.input) > 2 else ""
        if not zp_name:
            x = inits.get(node.input[0])
            if node.op_type == "QuantizeLinear" or (x is not None and x.data_type != 3):
                problems.append(f"{label}: no zero point, so uint8 (TensorRT needs int8)")
            continue
        zp = inits.get(zp_name) or consts.get(zp_name)
        if zp is None:
            continue
        if zp.data_type == TensorProto.UINT8:
            problems.append(f"{label}: uint8 zero point (TensorRT needs symmetric int8)")
        elif numpy_helper.to_array(zp).any():
            problems.append(f"{label}: non-zero zero point (TensorRT needs symmetric int8)")
    precision = "int8" if qdq else "fp16" if has_fp16 else "fp32"
    return OnnxFacts(inputs=inputs, precision=precision, qdq_problems=tuple(problems))


def plan_shapes(
    facts: OnnxFacts, max_batch: int, input_shapes: ShapeSpec | None = None
) -> dict[str, Profile]:
    """The optimization profile of every input: ``input_shapes`` where given; else a
    dynamic batch (axis 0) becomes 1..max_batch (opt max_batch) and static dims stay. Any
    other dynamic dim must come from ``input_shapes``."""
    if max_batch < 1:
        raise EngineError(f"max_batch must be ≥ 1, got {max_batch}")
    given = dict(canonical_shapes(input_shapes or {}))
    unknown = set(given) - set(facts.inputs)
    if unknown:
        raise EngineError(
            f"input_shapes names {sorted(unknown)}, the model's inputs are {sorted(facts.inputs)}"
        )
    out: dict[str, Profile] = {}
    for name, dims in facts.inputs.items():
        if name in given:
            profile = given[name]
            for shape in profile:
                ok = len(shape) == len(dims) and all(
                    not isinstance(d, int) or d == s for d, s in zip(dims, shape, strict=False)
                )
                if not ok:
                    raise EngineError(
                        f"input_shapes[{name!r}] {shape} does not fit the model's {dims}"
                    )
            out[name] = profile
            continue
        mn, mx = [], []
        for axis, d in enumerate(dims):
            if isinstance(d, int):
                mn.append(d)
                mx.append(d)
            elif axis == 0:
                mn.append(1)
                mx.append(max_batch)
            else:
                raise EngineError(
                    f"input {name!r} has dynamic axis {axis} ({d!r}): give its "
                    f"(min, opt, max) shapes in input_shapes"
                )
        if dims and isinstance(dims[0], int) and dims[0] != max_batch:
            log.info(
                "input %r has a fixed batch of %d; max_batch %d does not apply",
                name,
                dims[0],
                max_batch,
            )
        out[name] = (tuple(mn), tuple(mx), tuple(mx))
    return out
