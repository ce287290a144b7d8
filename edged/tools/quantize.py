"""INT8 from real frames: an FP32 ONNX detector → a Q/DQ ONNX model ONNX Runtime runs in INT8.

Suggested CLI (``edged/cli.py`` wires it; these are the functions behind it)::

    edged calibrate MODEL --from VIDEO... [--config CONFIG] [--frames 200]
                    [--method minmax|entropy|percentile|auto] [--keep-head-fp32] [-o OUT]
        frames = collect_frames(videos + config_sources(load(CONFIG)), FRAMES)
        print(quantize_int8(MODEL, OUT, frames, method=METHOD).summary())

    edged convert MODEL --fp16 [-o OUT] [--from VIDEO...]
        print(convert_fp16(MODEL, OUT, frames=collect_frames(videos, 50)).summary())

OUT defaults to ``<model>-int8.onnx`` / ``<model>-fp16.onnx``; a manifest ``<OUT>.yaml`` is
written beside it (the source's, with ``file``, ``sha256``, ``precision`` and
``derived_from`` set), so ``load_detector`` loads the result like any shipped model.

The recipe (each step was a failure first; see MEASURED.md):

1. ``fold_pad_into_maxpool``: a constant Pad of −inf before a MaxPool becomes the MaxPool's
   own ``pads`` (exact). Calibrating through the −inf tensor gives NaN scales.
2. ``quant_pre_process``: shape inference and ORT's optimizer, which folds explicit zero
   Pads into the convolutions.
3. ``quantize_static``: Q/DQ format, uint8 activations (int8 activations run only part of
   the convolutions in INT8 on x86), per-channel int8 weights, MinMax calibration (Entropy and
   Percentile clip the score outputs). ``method="auto"`` measures instead of trusting this.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import yaml
from onnx import helper, numpy_helper

from edged.models.manifest import load_manifest, sha256_of

log = logging.getLogger(__name__)

METHODS = ("minmax", "entropy", "percentile")

#: a Pad constant at or below this feeding a MaxPool is folded into the MaxPool's pads; exact
#: for −inf, and for a finite value as long as the activations stay above it
FOLD_PAD_BELOW = -1e30


class QuantizeError(Exception):
    """The model could not be converted, or the result is broken."""


# ---------------------------------------------------------------------------- graph surgery


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
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
    consts = _constants(graph)
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
    consts = _constants(graph)
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
    values = {}
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


# ---------------------------------------------------------------------------- manifests


def write_manifest(source_model: Path | str, out_model: Path | str, precision: str) -> Path:
    """``<out_model>.yaml``: the source's manifest with ``file``, ``sha256``, ``precision``
    and ``derived_from`` (the source's sha256) set. The source manifest is verified first."""
    source_model, out_model = Path(source_model), Path(out_model)
    load_manifest(source_model)  # validates it and checks the source file's sha256
    data = yaml.safe_load(source_model.with_suffix(".yaml").read_text(encoding="utf-8"))
    source_sha = data["sha256"]
    data["file"] = out_model.name
    data["sha256"] = sha256_of(out_model)
    data["precision"] = precision
    data["derived_from"] = source_sha
    path = out_model.with_suffix(".yaml")
    header = (
        f"# {precision.upper()} model derived from {source_model.name} (sha256 {source_sha})\n"
        "# by edged.engines; regenerate it rather than editing it.\n"
    )
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
    return path


# ---------------------------------------------------------------------------- agreement


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


def _greedy_match(
    ref_xyxy, ref_cls, cand_xyxy, cand_cls, iou_min: float
) -> list[tuple[int, int, float]]:
    """One-to-one matches (ref index, cand index, IoU) of the same class, best IoU first."""
    iou = _iou_matrix(ref_xyxy, cand_xyxy)
    if iou.size == 0:
        return []
    iou = np.where(ref_cls[:, None] == cand_cls[None, :], iou, 0.0)
    pairs = []
    used_r, used_c = set(), set()
    for flat in np.argsort(-iou, axis=None):
        r, c = divmod(int(flat), iou.shape[1])
        if iou[r, c] < iou_min:
            break
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c, float(iou[r, c])))
    return pairs


@dataclass
class Agreement:
    """How well a converted detector's detections agree with the FP32 original's.

    ``recall``: FP32 detections scoring ≥ ``score`` that the candidate finds (same class,
    IoU ≥ ``iou``, candidate score ≥ ``floor``: a score moving from 0.52 to 0.49 is not a lost
    object); ``precision``: the same the other way round. ``mean_iou`` and the score deltas
    (candidate − FP32) are over those matches; ``mean_best_iou`` is each strong FP32
    detection's best IoU with any candidate detection of its class (0 where none).
    """

    frames: int
    score: float
    floor: float
    iou: float
    reference: int
    matched: int
    recall: float
    candidate: int
    confirmed: int
    precision: float
    mean_iou: float
    mean_best_iou: float
    mean_abs_score_delta: float
    max_abs_score_delta: float
    mean_score_delta: float

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    @property
    def score_total(self) -> float:
        """One number, 1 at perfect agreement: F1 of the matching less the boxes' drift
        (1 − mean best IoU) less the scores' drift (mean |Δ score|), all in 0–1 units. Score
        drift matters: on NanoDet, Entropy calibration kept every person at these thresholds
        (F1 1.0) but moved scores by 0.15 on average and cost 18 pt AP50 on TUD-Campus."""
        return self.f1 - (1.0 - self.mean_best_iou) - self.mean_abs_score_delta

    def key(self) -> tuple[float, float]:
        """Larger is better (``score_total``, then F1)."""
        return (round(self.score_total, 4), round(self.f1, 4))

    def summary(self) -> str:
        return (
            f"agreement {self.score_total:.3f}: "
            f"recall {self.recall:.3f} ({self.matched}/{self.reference}), "
            f"precision {self.precision:.3f} ({self.confirmed}/{self.candidate}), "
            f"mean IoU {self.mean_iou:.3f}, mean best IoU {self.mean_best_iou:.3f}, "
            f"score Δ mean {self.mean_score_delta:+.4f} |mean| {self.mean_abs_score_delta:.4f} "
            f"max {self.max_abs_score_delta:.4f} on {self.frames} frames"
        )


def compare_detections(
    reference: Sequence[Any],
    candidate: Sequence[Any],
    *,
    score: float = 0.5,
    floor: float = 0.3,
    iou: float = 0.5,
    classes: Sequence[int] | None = None,
) -> Agreement:
    """Agreement of per-frame ``Detections`` lists (FP32 first); see ``Agreement``."""
    n_ref = n_match = n_cand = n_conf = 0
    ious: list[float] = []
    best: list[float] = []
    deltas: list[float] = []

    def pick(d):
        keep = d.score >= floor
        if classes is not None:
            keep &= np.isin(d.class_id, np.asarray(classes))
        return d.xyxy[keep], d.score[keep], d.class_id[keep]

    for r, c in zip(reference, candidate, strict=True):
        rx, rs, rc = pick(r)
        cx, cs, cc = pick(c)
        strong_r = np.nonzero(rs >= score)[0]
        strong_c = np.nonzero(cs >= score)[0]
        n_ref += len(strong_r)
        n_cand += len(strong_c)
        pairs = _greedy_match(rx[strong_r], rc[strong_r], cx, cc, iou)
        n_match += len(pairs)
        for ri, ci, v in pairs:
            ious.append(v)
            deltas.append(float(cs[ci] - rs[strong_r[ri]]))
        full = _iou_matrix(rx[strong_r], cx)
        if len(strong_r):
            same = rc[strong_r][:, None] == cc[None, :]
            full = np.where(same, full, 0.0)
            best.extend(full.max(axis=1).tolist() if full.shape[1] else [0.0] * len(strong_r))
        n_conf += len(_greedy_match(cx[strong_c], cc[strong_c], rx, rc, iou))
    d = np.abs(np.asarray(deltas)) if deltas else np.zeros(1)
    return Agreement(
        frames=len(reference),
        score=score,
        floor=floor,
        iou=iou,
        reference=n_ref,
        matched=n_match,
        recall=n_match / n_ref if n_ref else 1.0,
        candidate=n_cand,
        confirmed=n_conf,
        precision=n_conf / n_cand if n_cand else 1.0,
        mean_iou=float(np.mean(ious)) if ious else 0.0,
        mean_best_iou=float(np.mean(best)) if best else 1.0,
        mean_abs_score_delta=float(d.mean()),
        max_abs_score_delta=float(d.max()),
        mean_score_delta=float(np.mean(deltas)) if deltas else 0.0,
    )


def detect_all(detector: Any, frames: Sequence[np.ndarray], min_score: float = 0.3) -> list:
    """``Detections`` of every frame (NMS 0.5), one frame per call."""
    from edged.models.detector import DetectRequest

    return [detector.detect([DetectRequest(f, min_score, 0.5)])[0].detections for f in frames]


def compare_models(
    reference: Any,
    candidate_path: Path | str,
    frames: Sequence[np.ndarray],
    threads: int = 2,
    reference_dets: list | None = None,
) -> Agreement:
    """Agreement of the detector at ``candidate_path`` (manifest beside it) with ``reference``
    (a loaded FP32 detector) on ``frames``."""
    cand = load_cpu_detector(candidate_path, threads)
    ref = reference_dets if reference_dets is not None else detect_all(reference, frames)
    return compare_detections(ref, detect_all(cand, frames))


def load_cpu_detector(path: Path | str, threads: int = 2) -> Any:
    """``load_detector`` on ONNX Runtime's CPU provider."""
    from edged.config.model import ModelConfig
    from edged.models.detector import load_detector

    return load_detector(ModelConfig(path=Path(path), backend="cpu", threads=threads))


# ---------------------------------------------------------------------------- report


@dataclass
class Report:
    """What a conversion produced and how close it stays to FP32."""

    precision: str
    source: Path
    output: Path
    source_bytes: int
    output_bytes: int
    agreement: Agreement | None
    agreement_frames: str = ""
    method: str | None = None
    trials: dict[str, Agreement] = field(default_factory=dict)
    trial_seconds: dict[str, float] = field(default_factory=dict)
    calibration_frames: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def size_ratio(self) -> float:
        return self.output_bytes / self.source_bytes

    def summary(self) -> str:
        mb = 1e6
        lines = [
            f"{self.precision.upper()}: {self.output}",
            f"  size: {self.source_bytes / mb:.1f} MB FP32 → {self.output_bytes / mb:.1f} MB "
            f"({self.size_ratio:.0%})",
        ]
        if self.method:
            lines.append(
                f"  calibration: {self.method}, {self.calibration_frames} frames"
                + (f" (auto, chose of {', '.join(self.trials)})" if len(self.trials) > 1 else "")
            )
        for name, a in self.trials.items():
            if len(self.trials) > 1:
                took = self.trial_seconds.get(name, 0.0)
                lines.append(f"    {name:<10} {a.summary()}  [{took:.0f} s]")
        if self.agreement is not None:
            lines.append(f"  agreement with FP32 ({self.agreement_frames}):")
            lines.append(f"    {self.agreement.summary()}")
        else:
            lines.append("  agreement with FP32: not measured (no frames given)")
        lines.extend(f"  {n}" for n in self.notes)
        lines.append(f"  took {self.seconds:.1f} s")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["source"], d["output"] = str(self.source), str(self.output)
        return d


# ---------------------------------------------------------------------------- INT8


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


def _calibration_method(name: str):
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[name]


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def check_quantized(path: Path | str) -> dict[str, int]:
    """Counts of Q/DQ nodes; QuantizeError if there are none or any scale is not finite
    and positive (NaN scales come from calibrating through infinities)."""
    model = onnx.load(str(path))
    graph = model.graph
    counts = {
        "QuantizeLinear": sum(n.op_type == "QuantizeLinear" for n in graph.node),
        "DequantizeLinear": sum(n.op_type == "DequantizeLinear" for n in graph.node),
    }
    if not counts["DequantizeLinear"]:
        raise QuantizeError(f"{path}: no DequantizeLinear nodes: nothing was quantized")
    consts = _constants(graph)
    for node in graph.node:
        if node.op_type in counts and node.input[1] in consts:
            scale = consts[node.input[1]].astype(np.float64)
            if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
                raise QuantizeError(
                    f"{path}: {node.name} has a scale that is not finite and positive "
                    f"({node.input[1]}); the calibration saw infinities or NaN"
                )
    return counts


def _quantize_one(
    prepared: Path,
    out: Path,
    reader: Any,
    method: str,
    per_channel: bool,
    exclude: list[str],
    target: str = "cpu",
) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    extra: dict[str, Any] = {}
    if target == "tensorrt":
        # TensorRT's explicit quantization takes only signed int8 with zero point 0
        extra.update({"ActivationSymmetric": True, "WeightSymmetric": True})
    if method != "minmax":
        # histogram calibrators hold every output tensor of what one collect_data call reads:
        # calibrate in chunks of batches (their histograms merge across chunks). MinMax only
        # keeps per-tensor min/max, so it needs no chunks -- and its CalibMaxIntermediateOutputs
        # option is broken in ORT ≤ 1.31: it throws away the ranges of every full chunk
        # (microsoft/onnxruntime#18893), so it is not used.
        extra["CalibStridedMinMax"] = _largest_divisor(len(reader), 16)
    reader.rewind()
    chatter = io.StringIO()  # the histogram calibrators print their progress
    with contextlib.redirect_stdout(chatter):
        quantize_static(
            str(prepared),
            str(out),
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QInt8 if target == "tensorrt" else QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=_calibration_method(method),
            nodes_to_exclude=exclude,
            extra_options=extra,
        )
    if chatter.getvalue().strip():
        log.debug("quantize_static (%s): %s", method, chatter.getvalue().strip())


def default_output(model_path: Path, precision: str) -> Path:
    return model_path.with_name(f"{model_path.stem}-{precision}.onnx")


def quantize_int8(
    model_path: Path | str,
    out_path: Path | str | None,
    frames: Sequence[np.ndarray],
    method: str = "minmax",
    per_channel: bool = True,
    *,
    eval_frames: Sequence[np.ndarray] | None = None,
    keep_head_fp32: bool = False,
    exclude_nodes: Sequence[str] = (),
    holdout: float = 0.2,
    threads: int = 2,
    target: str = "cpu",
) -> Report:
    """Quantize the FP32 detector at ``model_path`` to INT8 Q/DQ at ``out_path`` (default
    ``<model>-int8.onnx``), calibrated on ``frames`` (BGR, e.g. from ``collect_frames``).

    ``method``: ``minmax`` (the measured best for NanoDet), ``entropy``, ``percentile``, or
    ``auto``: each of the three is calibrated on the frames less a held-out ``holdout``
    share (every k-th frame, or on all frames when ``eval_frames`` are given) and the one whose
    detections agree best with FP32 on the held-out frames is kept (``Agreement.score_total``:
    lost or extra detections, box drift and score drift).
    ``keep_head_fp32`` leaves the final convolutions before the outputs in FP32 (a little
    more accurate, a little slower). Agreement is measured on ``eval_frames``, else on the
    held-out frames (auto), else on the calibration frames themselves.
    ``target``: ``cpu`` (uint8 activations, what ONNX Runtime on x86 runs fastest) or
    ``tensorrt`` (signed symmetric int8 activations, what TensorRT's explicit quantization
    accepts; slower on ONNX Runtime's CPU provider, but it still runs there).
    """
    if target not in ("cpu", "tensorrt"):
        raise QuantizeError(f"unknown target {target!r}; use cpu or tensorrt")
    start = time.perf_counter()
    model_path = Path(model_path)
    out_path = Path(out_path) if out_path else default_output(model_path, "int8")
    if out_path.suffix != ".onnx":
        raise QuantizeError(f"{out_path}: the output must be a .onnx file")
    if method != "auto" and method not in METHODS:
        raise QuantizeError(f"unknown calibration method {method!r}; use {METHODS} or 'auto'")
    frames = list(frames)
    if not frames:
        raise QuantizeError("no calibration frames")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    from edged.tools.calibration import FrameReader

    reference = load_cpu_detector(model_path, threads)
    candidates = list(METHODS) if method == "auto" else [method]
    if eval_frames is not None:
        calib, held, held_name = frames, list(eval_frames), f"{len(eval_frames)} given frames"
    elif method == "auto" and len(frames) >= 2:
        k = max(2, round(1 / holdout))
        held = frames[k - 1 :: k]
        calib = [f for i, f in enumerate(frames) if i % k != k - 1]
        held_name = f"{len(held)} held-out frames (every {k}th)"
    else:
        calib, held = frames, frames
        held_name = f"the {len(frames)} calibration frames"
    # one frame per calibration batch: a fixed-batch model takes nothing else, and the
    # histogram calibrators stack a chunk's outputs, so a short last batch would break them
    batch = reference.engine.max_batch or 1
    if batch > 1:  # a model with a fixed batch above 1 takes only full batches
        calib = (calib * batch)[: max(batch, len(calib) // batch * batch)]
    reader = FrameReader.for_detector(reference, calib, batch_size=batch)
    ref_dets = detect_all(reference, held)

    with tempfile.TemporaryDirectory(prefix="edged-int8-", dir=out_path.parent) as tmp:
        tmpdir = Path(tmp)
        prepared = tmpdir / "prepared.onnx"
        notes = prepare_for_quantization(model_path, prepared)
        exclude = list(exclude_nodes)
        if keep_head_fp32:
            heads = head_convolutions(onnx.load(str(prepared)))
            exclude += heads
            notes.append(f"kept FP32: {', '.join(heads)}")
        trials: dict[str, Agreement] = {}
        took: dict[str, float] = {}
        paths: dict[str, Path] = {}
        for name in candidates:
            t0 = time.perf_counter()
            cand = tmpdir / f"{out_path.stem}.{name}.onnx"
            try:
                _quantize_one(prepared, cand, reader, name, per_channel, exclude, target)
                check_quantized(cand)
            except Exception as exc:  # a failed trial loses; a failed only method raises
                if len(candidates) == 1:
                    raise QuantizeError(f"{model_path}: {name} calibration failed: {exc}") from exc
                notes.append(f"{name}: failed: {exc}")
                continue
            write_manifest(model_path, cand, "int8")
            trials[name] = compare_models(reference, cand, held, threads, ref_dets)
            took[name] = time.perf_counter() - t0
            paths[name] = cand
            log.info("int8 %s: %s", name, trials[name].summary())
        if not trials:
            raise QuantizeError(f"{model_path}: every calibration method failed: {notes}")
        chosen = max(trials, key=lambda n: trials[n].key())
        os.replace(paths[chosen], out_path)
        with contextlib.suppress(FileNotFoundError):
            paths[chosen].with_suffix(".yaml").unlink()
    write_manifest(model_path, out_path, "int8")
    counts = check_quantized(out_path)
    notes.append(
        f"{counts['QuantizeLinear']} QuantizeLinear / {counts['DequantizeLinear']} "
        f"DequantizeLinear nodes; {'int8 symmetric' if target == 'tensorrt' else 'uint8'} "
        "activations, "
        f"{'per-channel' if per_channel else 'per-tensor'} int8 weights"
    )
    agreement = trials[chosen]
    if eval_frames is None and method != "auto":
        held_name += ", in-sample"
    return Report(
        precision="int8",
        source=model_path,
        output=out_path,
        source_bytes=model_path.stat().st_size,
        output_bytes=out_path.stat().st_size,
        agreement=agreement,
        agreement_frames=held_name,
        method=chosen,
        trials=trials,
        trial_seconds=took,
        calibration_frames=len(calib),
        seconds=time.perf_counter() - start,
        notes=notes,
    )
