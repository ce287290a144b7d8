"""Is there an NVIDIA GPU, which, and can TensorRT and the CUDA runtime be loaded?

Everything here is safe to call on a machine without a GPU, a driver, cuda-python or
TensorRT: :func:`probe` answers ``None`` and :func:`probe_reason` says why; nothing raises
for "no GPU". The CUDA runtime is reached through cuda-python (``cuda.bindings.runtime``,
cuda-python ≥ 12.6; ``cuda.cudart`` on older releases). Without a driver,
``cudaGetDeviceCount()`` returns ``(cudaErrorInsufficientDriver, None)`` rather than raising
(cuda-python 13.4, measured), so that call is the probe; ``cuInit`` is never used because it
raises when ``libcuda`` is absent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from edged.engines.base import EngineError

log = logging.getLogger(__name__)

TENSORRT_MISSING = (
    "TensorRT is not installed: pip install 'edged[tensorrt]' on a machine with NVIDIA's TensorRT"
)
CUDA_PYTHON_MISSING = "cuda-python is not installed: pip install 'edged[tensorrt]'"


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """One CUDA device as the runtime reports it. ``name``, ``compute_capability`` and
    ``multiprocessors`` identify what a TensorRT plan was tuned for (a Jetson reports the
    name ``Orin`` for every Orin module; the SM count tells an AGX from an NX)."""

    name: str
    compute_capability: tuple[int, int]
    total_memory: int = 0
    multiprocessors: int = 0
    driver_version: str = ""
    runtime_version: str = ""
    index: int = 0
    integrated: bool = False

    @property
    def sm(self) -> str:
        """``8.7``-style compute capability."""
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"

    def describe(self) -> str:
        mem = f", {self.total_memory / 2**30:.1f} GiB" if self.total_memory else ""
        return f"{self.name} (sm {self.sm}, {self.multiprocessors} SMs{mem})"


_reason = "probe() was not called"


def probe_reason() -> str:
    """Why the last :func:`probe` returned None ('' if it found a GPU)."""
    return _reason


def import_cudart() -> ModuleType:
    """cuda-python's runtime module, or EngineError saying it is missing."""
    try:
        from cuda.bindings import runtime  # cuda-python >= 12.6

        return runtime
    except ImportError:
        pass
    try:
        from cuda import cudart  # cuda-python < 12.6

        return cudart
    except ImportError as exc:
        raise EngineError(CUDA_PYTHON_MISSING) from exc


def import_tensorrt() -> ModuleType:
    """The ``tensorrt`` module, imported only when asked for, or EngineError.

    NVIDIA's pip wheels and Jetson's ``python3-libnvinfer`` install ``tensorrt``; the bare
    ``tensorrt-cuXX-bindings`` wheel installs ``tensorrt_bindings`` (same API).
    """
    problems = []
    for name in ("tensorrt", "tensorrt_bindings"):
        try:
            return __import__(name)
        except ImportError as exc:  # an extension whose libnvinfer is missing lands here too
            problems.append(f"{name}: {exc}")
        except OSError as exc:
            problems.append(f"{name}: {exc}")
    log.debug("TensorRT import failed: %s", "; ".join(problems))
    raise EngineError(TENSORRT_MISSING)


def tensorrt_version() -> str | None:
    """The installed TensorRT's version, or None when it cannot be imported."""
    try:
        return str(import_tensorrt().__version__)
    except EngineError:
        return None


def _version(raw: int) -> str:
    """CUDA's ``12040`` → ``12.4``."""
    return f"{raw // 1000}.{(raw % 1000) // 10}" if raw else ""


def check_cuda(cudart: ModuleType, result: Any, what: str) -> Any:
    """Unpack a cuda-python ``(error, value...)`` tuple; EngineError naming ``what`` and the
    CUDA error unless it is ``cudaSuccess``."""
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        raise EngineError(f"{what}: {cuda_error_text(cudart, err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def cuda_error_text(cudart: ModuleType, err: Any) -> str:
    try:
        _, name = cudart.cudaGetErrorName(err)
        _, text = cudart.cudaGetErrorString(err)
        return f"{name.decode()} ({text.decode()})"
    except Exception:  # only formatting an error already being raised
        return str(err)


def probe(device: int = 0) -> GpuInfo | None:
    """The CUDA device ``device``, or None (see :func:`probe_reason`) when cuda-python is
    missing, there is no driver, or no such device. Never raises for "no GPU"."""
    try:
        info, reason = _probe(device)
    except Exception as exc:  # the contract: no exception for "no GPU"
        info, reason = None, f"probing the GPU failed: {type(exc).__name__}: {exc}"
    global _reason
    _reason = reason
    if info is None:
        log.debug("no GPU: %s", reason)
    return info


def _probe(device: int) -> tuple[GpuInfo | None, str]:
    try:
        cudart = import_cudart()
    except EngineError as exc:
        return None, str(exc)
    err, count = cudart.cudaGetDeviceCount()
    if err != cudart.cudaError_t.cudaSuccess:
        return None, f"no usable NVIDIA driver or GPU: {cuda_error_text(cudart, err)}"
    if not count:
        return None, "the CUDA runtime sees no GPU"
    if device >= count:
        return None, f"GPU {device} asked for, the CUDA runtime sees {count}"
    err, prop = cudart.cudaGetDeviceProperties(device)
    if err != cudart.cudaError_t.cudaSuccess:
        return None, f"cannot read GPU {device}'s properties: {cuda_error_text(cudart, err)}"
    _, driver = cudart.cudaDriverGetVersion()
    _, runtime = cudart.cudaRuntimeGetVersion()
    name = prop.name
    if isinstance(name, bytes):
        name = name.split(b"\0", 1)[0].decode(errors="replace")
    info = GpuInfo(
        name=str(name).strip(),
        compute_capability=(int(prop.major), int(prop.minor)),
        total_memory=int(prop.totalGlobalMem),
        multiprocessors=int(prop.multiProcessorCount),
        driver_version=_version(int(driver or 0)),
        runtime_version=_version(int(runtime or 0)),
        index=device,
        integrated=bool(prop.integrated),
    )
    return info, ""
