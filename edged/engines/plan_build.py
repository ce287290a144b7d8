"""ONNX model → TensorRT plan, kept in the plan cache (:mod:`edged.engines.plan_cache`).

:func:`ensure_plan` returns the cached plan when it fits this machine and builds one
otherwise: the daemon calls it at start, ``edged engine build`` ahead of time. The build
follows :func:`~edged.engines.build_strategy.choose_strategy`; TensorRT's own progress
reaches the caller through :mod:`edged.engines.build_progress`.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edged.core.files import atomic_write, sha256_of
from edged.engines.base import EngineError
from edged.engines.build_progress import ProgressCallback, progress_monitor
from edged.engines.build_strategy import BuildStrategy, TrtCapabilities, choose_strategy
from edged.engines.gpu import GpuInfo, import_tensorrt, probe, probe_reason
from edged.engines.onnx_facts import inspect_onnx, plan_shapes
from edged.engines.plan_cache import PRECISIONS, PlanKey, Profile, ShapeSpec, find_plan, store_plan
from edged.engines.tensorrt import trt_logger

log = logging.getLogger(__name__)


def convert_to_fp16(src: Path, dst: Path, fp32_prefix: str | None = None) -> Path:
    """An FP16 copy of an FP32 model (inputs and outputs stay FP32; nodes whose name starts
    with ``fp32_prefix`` stay FP32), for TensorRT versions without ``BuilderFlag.FP16``."""
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError as exc:
        raise EngineError(
            "converting to FP16 needs onnx and onnxconverter-common: pip install 'edged[tensorrt]'"
        ) from exc
    model = onnx.load(str(src))
    keep = [n.name for n in model.graph.node if fp32_prefix and n.name.startswith(fp32_prefix)]
    with warnings.catch_warnings():  # one warning per clipped constant (e.g. -inf pads)
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, node_block_list=keep or None
        )
    onnx.save(converted, str(dst))
    return dst


def build_plan(
    onnx_path: Path,
    precision: str,
    max_batch: int,
    cache_dir: Path,
    timing_cache_path: Path | None = None,
    progress: ProgressCallback | None = None,
    *,
    input_shapes: ShapeSpec | None = None,
    model_name: str | None = None,
    gpu: GpuInfo | None = None,
    workspace_bytes: int | None = None,
    fp32_prefix: str | None = None,
) -> Path:
    """Build a TensorRT plan of ``onnx_path`` and store it in the cache; returns its path.

    ``max_batch`` bounds a dynamic batch axis (profile 1..max_batch, opt max_batch);
    ``input_shapes`` gives ``(min, opt, max)`` for other dynamic axes (a prepared graph's
    frame height and width). ``timing_cache_path`` is read when present and written after
    the build (it makes rebuilds on the same GPU much faster). ``progress`` receives
    :class:`~edged.engines.build_progress.BuildProgress` reports (TensorRT ≥ 10) and may
    return False to cancel.
    ``fp32_prefix``: nodes named so stay FP32 where the model is converted to FP16 first
    (a prepared graph's preprocessing).
    """
    if precision not in PRECISIONS:
        raise EngineError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    trt = import_tensorrt()
    caps = TrtCapabilities.of(trt)
    info = gpu or probe()
    if info is None:
        raise EngineError(f"no GPU to build a TensorRT plan on: {probe_reason()}")
    onnx_path = Path(onnx_path)
    name = model_name or onnx_path.stem
    facts = inspect_onnx(onnx_path)
    shapes = plan_shapes(facts, max_batch, input_shapes)
    key = PlanKey.of(sha256_of(onnx_path), caps.version, info, precision, shapes)
    can_convert = importlib.util.find_spec("onnxconverter_common") is not None
    strategy = choose_strategy(precision, facts, caps, can_convert)
    log.info(
        "%s: building TensorRT %s plan for %s (%s)",
        onnx_path.name,
        precision,
        key.describe(),
        strategy.describe(),
    )
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="edged-build-") as tmp:
        source = onnx_path
        if strategy.convert_fp16:
            source = convert_to_fp16(
                onnx_path, Path(tmp) / f"{onnx_path.stem}.fp16.onnx", fp32_prefix
            )
        plan = _build(
            trt,
            caps,
            source,
            strategy,
            shapes,
            timing_cache_path,
            progress,
            started,
            workspace_bytes,
        )
    seconds = time.monotonic() - started
    path = store_plan(
        cache_dir,
        name,
        key,
        plan,
        {
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(seconds, 1),
            "onnx": str(onnx_path),
            "strategy": strategy.describe(),
            "max_batch": max_batch,
            "gpu": asdict(info),
        },
    )
    log.info("%s: plan built in %.1f s → %s", onnx_path.name, seconds, path)
    return path


def ensure_plan(
    onnx_path: Path,
    precision: str,
    max_batch: int,
    cache_dir: Path,
    timing_cache_path: Path | None = None,
    progress: ProgressCallback | None = None,
    *,
    input_shapes: ShapeSpec | None = None,
    model_name: str | None = None,
    gpu: GpuInfo | None = None,
    fp32_prefix: str | None = None,
) -> Path:
    """The cached plan when it fits this machine, else a freshly built one (see
    :func:`build_plan`)."""
    trt = import_tensorrt()
    info = gpu or probe()
    if info is None:
        raise EngineError(f"no GPU to run a TensorRT plan on: {probe_reason()}")
    onnx_path = Path(onnx_path)
    shapes = plan_shapes(inspect_onnx(onnx_path), max_batch, input_shapes)
    name = model_name or onnx_path.stem
    found = find_plan(
        cache_dir, name, sha256_of(onnx_path), str(trt.__version__), info, precision, shapes
    )
    if found is not None:
        return found
    return build_plan(
        onnx_path,
        precision,
        max_batch,
        cache_dir,
        timing_cache_path,
        progress,
        input_shapes=input_shapes,
        model_name=name,
        gpu=info,
        fp32_prefix=fp32_prefix,
    )


def _build(
    trt: Any,
    caps: TrtCapabilities,
    source: Path,
    strategy: BuildStrategy,
    shapes: Mapping[str, Profile],
    timing_cache_path: Path | None,
    progress: ProgressCallback | None,
    started: float,
    workspace_bytes: int | None,
) -> bytes:
    logger = trt_logger(trt)
    try:
        builder = trt.Builder(logger)
    except TypeError as exc:  # pybind: "factory function returned nullptr" (no driver/GPU)
        raise EngineError(
            f"TensorRT {caps.version} cannot create a builder (no usable GPU or driver?): {exc}"
        ) from exc
    flags = 0
    if strategy.strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    if caps.major < 10 and "EXPLICIT_BATCH" in caps.network_flags:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise EngineError(
            f"{source.name}: TensorRT {caps.version}'s ONNX parser refused the model:\n  "
            + "\n  ".join(errors or ["(no error reported)"])
        )
    config = builder.create_builder_config()
    if workspace_bytes:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    for flag in strategy.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))

    profile = builder.create_optimization_profile()
    dynamic = False
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        if tensor.name not in shapes:
            raise EngineError(f"{source.name}: network input {tensor.name!r} has no shape")
        if any(d < 0 for d in tuple(tensor.shape)):
            dynamic = True
            mn, opt, mx = shapes[tensor.name]
            profile.set_shape(tensor.name, mn, opt, mx)
    if dynamic:
        config.add_optimization_profile(profile)

    timing = None
    if timing_cache_path is not None:
        data = b""
        if Path(timing_cache_path).is_file():
            data = Path(timing_cache_path).read_bytes()
        try:
            timing = config.create_timing_cache(data)
            usable = timing is not None and config.set_timing_cache(timing, False)
        except Exception as exc:  # a corrupt or foreign cache file
            log.debug("timing cache: %s", exc)
            usable = False
        if not usable:
            log.warning(
                "%s: timing cache not usable here (another GPU or TensorRT?): starting a new one",
                timing_cache_path,
            )
            timing = config.create_timing_cache(b"")
            config.set_timing_cache(timing, False)

    monitor = None
    if progress is not None:
        if hasattr(trt, "IProgressMonitor"):
            monitor = progress_monitor(trt, progress, started)
            config.progress_monitor = monitor
        else:
            log.info("TensorRT %s has no IProgressMonitor: no build progress", caps.version)

    serialized = builder.build_serialized_network(network, config)
    if monitor is not None and monitor.error is not None:
        raise EngineError(f"build progress callback failed: {monitor.error}") from monitor.error
    if serialized is None:
        if monitor is not None and monitor.cancelled:
            raise EngineError(f"{source.name}: build cancelled")
        raise EngineError(
            f"{source.name}: TensorRT {caps.version} could not build the plan "
            "(see the TensorRT errors logged above)"
        )
    if timing_cache_path is not None:
        cache = config.get_timing_cache()
        if cache is not None:
            atomic_write(Path(timing_cache_path), bytes(memoryview(cache.serialize())))
    return bytes(memoryview(serialized))
