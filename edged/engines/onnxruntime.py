"""ONNX Runtime: CPU by default, CUDA or TensorRT execution providers where present."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from edged.config.model import default_cache_dir
from edged.engines.base import EngineError

log = logging.getLogger(__name__)

_state = ort.capi.onnxruntime_pybind11_state
# what a session raises for a file that is not a loadable model: truncated, empty, not ONNX,
# an invalid graph, an operator this build lacks (they do not share a base class)
LOAD_ERRORS = (
    _state.Fail,
    _state.InvalidArgument,
    _state.InvalidGraph,
    _state.InvalidProtobuf,
    _state.NoSuchFile,
    _state.NotImplemented,
    _state.RuntimeException,
    RuntimeError,
)

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


def auto_backend() -> str:
    """The best provider this ONNX Runtime build has: TensorRT, then CUDA, then CPU.

    onnxruntime-gpu lists TensorRT and CUDA even where they cannot load; the session then
    reports what it really started, and the engine refuses a silent fall back (below).
    """
    available = set(ort.get_available_providers())
    for backend in ("tensorrt", "cuda"):
        if PROVIDERS[backend][0] in available:
            return backend
    return "cpu"


def provider_options(backend: str, precision: str, cache_dir: Path) -> list:
    """Providers with their options: the TensorRT EP builds engines at the configured
    precision and keeps them (and its timing cache) in ``cache_dir``."""
    if backend != "tensorrt":
        return list(PROVIDERS[backend])
    trt = {
        "trt_fp16_enable": precision == "fp16",
        "trt_int8_enable": precision == "int8",
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(cache_dir / "ort-trt"),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(cache_dir / "ort-trt"),
    }
    return [("TensorrtExecutionProvider", trt), "CUDAExecutionProvider", "CPUExecutionProvider"]


class OrtEngine:
    """One ONNX Runtime session; ``run`` releases the GIL for the whole inference."""

    def __init__(
        self,
        path: Path,
        backend: str = "auto",
        threads: int = 2,
        precision: str = "fp32",
        cache_dir: Path | None = None,
    ) -> None:
        wanted = auto_backend() if backend == "auto" else backend
        if wanted == "tensorrt":
            (cache_dir or default_cache_dir()).joinpath("ort-trt").mkdir(
                parents=True, exist_ok=True
            )
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # spinning threads made 2-thread latency bimodal (p99 ≈ 100 ms) on these machines
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(path),
                opts,
                providers=provider_options(wanted, precision, cache_dir or default_cache_dir()),
            )
        except LOAD_ERRORS as exc:
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
            "%s: ONNX Runtime %s on %s (backend %s), %d threads",
            path.name,
            ort.__version__,
            chosen,
            backend,
            threads,
        )

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, outputs, strict=True))
