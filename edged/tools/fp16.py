"""FP16: an FP32 ONNX model with FP16 weights and arithmetic, FP32 inputs and outputs.

    report = convert_fp16("engines/nanodet-g-416.onnx", None, frames=frames)
    print(report.summary())

Half the file size. On a CPU without native FP16 ONNX Runtime runs it at about FP32 speed
(MEASURED.md: 1.00× at 1 thread); the point is a GPU (CUDA, or TensorRT building a strongly
typed network from the FP16 types), where TensorRT ≥ 11 no longer has an FP16 builder flag.

A −inf Pad before a MaxPool is folded into the MaxPool first (exact): the converter clamps
constants to ±``max_finite_val`` (1e4), which would otherwise turn that padding into −10⁴.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx

from edged.tools.agreement import compare_models, detect_all
from edged.tools.graph_edits import fold_pad_into_maxpool
from edged.tools.model_files import QuantizeError, load_cpu_detector, output_path, write_manifest
from edged.tools.report import Report


def convert_fp16(
    model_path: Path | str,
    out_path: Path | str | None = None,
    keep_io_types: bool = True,
    *,
    frames: Sequence[np.ndarray] | None = None,
    threads: int = 2,
) -> Report:
    """Convert the FP32 model at ``model_path`` to FP16 at ``out_path`` (default
    ``<model>-fp16.onnx``) with onnxconverter-common, and write its manifest.

    ``keep_io_types`` keeps the inputs and outputs FP32 (Cast nodes at the edges), so the
    same preprocessing and decoding serve both. With ``frames``, the report says how well the
    FP16 detections agree with FP32 on them.
    """
    try:
        from onnxconverter_common import float16
    except ImportError as exc:  # pragma: no cover - an optional dependency
        raise QuantizeError(
            "FP16 conversion needs onnxconverter-common: pip install 'edged[precision]'"
        ) from exc

    start = time.perf_counter()
    model_path = Path(model_path)
    out_path = output_path(model_path, out_path, "fp16")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(model_path))
    folded = fold_pad_into_maxpool(model)
    with warnings.catch_warnings(record=True) as clamped:
        warnings.simplefilter("always")
        half = float16.convert_float_to_float16(model, keep_io_types=keep_io_types)
    with tempfile.TemporaryDirectory(prefix="edged-fp16-", dir=out_path.parent) as tmp:
        staged = Path(tmp) / out_path.name
        onnx.save(half, str(staged))
        onnx.checker.check_model(str(staged))
        staged.replace(out_path)
    write_manifest(model_path, out_path, "fp16")
    fp16_inits = sum(i.data_type == onnx.TensorProto.FLOAT16 for i in half.graph.initializer)
    notes = [
        f"folded {folded} −inf Pad into MaxPool; {fp16_inits} FP16 initializers; "
        f"inputs/outputs {'FP32' if keep_io_types else 'FP16'}; {len(clamped)} constants "
        "clamped into FP16's range (e.g. |x| < 1e-7 → ±1e-7)"
    ]
    agreement = None
    frames = list(frames or [])
    if frames:
        reference = load_cpu_detector(model_path, threads)
        agreement = compare_models(
            reference, out_path, frames, threads, detect_all(reference, frames)
        )
    return Report(
        precision="fp16",
        source=model_path,
        output=out_path,
        source_bytes=model_path.stat().st_size,
        output_bytes=out_path.stat().st_size,
        agreement=agreement,
        agreement_frames=f"{len(frames)} given frames" if frames else "",
        seconds=time.perf_counter() - start,
        notes=notes,
    )
