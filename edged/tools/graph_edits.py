"""Edits of ONNX graphs that converting a detector needs: −inf Pads folded into MaxPools, the
detector's head convolutions found, a fixed batch of 1 made dynamic, and the graph prepared
for ONNX Runtime's quantizer."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edged.tools.model_files import QuantizeError, write_manifest

log = logging.getLogger(__name__)

#: a Pad constant at or below this feeding a MaxPool is folded into the MaxPool's pads; exact
#: for −inf, and for a finite value as long as the activations stay above it
FOLD_PAD_BELOW = -1e30


def constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Values of initializers and Constant node outputs, by tensor name."""
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            attr = node.attribute[0]
            if attr.name == "value":
                values[node.output[0]] = numpy_helper.to_array(attr.t)
    return values


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    users: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    return users


def _attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _remove_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input}
    used.update(o.name for o in graph.output)
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def fold_pad_into_maxpool(model: onnx.ModelProto) -> int:
    """Fold every constant-mode Pad of a very negative value (−inf; ≤ ``FOLD_PAD_BELOW``)
    that feeds only a MaxPool into that MaxPool's ``pads``, in place. Returns how many.

    MaxPool's own padding never wins the max, exactly like −inf padding, so the result is
    bit-identical. Only spatial padding smaller than the kernel is folded (every window keeps
    a real element), and only into a plain MaxPool (no auto_pad, ceil_mode, dilations or
    indices output).
    """
    graph = model.graph
    consts = constants(graph)
    users = _consumers(graph)
    outputs = {o.name for o in graph.output}
    folded = 0
    for pad in list(graph.node):
        if pad.op_type != "Pad" or _attr(pad, "mode", b"constant") not in (b"constant", "constant"):
            continue
        if pad.output[0] in outputs or len(users.get(pad.output[0], [])) != 1:
            continue
        pool = users[pad.output[0]][0]
        if pool.op_type != "MaxPool" or pool.input[0] != pad.output[0]:
            continue
        if len(pool.output) > 1 and pool.output[1]:
            continue
        if _attr(pool, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        if _attr(pool, "ceil_mode", 0) or any(d != 1 for d in _attr(pool, "dilations", []) or []):
            continue
        # the pad amounts and value: inputs from opset 11, attributes before
        if len(pad.input) > 1:
            if pad.input[1] not in consts:
                continue
            pads = [int(p) for p in consts[pad.input[1]]]
            value_name = pad.input[2] if len(pad.input) > 2 else ""
            if value_name and value_name not in consts:
                continue
            value = float(consts[value_name]) if value_name else 0.0
            if len(pad.input) > 3 and pad.input[3]:
                continue  # explicit axes (opset 18): not met in practice, left alone
        else:
            pads = list(_attr(pad, "pads", []))
            value = float(_attr(pad, "value", 0.0))
        if not (value <= FOLD_PAD_BELOW or value == -math.inf):
            continue
        kernel = list(_attr(pool, "kernel_shape", []))
        rank = len(pads) // 2
        spatial = rank - len(kernel)
        if spatial < 0 or any(pads[:spatial]) or any(pads[rank : rank + spatial]):
            continue  # pads batch or channel axes
        begin, end = pads[spatial:rank], pads[rank + spatial :]
        old = list(_attr(pool, "pads", [0] * (2 * len(kernel))))
        new = [o + p for o, p in zip(old, begin + end, strict=True)]
        if any(p < 0 for p in new) or any(
            new[i] >= k or new[i + len(kernel)] >= k for i, k in enumerate(kernel)
        ):
            continue
        for a in list(pool.attribute):
            if a.name == "pads":
                pool.attribute.remove(a)
        pool.attribute.append(helper.make_attribute("pads", new))
        pool.input[0] = pad.input[0]
        graph.node.remove(pad)
        folded += 1
    if folded:
        _remove_unused_initializers(graph)
    return folded


def head_convolutions(model: onnx.ModelProto) -> list[str]:
    """Names of the Conv nodes with no other Conv between them and a graph output: a
    detector's final class/box convolutions, the ones most sensitive to INT8."""
    graph = model.graph
    users = _consumers(graph)
    outputs = {o.name for o in graph.output}
    heads = []
    for conv in graph.node:
        if conv.op_type != "Conv":
            continue
        stack, seen, reaches = list(conv.output), set(), False
        while stack:
            name = stack.pop()
            if name in seen:
                continue
            seen.add(name)
            if name in outputs:
                reaches = True
            for user in users.get(name, []):
                if user.op_type != "Conv":
                    stack.extend(user.output)
        if reaches:
            heads.append(conv.name)
    return heads


def _depends_on_inputs(graph: onnx.GraphProto, tensor: str) -> bool:
    producers = {o: n for n in graph.node for o in n.output}
    inputs = {i.name for i in graph.input} - {init.name for init in graph.initializer}
    stack, seen = [tensor], set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        if name in inputs:
            return True
        node = producers.get(name)
        if node is not None:
            stack.extend(i for i in node.input if i)
    return False


def _remove_dead_nodes(graph: onnx.GraphProto) -> None:
    while True:
        used = {name for node in graph.node for name in node.input}
        used.update(o.name for o in graph.output)
        dead = [n for n in graph.node if not any(o in used for o in n.output if o)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    _remove_unused_initializers(graph)


def make_dynamic_batch(model_path: Path | str, out_path: Path | str) -> Path:
    """A copy of a fixed-batch-1 model whose batch dimension is dynamic (``batch``).

    The input's first dimension becomes symbolic; a Reshape whose target shape is a constant
    starting with 1 gets 0 there ("copy the input's dimension"), which is what tf2onnx exports
    leave behind. The copy is checked: a batch of two random inputs must give what two batch-1
    runs give, else QuantizeError. A manifest is written beside it (precision fp32).
    """
    import onnxruntime as ort

    model_path, out_path = Path(model_path), Path(out_path)
    model = onnx.load(str(model_path))
    graph = model.graph
    first = graph.input[0]
    dims = first.type.tensor_type.shape.dim
    if dims[0].HasField("dim_param"):
        raise QuantizeError(f"{model_path}: batch dimension is already dynamic")
    if dims[0].dim_value != 1:
        raise QuantizeError(f"{model_path}: batch dimension is {dims[0].dim_value}, not 1")

    # the value of every constant Reshape target, from one run of the original
    targets = [n for n in graph.node if n.op_type == "Reshape"]
    consts = constants(graph)
    const_shapes = [
        n.input[1]
        for n in targets
        if n.input[1] not in consts and not _depends_on_inputs(graph, n.input[1])
    ]
    probe = onnx.load(str(model_path))
    for name in const_shapes:
        probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.INT64, None))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    shape = [d.dim_value for d in dims]
    feed = {first.name: np.zeros(shape, np.float32)}
    values: dict[str, np.ndarray] = {}
    if const_shapes:
        values = dict(zip(const_shapes, sess.run(const_shapes, feed), strict=True))
    values.update({k: v for k, v in consts.items() if k in {n.input[1] for n in targets}})

    changed = 0
    for node in targets:
        target = values.get(node.input[1])
        if target is None or target.ndim != 1 or len(target) == 0 or int(target[0]) != 1:
            continue
        if _attr(node, "allowzero", 0):
            continue
        new = target.astype(np.int64).copy()
        new[0] = 0
        name = f"{node.name or node.output[0]}__dynamic_batch_shape"
        graph.initializer.append(numpy_helper.from_array(new, name))
        node.input[1] = name
        changed += 1
    dims[0].Clear()
    dims[0].dim_param = "batch"
    for out in graph.output:
        odims = out.type.tensor_type.shape.dim
        if len(odims):
            odims[0].Clear()
            odims[0].dim_param = "batch"
    del graph.value_info[:]
    _remove_dead_nodes(graph)
    onnx.save(model, str(out_path))
    log.info("%s: dynamic batch, %d Reshape targets rewritten", out_path.name, changed)

    # check: batch of 2 == two runs of 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *shape[1:])).astype(np.float32)
    orig = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    dyn = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in orig.get_outputs()]
    both = dyn.run(names, {first.name: x})
    for i in range(2):
        single = orig.run(names, {first.name: x[i : i + 1]})
        for name, a, b in zip(names, single, both, strict=True):
            if a.shape[1:] != b.shape[1:] or not np.allclose(a[0], b[i], rtol=1e-4, atol=1e-4):
                out_path.unlink(missing_ok=True)
                raise QuantizeError(
                    f"{model_path}: the dynamic-batch copy disagrees with the original on "
                    f"output {name!r}; the batch size must be baked in elsewhere"
                )
    write_manifest(model_path, out_path, precision="fp32")
    return out_path


def prepare_for_quantization(model_path: Path | str, out_path: Path | str) -> list[str]:
    """Fold −inf Pads into MaxPools, then ORT's ``quant_pre_process``; notes of what it did.
    (Changes the working directory for a moment: not for use from threads.)"""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(model_path))
    pads_before = sum(n.op_type == "Pad" for n in model.graph.node)
    folded = fold_pad_into_maxpool(model)
    with tempfile.TemporaryDirectory(prefix="edged-prep-") as tmp:
        folded_path = Path(tmp).resolve() / "folded.onnx"
        onnx.save(model, str(folded_path))
        symbolic = True
        # when symbolic shape inference fails, ORT first saves its partial model as
        # sym_shape_infer_temp.onnx + a 15 MB <uuid>.data in the working directory: let
        # that litter land in the temporary directory
        target = str(Path(out_path).resolve())
        cwd = os.getcwd()
        os.chdir(folded_path.parent)
        try:
            quant_pre_process(str(folded_path), target)
        except Exception as exc:  # ORT raises a bare Exception for this
            if "symbolic shape inference" not in str(exc):
                raise
            # e.g. a symbolic batch dimension through tf2onnx's Reshapes: ONNX's own shape
            # inference and the optimizer (which does the Pad folding) still run
            symbolic = False
            quant_pre_process(str(folded_path), target, skip_symbolic_shape=True)
        finally:
            os.chdir(cwd)
    pads_after = sum(n.op_type == "Pad" for n in onnx.load(str(out_path)).graph.node)
    notes = [
        f"folded {folded} −inf Pad into MaxPool; quant_pre_process left {pads_after} of "
        f"{pads_before} Pad nodes"
    ]
    if not symbolic:
        notes.append("symbolic shape inference incomplete: skipped (ONNX shape inference ran)")
    return notes
