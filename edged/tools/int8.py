"""INT8 from real frames: an FP32 ONNX detector → a Q/DQ ONNX model ONNX Runtime runs in INT8.
``edged calibrate`` is::

    frames = collect_frames(videos + config_sources(load(CONFIG)), FRAMES)
    print(quantize_int8(MODEL, OUT, frames, method=METHOD).summary())

OUT defaults to ``<model>-int8.onnx``; a manifest ``<OUT>.yaml`` is written beside it (the
source's, with ``file``, ``sha256``, ``precision`` and ``derived_from`` set), so
``load_detector`` loads the result like any shipped model.

The recipe (each step was a failure first; see MEASURED.md), steps 1 and 2 being
:func:`edged.tools.graph_edits.prepare_for_quantization`:

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
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

from edged.tools.agreement import Agreement, compare_models, detect_all
from edged.tools.calibration import FrameReader
from edged.tools.graph_edits import constants, head_convolutions, prepare_for_quantization
from edged.tools.model_files import QuantizeError, load_cpu_detector, output_path, write_manifest
from edged.tools.report import Report

log = logging.getLogger(__name__)

METHODS = ("minmax", "entropy", "percentile")


def _calibration_method(name: str) -> CalibrationMethod:
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
    consts = constants(graph)
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
    reader: FrameReader,
    method: str,
    per_channel: bool,
    exclude: list[str],
    target: str = "cpu",
) -> None:
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
    out_path = output_path(model_path, out_path, "int8")
    if method != "auto" and method not in METHODS:
        raise QuantizeError(f"unknown calibration method {method!r}; use {METHODS} or 'auto'")
    frames = list(frames)
    if not frames:
        raise QuantizeError("no calibration frames")
    out_path.parent.mkdir(parents=True, exist_ok=True)
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
