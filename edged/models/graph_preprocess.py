"""Preprocessing inside the model: prepend resize, colour order, normalisation and layout to
an ONNX graph so that a GPU engine takes camera frames as they are decoded.

The prepared model's only image input is ``frames``: uint8 ``[B, H, W, 3]`` BGR, H and W
dynamic (any camera size) or fixed to one source size. The graph then does what
:class:`edged.models.preprocess.ImagePreprocessor` does on the CPU:

1. ``Cast`` to float32 and ``Transpose`` NHWC → NCHW (resizing runs on the two innermost
   axes, the layout every backend's linear resize supports);
2. ``Gather`` the channels into RGB order when the model wants RGB;
3. ``Resize`` (mode ``linear``, ``coordinate_transformation_mode=half_pixel``, no antialias)
   to the model's input size (stretch), or to the aspect-preserving size of a letterbox
   followed by ``Pad`` with ``pad_value``;
4. ``Round`` (optional, on by default): OpenCV resizes uint8 pictures in fixed point and
   rounds to integers; rounding the float result reproduces that for nearly every value
   (see the tests for the measured difference);
5. ``(x − mean) / std`` per channel, as ``Sub`` then ``Div`` in float32: the same two
   operations the CPU path's lookup table was computed with, so equal levels give
   bit-identical values;
6. ``Transpose`` back to NHWC when the model's input is NHWC.

``half_pixel`` is OpenCV's ``INTER_LINEAR`` sampling grid (source = (dst + 0.5) / scale
− 0.5, clamped at the border). Neither OpenCV's ``INTER_LINEAR`` nor ONNX ``Resize`` without
``antialias`` low-pass filters on downscaling, so the two agree in that too.

Letterbox with dynamic H and W computes the placement from ``Shape`` with int64 arithmetic
only (``Mul``, ``Div``, ``Sub``, ``Add``, ``Min``): new size = round-half-to-even of
``side · target / limiting side`` (Python's ``round`` of :func:`edged.models.preprocess.place`,
evaluated exactly rather than in float64), offsets ``(target − new) // 2`` (which is what
Ultralytics' ``round(d / 2 − 0.1)`` amounts to for integers). Integer shape arithmetic is
what TensorRT supports best for shape tensors; ``Resize`` then takes a computed ``sizes``
tensor and ``Pad`` computed ``pads`` (assumed supported by TensorRT's ONNX parser ≥ 10 for
dynamic pads; with ``source_size`` fixed, sizes and pads are constants and no shape
arithmetic is left in the graph, which is also what to use if a parser refuses it).

The model's own outputs are untouched. The preparation is recorded in the model's
``metadata_props`` under ``edged.preprocess`` (see :func:`preparation_of`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edged.models.manifest import InputSpec, ModelError
from edged.models.preprocess import place

FRAMES = "frames"
METADATA_KEY = "edged.preprocess"
PREFIX = "edged_pre/"
MIN_OPSET = 13


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # onnx is in the tensorrt and bench extras
        raise ModelError("preparing a graph needs onnx: pip install 'edged[tensorrt]'") from exc
    return onnx


class _Graph:
    """Collects the nodes and constants prepended to the model, all named under PREFIX."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: set[str] = set()

    def _new(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"tensor {name!r} defined twice")
        self._names.add(name)
        return name

    def const(self, name: str, value: Any, dtype: Any) -> str:
        full = self._new(PREFIX + name)
        array = np.asarray(value, dtype=dtype)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, full))
        return full

    def op(
        self, op_type: str, inputs: list[str], name: str, out: str | None = None, **attrs: Any
    ) -> str:
        output = self._new(out or PREFIX + name)
        self.nodes.append(
            self.onnx.helper.make_node(op_type, inputs, [output], name=PREFIX + name, **attrs)
        )
        return output


def _round_half_even_div(g: _Graph, num: str, den: str, name: str) -> str:
    """round(num / den) for positive int64 tensors, ties to even, in integer ops only.

    With q = num // den and r = num − q·den: round up when 2r > den, or 2r = den and q is
    odd. t = 2r + (q mod 2) is ≥ den + 1 exactly in those cases and ≤ 2·den − 1 always, so
    the carry is t // (den + 1).
    """
    one = g.const(f"{name}/one", [1], np.int64)
    two = g.const(f"{name}/two", [2], np.int64)
    q = g.op("Div", [num, den], f"{name}/q")
    r = g.op("Sub", [num, g.op("Mul", [q, den], f"{name}/qd")], f"{name}/r")
    q_odd = g.op(
        "Sub",
        [q, g.op("Mul", [g.op("Div", [q, two], f"{name}/q2"), two], f"{name}/q22")],
        f"{name}/qodd",
    )
    t = g.op("Add", [g.op("Mul", [r, two], f"{name}/r2"), q_odd], f"{name}/t")
    carry = g.op("Div", [t, g.op("Add", [den, one], f"{name}/den1")], f"{name}/carry")
    return g.op("Add", [q, carry], f"{name}/rounded")


def letterbox_shape_nodes(g: _Graph, frame_shape: str, size: tuple[int, int]) -> tuple[str, str]:
    """From the shape of an NHWC frame batch, the letterbox's resized height and width
    ``[h', w']`` and its ONNX ``Pad`` pads for an NCHW tensor
    ``[0, 0, top, left, 0, 0, bottom, right]`` (int64 tensors)."""
    in_w, in_h = size
    hw = g.op(
        "Slice",
        [frame_shape, g.const("lb/s1", [1], np.int64), g.const("lb/s3", [3], np.int64)],
        "lb/hw",
    )  # [H, W]
    wh = g.op("Gather", [frame_shape, g.const("lb/i21", [2, 1], np.int64)], "lb/wh", axis=0)
    target = g.const("lb/target", [in_h, in_w], np.int64)
    # new_h = min(in_h, round(H·in_w / W)), new_w = min(in_w, round(W·in_h / H)): the side
    # that limits the scale comes out at exactly its target, the other one rounded
    num = g.op("Mul", [hw, g.const("lb/cross", [in_w, in_h], np.int64)], "lb/num")
    new_hw = g.op("Min", [_round_half_even_div(g, num, wh, "lb/rhe"), target], "lb/new_hw")
    spare = g.op("Sub", [target, new_hw], "lb/spare")
    top_left = g.op("Div", [spare, g.const("lb/two", [2], np.int64)], "lb/top_left")
    bottom_right = g.op("Sub", [spare, top_left], "lb/bottom_right")
    zeros = g.const("lb/zeros", [0, 0], np.int64)
    pads = g.op("Concat", [zeros, top_left, zeros, bottom_right], "lb/pads", axis=0)
    return new_hw, pads


def prepare_graph(
    onnx_path: Path,
    spec: InputSpec,
    out_path: Path,
    source_size: tuple[int, int] | None = None,
    *,
    round_resized: bool = True,
) -> Path:
    """Write to ``out_path`` the model at ``onnx_path`` taking ``frames`` (uint8
    ``[B, H, W, 3]`` BGR) instead of the preprocessed tensor ``spec.name``.

    ``source_size`` (width, height) fixes H and W, so all sizes and pads are constants;
    without it H and W are dynamic. The batch dimension is the model's own.
    """
    onnx = _onnx()
    from onnx import TensorProto, helper

    onnx_path, out_path = Path(onnx_path), Path(out_path)
    model = onnx.load(str(onnx_path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_OPSET:
        try:
            model = onnx.version_converter.convert_version(model, MIN_OPSET)
        except Exception as exc:  # the converter raises assorted errors
            raise ModelError(
                f"{onnx_path}: opset {opset} and it cannot be converted to {MIN_OPSET}: {exc}"
            ) from exc
    graph = model.graph
    initializer_names = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializer_names]
    target = next((i for i in inputs if i.name == spec.name), None)
    if target is None:
        raise ModelError(
            f"{onnx_path}: no input {spec.name!r} (inputs: {[i.name for i in inputs]})"
        )
    taken = {i.name for i in graph.input} | {o for n in graph.node for o in n.output}
    if FRAMES in taken or any(name.startswith(PREFIX) for name in taken):
        raise ModelError(f"{onnx_path}: already prepared (has {FRAMES!r} or {PREFIX}* tensors)")
    dims = target.type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ModelError(f"{onnx_path}: input {spec.name!r} has rank {len(dims)}, expected 4")
    in_w, in_h = spec.size
    expect = (3, in_h, in_w) if spec.layout == "NCHW" else (in_h, in_w, 3)
    for axis, (dim, want) in enumerate(zip(dims[1:], expect, strict=True), start=1):
        if dim.HasField("dim_value") and dim.dim_value != want:
            raise ModelError(
                f"{onnx_path}: input {spec.name!r} axis {axis} is {dim.dim_value}, the "
                f"manifest's {spec.layout} size {spec.size} says {want}"
            )
    batch = dims[0].dim_value if dims[0].HasField("dim_value") else (dims[0].dim_param or "batch")
    if source_size is not None:
        src_w, src_h = (int(v) for v in source_size)
        if src_w <= 0 or src_h <= 0:
            raise ModelError(f"source_size must be positive (width, height), got {source_size}")
        frame_dims: list[int | str] = [batch, src_h, src_w, 3]
    else:
        frame_dims = [batch, "height", "width", 3]

    g = _Graph(onnx)
    x = g.op("Cast", [FRAMES], "cast", to=TensorProto.FLOAT)
    x = g.op("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    if spec.color == "RGB":  # frames are BGR
        x = g.op("Gather", [x, g.const("rgb_order", [2, 1, 0], np.int64)], "rgb", axis=1)
    resize: dict[str, Any] = {"mode": "linear", "coordinate_transformation_mode": "half_pixel"}
    if opset >= 18:
        resize["antialias"] = 0
    shape = g.op("Shape", [FRAMES], "shape")
    batch_c = g.op(
        "Concat",
        [
            g.op(
                "Slice",
                [shape, g.const("s0", [0], np.int64), g.const("s1", [1], np.int64)],
                "batch",
            ),
            g.const("c3", [3], np.int64),
        ],
        "batch_c",
        axis=0,
    )
    pads = None
    if spec.resize == "stretch":
        new_hw = g.const("new_hw", [in_h, in_w], np.int64)
    elif source_size is not None:
        geo = place(spec, src_w, src_h)
        new_w, new_h = round(src_w * geo.scale[0]), round(src_h * geo.scale[1])
        left, top = int(geo.pad[0]), int(geo.pad[1])
        new_hw = g.const("new_hw", [new_h, new_w], np.int64)
        pads = g.const(
            "pads", [0, 0, top, left, 0, 0, in_h - new_h - top, in_w - new_w - left], np.int64
        )
    else:
        new_hw, pads = letterbox_shape_nodes(g, shape, (in_w, in_h))
    sizes = g.op("Concat", [batch_c, new_hw], "sizes", axis=0)
    x = g.op("Resize", [x, "", "", sizes], "resize", **resize)
    if round_resized:
        x = g.op("Round", [x], "round")
    if pads is not None:
        pad_value = g.const("pad_value", float(spec.pad_value), np.float32)
        x = g.op("Pad", [x, pads, pad_value], "letterbox", mode="constant")
    mean = g.const("mean", np.reshape(spec.mean, (1, 3, 1, 1)), np.float32)
    std = g.const("std", np.reshape(spec.std, (1, 3, 1, 1)), np.float32)
    x = g.op("Sub", [x, mean], "sub_mean")
    if spec.layout == "NCHW":
        g.op("Div", [x, std], "div_std", out=spec.name)
    else:
        x = g.op("Div", [x, std], "div_std")
        g.op("Transpose", [x], "nhwc", out=spec.name, perm=[0, 2, 3, 1])

    frames = helper.make_tensor_value_info(FRAMES, TensorProto.UINT8, frame_dims)
    kept_inputs = [i for i in graph.input if i.name != spec.name]
    del graph.input[:]
    graph.input.extend([frames, *kept_inputs])
    original = list(graph.node)
    del graph.node[:]
    graph.node.extend([*g.nodes, *original])
    graph.initializer.extend(g.initializers)
    record = {
        "input": FRAMES,
        "replaces": spec.name,
        "source_size": list(source_size) if source_size is not None else None,
        "round_resized": round_resized,
        "spec": spec.model_dump(mode="json"),
        "from": onnx_path.name,
    }
    entry = next((p for p in model.metadata_props if p.key == METADATA_KEY), None)
    if entry is None:
        entry = model.metadata_props.add()
        entry.key = METADATA_KEY
    entry.value = json.dumps(record, sort_keys=True)
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise ModelError(f"{onnx_path}: the prepared graph is invalid: {exc}") from exc
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.tmp")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def preparation_of(onnx_path: Path) -> dict[str, Any] | None:
    """What :func:`prepare_graph` recorded in a model, or None for an unprepared model."""
    onnx = _onnx()
    model = onnx.load(str(onnx_path), load_external_data=False)
    for prop in model.metadata_props:
        if prop.key == METADATA_KEY:
            return dict(json.loads(prop.value))
    return None
