"""TensorRT's own runtime: a serialized plan from :mod:`edged.engines.plan_build`, run with
cuda-python. Same interface as :class:`edged.engines.onnxruntime.OrtEngine`.

Importing this module needs neither TensorRT nor cuda-python nor a GPU: they are imported
when an engine is created, and their absence is an :class:`EngineError` that says what to
install.

Per engine: one execution context and one non-blocking CUDA stream; for every I/O tensor a
device buffer and a pinned host buffer (``cudaMallocHost``) sized for the largest shape the
plan's optimization profile 0 allows, bound once with ``set_tensor_address``. A call copies
the feeds into the pinned buffers, sets the input shapes, enqueues the host→device copies,
``execute_async_v3`` and the device→host copies on the stream, and waits for the stream.

Assumed APIs (TensorRT ≥ 10 Python bindings, checked against the 10.13 and 11.4 wheels;
cuda-python ≥ 12 where every call returns ``(cudaError_t, value...)``): ``num_io_tensors``,
``get_tensor_name/mode/dtype/shape``, ``get_tensor_profile_shape(name, 0)`` →
``[min, opt, max]``, ``set_input_shape``, ``get_tensor_shape`` on the context, and
``execute_async_v3(stream_handle: int)``. Outputs whose shape depends on the data (no upper
bound before running) are not supported: TensorRT would need an ``IOutputAllocator``.
cuda-python's synchronising calls and TensorRT's enqueue release the GIL (assumed).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import threading
from pathlib import Path
from typing import Any

import numpy as np

from edged.engines.base import EngineError
from edged.engines.gpu import check_cuda, import_cudart, import_tensorrt

log = logging.getLogger(__name__)

_LOGGERS: dict[int, Any] = {}
_LOGGERS_LOCK = threading.Lock()


def trt_logger(trt: Any) -> Any:
    """One ``trt.ILogger`` per TensorRT module that forwards to Python logging (errors and
    warnings as such, TensorRT's info as debug, verbose dropped)."""
    with _LOGGERS_LOCK:
        logger = _LOGGERS.get(id(trt))
        if logger is not None:
            return logger
        sev = trt.ILogger.Severity
        levels = {
            sev.INTERNAL_ERROR: logging.ERROR,
            sev.ERROR: logging.ERROR,
            sev.WARNING: logging.WARNING,
            sev.INFO: logging.DEBUG,
        }
        trt_log = logging.getLogger("edged.tensorrt")

        class Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, severity: Any, msg: str) -> None:
                level = levels.get(severity)
                if level is not None:
                    trt_log.log(level, "TensorRT: %s", msg)

        logger = _LOGGERS[id(trt)] = Logger()
        return logger


def _check_sidecar(plan_path: Path, trt_version: str) -> None:
    """Refuse, with the reason, a plan whose sidecar says another TensorRT built it (TensorRT
    would refuse it too, less clearly)."""
    sidecar = plan_path.with_suffix(".json")
    try:
        built = json.loads(sidecar.read_text(encoding="utf-8"))["key_components"]["trt_version"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no sidecar: a plan from elsewhere; let TensorRT judge it
    if str(built) != trt_version:
        raise EngineError(
            f"{plan_path}: built by TensorRT {built}, this is TensorRT {trt_version}: rebuild "
            "it (`edged engine build`)"
        )


class TrtEngine:
    """A TensorRT plan with pinned host and device buffers sized for its largest shapes.

    ``run`` is serialised by a lock (one context, one set of buffers); use one engine per
    worker thread for concurrency.
    """

    provider = "TensorRT"

    def __init__(self, plan_path: Path, device: int = 0) -> None:
        self._closed = True
        trt = import_tensorrt()
        cudart = import_cudart()
        self._trt, self._cudart = trt, cudart
        self.plan_path = Path(plan_path)
        self._lock = threading.Lock()
        self._host: dict[str, int] = {}
        self._device: dict[str, int] = {}
        self._stream: Any = None
        self._context: Any = None
        self._engine: Any = None
        self._runtime: Any = None
        try:
            data = self.plan_path.read_bytes()
        except OSError as exc:
            raise EngineError(f"{self.plan_path}: cannot read the plan: {exc}") from exc
        version = str(trt.__version__)
        _check_sidecar(self.plan_path, version)
        self._closed = False
        try:
            self._open(trt, cudart, data, device, version)
        except BaseException:
            self.close()
            raise

    def _open(self, trt: Any, cudart: Any, data: bytes, device: int, version: str) -> None:
        check_cuda(cudart, cudart.cudaSetDevice(device), f"selecting GPU {device}")
        try:
            self._runtime = trt.Runtime(trt_logger(trt))
        except TypeError as exc:  # pybind: "factory function returned nullptr"
            raise EngineError(
                f"TensorRT {version} cannot start (no usable GPU or driver?): {exc}"
            ) from exc
        self._engine = self._runtime.deserialize_cuda_engine(data)
        if self._engine is None:
            raise EngineError(
                f"{self.plan_path}: TensorRT {version} cannot load this plan (built by another "
                "TensorRT version or for another GPU?): rebuild it (`edged engine build`)"
            )
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EngineError(
                f"{self.plan_path}: cannot create an execution context (out of GPU memory?)"
            )
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self.input_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.output_names = [
            n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT
        ]
        self._dtype: dict[str, np.dtype] = {}
        for name in names:
            try:
                self._dtype[name] = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            except TypeError as exc:
                raise EngineError(
                    f"{self.plan_path}: tensor {name!r} has type "
                    f"{engine.get_tensor_dtype(name)}, which numpy cannot hold"
                ) from exc
        # the largest shapes: profile 0's max for inputs, then what the outputs come to
        self._max_shape: dict[str, tuple[int, ...]] = {}
        self._min_shape: dict[str, tuple[int, ...]] = {}
        for name in self.input_names:
            shape = tuple(engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                mn, _, mx = (tuple(s) for s in engine.get_tensor_profile_shape(name, 0))
            else:
                mn = mx = shape
            self._min_shape[name], self._max_shape[name] = mn, mx
            if not self._context.set_input_shape(name, mx):
                raise EngineError(
                    f"{self.plan_path}: cannot set {name!r} to its profile's largest shape {mx}"
                )
        for name in self.output_names:
            shape = tuple(self._context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise EngineError(
                    f"{self.plan_path}: output {name!r} has a data-dependent "
                    f"shape {shape}, which this engine does not support"
                )
            self._max_shape[name] = shape
        first = self._max_shape[self.input_names[0]] if self.input_names else ()
        self.max_batch: int | None = int(first[0]) if first else None

        self._stream = check_cuda(
            cudart,
            cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking),
            "creating a CUDA stream",
        )
        self._views: dict[str, np.ndarray] = {}
        for name in names:
            nbytes = max(1, int(np.prod(self._max_shape[name])) * self._dtype[name].itemsize)
            host = check_cuda(cudart, cudart.cudaMallocHost(nbytes), f"pinned memory for {name}")
            self._host[name] = int(host)
            dev = check_cuda(cudart, cudart.cudaMalloc(nbytes), f"GPU memory for {name}")
            self._device[name] = int(dev)
            raw = (ctypes.c_uint8 * nbytes).from_address(self._host[name])
            self._views[name] = np.ctypeslib.as_array(raw).view(self._dtype[name])
            if not self._context.set_tensor_address(name, self._device[name]):
                raise EngineError(f"{self.plan_path}: cannot bind tensor {name!r}")
        log.info(
            "%s: TensorRT %s, inputs %s, outputs %s, max batch %s",
            self.plan_path.name,
            version,
            {n: self._max_shape[n] for n in self.input_names},
            self.output_names,
            self.max_batch,
        )

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = set(self.input_names) - set(feeds)
        extra = set(feeds) - set(self.input_names)
        if missing or extra:
            raise EngineError(f"feeds {sorted(feeds)} do not match the inputs {self.input_names}")
        cudart = self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        stream = self._stream
        with self._lock:
            if self._closed:
                raise EngineError(f"{self.plan_path}: engine is closed")
            for name in self.input_names:
                array = np.ascontiguousarray(feeds[name], dtype=self._dtype[name])
                lo, hi = self._min_shape[name], self._max_shape[name]
                if array.ndim != len(hi) or any(
                    not a <= s <= b for a, s, b in zip(lo, array.shape, hi, strict=True)
                ):
                    raise EngineError(
                        f"input {name!r}: shape {array.shape} is outside the plan's {lo}..{hi}"
                    )
                if not self._context.set_input_shape(name, array.shape):
                    raise EngineError(f"input {name!r}: TensorRT refused shape {array.shape}")
                self._views[name][: array.size] = array.reshape(-1)
                check_cuda(
                    cudart,
                    cudart.cudaMemcpyAsync(
                        self._device[name],
                        self._host[name],
                        array.nbytes,
                        h2d,
                        stream,
                    ),
                    f"copying {name} to the GPU",
                )
            shapes = {n: tuple(self._context.get_tensor_shape(n)) for n in self.output_names}
            if not self._context.execute_async_v3(int(stream)):
                raise EngineError(f"{self.plan_path}: TensorRT could not enqueue the inference")
            for name, shape in shapes.items():
                nbytes = int(np.prod(shape)) * self._dtype[name].itemsize
                check_cuda(
                    cudart,
                    cudart.cudaMemcpyAsync(
                        self._host[name],
                        self._device[name],
                        nbytes,
                        d2h,
                        stream,
                    ),
                    f"copying {name} from the GPU",
                )
            check_cuda(cudart, cudart.cudaStreamSynchronize(stream), "running the plan")
            return {
                name: self._views[name][: int(np.prod(shape))].reshape(shape).copy()
                for name, shape in shapes.items()
            }

    def close(self) -> None:
        """Free the buffers, the stream, the context, the engine and the runtime (idempotent)."""
        if getattr(self, "_closed", True) and not getattr(self, "_host", None):
            return
        with self._lock:  # never while a run is using the buffers
            self._release()

    def _release(self) -> None:
        self._closed = True
        cudart = self._cudart
        if self._stream is not None:
            cudart.cudaStreamSynchronize(self._stream)
        self._views = {}
        for ptr in self._host.values():
            cudart.cudaFreeHost(ptr)
        for ptr in self._device.values():
            cudart.cudaFree(ptr)
        self._host, self._device = {}, {}
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        # the context before the engine before the runtime
        self._context = None
        self._engine = None
        self._runtime = None

    def __enter__(self) -> TrtEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown: modules may be gone
            self.close()
