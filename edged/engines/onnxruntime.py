"""ONNX Runtime: CPU by default, CUDA or TensorRT execution providers where present."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

log = logging.getLogger(__name__)

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class EngineError(Exception):
    """The engine could not be created as configured."""


def _auto_backend() -> str:
    available = set(ort.get_available_providers())
    for backend in ("tensorrt", "cuda"):
        if PROVIDERS[backend][0] in available:
            return backend
    return "cpu"


class OrtEngine:
    """One ONNX Runtime session; ``run`` releases the GIL for the whole inference."""

    def __init__(self, path: Path, backend: str = "auto", threads: int = 2) -> None:
        wanted = _auto_backend() if backend == "auto" else backend
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # spinning threads made 2-thread latency bimodal (p99 ≈ 100 ms) on these machines
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=PROVIDERS[wanted])
        except (ort.capi.onnxruntime_pybind11_state.Fail, RuntimeError) as exc:
            raise EngineError(f"{path}: ONNX Runtime cannot load the model: {exc}") from exc
        chosen = self.session.get_providers()[0]
        # ORT falls back to CPU silently when a GPU provider fails to load: refuse that when a
        # GPU backend was asked for by name, and say what really runs in every case
        if backend != "auto" and chosen != PROVIDERS[wanted][0]:
            raise EngineError(
                f"{path}: backend {backend!r} asked for {PROVIDERS[wanted][0]}, "
                f"but ONNX Runtime could only start {chosen}"
            )
        self.provider = chosen
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        batch = self.session.get_inputs()[0].shape[0]
        self.max_batch = batch if isinstance(batch, int) else None
        log.info(
            "%s: ONNX Runtime %s on %s, %d threads", path.name, ort.__version__, chosen, threads
        )

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, outputs, strict=True))
