"""TensorRT engine, plan builder and GPU probe.

Without a GPU (this machine, CI): the modules import, the probe says why there is no GPU,
and the plan cache's bookkeeping is tested with plain GpuInfo values — that tests our cache
logic (which plan fits which machine), not a GPU result; no plan is built or run. The tests
marked ``gpu`` build and run real plans of the shipped model and are skipped, with the
reason, where there is no GPU or no TensorRT.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edged.config.model import ModelConfig
from edged.core.files import sha256_of
from edged.engines import gpu, tensorrt
from edged.engines.base import EngineError
from edged.engines.build_progress import BuildProgress, ProgressRelay
from edged.engines.build_strategy import TrtCapabilities, choose_strategy
from edged.engines.gpu import GpuInfo, probe, probe_reason
from edged.engines.onnx_facts import OnnxFacts, inspect_onnx, plan_shapes
from edged.engines.plan_build import build_plan, convert_to_fp16, ensure_plan
from edged.engines.plan_cache import PlanKey, cache_key, find_plan, store_plan
from edged.engines.tensorrt import TrtEngine
from edged.models import plans
from edged.models.detector import DetectRequest, load_detector, open_engine, prepared_model
from edged.models.graph_preprocess import FRAMES, PREFIX, prepare_graph
from edged.models.manifest import load_manifest
from edged.models.nanodet import NanoDetAdapter
from edged.models.plans import plan_for
from edged.models.preprocess import place
from edged.tools.engine_build import build_engine
from tests.paths import MODEL, ROOT
from tests.test_prepare import read_frames, unmatched

ORIN = GpuInfo(name="Orin", compute_capability=(8, 7), multiprocessors=16)
RTX4090 = GpuInfo(name="NVIDIA GeForce RTX 4090", compute_capability=(8, 9), multiprocessors=128)
SHA = "fba29953a5dfa3e31cb6b60bce8ea96104a048496abe0c1eb9785000c53d4db6"
SHAPES = {"input_1:0": (1, 3, 416, 416)}
# TensorRT 10.13's and 11.4's enum members, as their Python bindings list them
TRT10 = TrtCapabilities(
    "10.13.3.9",
    frozenset({"EXPLICIT_BATCH", "STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS"}),
    frozenset({"FP16", "INT8", "BF16", "TF32", "OBEY_PRECISION_CONSTRAINTS"}),
)
TRT11 = TrtCapabilities(
    "11.4.0.106",
    frozenset({"STRONGLY_TYPED", "PREFER_AOT_PYTHON_PLUGINS"}),
    frozenset({"TF32", "REFIT", "STRIP_PLAN"}),
)


def key_of(
    onnx_sha256: str = SHA,
    trt_version: str = "10.3.0",
    gpu: GpuInfo = ORIN,
    precision: str = "fp16",
    shapes: dict[str, tuple] | None = None,
) -> PlanKey:
    return PlanKey.of(onnx_sha256, trt_version, gpu, precision, shapes or SHAPES)


def find(cache: Path, **changes: Any) -> Path | None:
    """find_plan for the plan key_of(**changes) describes."""
    key = key_of(**changes)
    gpu_info = changes.get("gpu", ORIN)
    shapes = changes.get("shapes", SHAPES)
    return find_plan(
        cache, "nanodet-g-416", key.onnx_sha256, key.trt_version, gpu_info, key.precision, shapes
    )


@pytest.fixture
def no_tensorrt(monkeypatch: pytest.MonkeyPatch) -> None:
    """TensorRT not importable, whatever this machine has."""
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setitem(sys.modules, "tensorrt_bindings", None)


# --------------------------------------------------------------------------- import, probe


def test_modules_import_without_tensorrt_or_a_gpu() -> None:
    code = (
        "import sys\n"
        "import edged.engines.tensorrt, edged.engines.plan_build, edged.engines.gpu, "
        "edged.models.graph_preprocess, edged.models.plans\n"
        "assert 'tensorrt' not in sys.modules and 'tensorrt_bindings' not in sys.modules\n"
        "assert not any(m == 'cuda' or m.startswith('cuda.') for m in sys.modules)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_probe_says_why_there_is_no_gpu() -> None:
    info = probe()
    if info is not None:
        pytest.skip(f"this machine has a GPU: {info.describe()}")
    assert probe_reason(), "probe() returned None without a reason"


def test_probe_without_cuda_python(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart"):
        monkeypatch.setitem(sys.modules, name, None)
    assert probe() is None
    assert "cuda-python is not installed" in probe_reason()


def test_without_tensorrt_engine_and_build_say_what_to_install(
    no_tensorrt: None, tmp_path: Path
) -> None:
    message = "TensorRT is not installed: pip install 'edged\\[tensorrt\\]'"
    plan = tmp_path / "x.plan"
    plan.write_bytes(b"not a plan")
    with pytest.raises(EngineError, match=message):
        TrtEngine(plan)
    with pytest.raises(EngineError, match=message):
        build_plan(MODEL, "fp16", 1, tmp_path, gpu=ORIN)
    with pytest.raises(EngineError, match=message):
        ensure_plan(MODEL, "fp16", 1, tmp_path, gpu=ORIN)
    assert gpu.tensorrt_version() is None


# --------------------------------------------------------------------------- cache key


def test_cache_key_is_stable() -> None:
    a = cache_key(SHA, "10.3.0", ORIN, "fp16", {"a": (1, 3, 8, 8), "b": (1, 4)})
    b = cache_key(SHA, "10.3.0", ORIN, "fp16", {"b": [1, 4], "a": (1, 3, 8, 8)})
    c = cache_key(
        SHA, "10.3.0", ORIN, "fp16", {"a": ((1, 3, 8, 8),) * 3, "b": (np.int64(1), np.int64(4))}
    )
    assert a == b == c
    assert len(a) == 32 and int(a, 16) >= 0
    # driver/runtime versions and memory do not change what a plan is
    other_driver = GpuInfo(
        name="Orin",
        compute_capability=(8, 7),
        multiprocessors=16,
        driver_version="12.6",
        total_memory=1 << 34,
    )
    assert cache_key(SHA, "10.3.0", other_driver, "fp16", {"a": (1, 3, 8, 8), "b": (1, 4)}) == a


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": "0" * 64},
        {"trt_version": "10.7.0"},
        {"gpu": GpuInfo(name="Orin Nano", compute_capability=(8, 7), multiprocessors=16)},
        {"gpu": GpuInfo(name="Orin", compute_capability=(8, 6), multiprocessors=16)},
        {"gpu": GpuInfo(name="Orin", compute_capability=(8, 7), multiprocessors=8)},
        {"precision": "int8"},
        {"precision": "fp32"},
        {"shapes": {"input_1:0": (2, 3, 416, 416)}},
        {"shapes": {"input_1:0": ((1, 3, 416, 416), (4, 3, 416, 416), (8, 3, 416, 416))}},
        {"shapes": {"images": (1, 3, 416, 416)}},
    ],
    ids=[
        "sha256",
        "trt",
        "gpu-name",
        "compute-capability",
        "sm-count",
        "int8",
        "fp32",
        "shape",
        "profile",
        "input-name",
    ],
)
def test_cache_key_changes_with_each_component(change: dict[str, Any]) -> None:
    assert key_of(**change).digest() != key_of().digest()


def test_cache_key_refuses_an_unknown_precision() -> None:
    with pytest.raises(ValueError, match="precision"):
        key_of(precision="bf16")


# --------------------------------------------------------------------------- find_plan


def test_find_plan_accepts_the_matching_plan(tmp_path: Path) -> None:
    path = store_plan(tmp_path, "nanodet-g-416", key_of(), b"plan bytes", {"seconds": 1.0})
    assert path == tmp_path / "nanodet-g-416" / f"{key_of().digest()}.plan"
    assert find(tmp_path) == path
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["key_components"] == {
        "onnx_sha256": SHA,
        "trt_version": "10.3.0",
        "gpu_name": "Orin",
        "compute_capability": [8, 7],
        "multiprocessors": 16,
        "precision": "fp16",
        "shapes": {"input_1:0": [[1, 3, 416, 416]] * 3},
    }
    assert sidecar["plan"]["bytes"] == len(b"plan bytes")
    assert not list(path.parent.glob("*.tmp")) and not list(path.parent.glob(".*"))


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (
            {"trt_version": "10.7.0", "gpu": RTX4090},
            "built for TensorRT 10.3.0 on Orin (sm 8.7, 16 SMs); this is TensorRT 10.7.0 on "
            "NVIDIA GeForce RTX 4090 (sm 8.9, 128 SMs)",
        ),
        ({"trt_version": "10.7.0"}, "built for TensorRT 10.3.0 on Orin"),
        (
            {"gpu": GpuInfo(name="Orin", compute_capability=(8, 7), multiprocessors=8)},
            "this is TensorRT 10.3.0 on Orin (sm 8.7, 8 SMs)",
        ),
        ({"precision": "int8"}, "built for fp16; this is int8"),
        (
            {"shapes": {"input_1:0": (2, 3, 416, 416)}},
            "built for shapes input_1:0 1×3×416×416; this is shapes input_1:0 2×3×416×416",
        ),
        ({"onnx_sha256": "0" * 64}, "model sha256 fba29953a5df"),
    ],
    ids=["trt-and-gpu", "trt", "gpu", "precision", "shape", "model"],
)
def test_find_plan_rejects_a_stale_plan_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, change: dict[str, Any], why: str
) -> None:
    store_plan(tmp_path, "nanodet-g-416", key_of(), b"plan bytes")
    with caplog.at_level(logging.INFO, logger="edged.engines.plan_cache"):
        assert find(tmp_path, **change) is None
    assert why in caplog.text
    assert "stale" in caplog.text
    # another TensorRT, GPU or model is a warning; a sibling precision or shape a note
    sibling = set(change) <= {"precision", "shapes"}
    stale = [r for r in caplog.records if "stale" in r.getMessage()]
    assert {r.levelno for r in stale} == {logging.INFO if sibling else logging.WARNING}


def test_find_plan_never_loads_a_plan_whose_sidecar_disagrees(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A plan stored under the current key whose sidecar (edited, or left from another
    machine) describes another build is refused."""
    path = store_plan(tmp_path, "nanodet-g-416", key_of(trt_version="10.7.0"), b"plan")
    target = tmp_path / "nanodet-g-416" / f"{key_of().digest()}"
    path.rename(target.with_suffix(".plan"))
    path.with_suffix(".json").rename(target.with_suffix(".json"))
    with caplog.at_level(logging.WARNING):
        assert find(tmp_path) is None
    assert "built for TensorRT 10.7.0 on Orin" in caplog.text


@pytest.mark.parametrize("damage", ["garbage", "missing", "no-components", "edited", "plan"])
def test_a_corrupt_or_missing_sidecar_means_rebuild(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    path = store_plan(tmp_path, "nanodet-g-416", key_of(), b"plan bytes")
    sidecar = path.with_suffix(".json")
    if damage == "garbage":
        sidecar.write_text("{not json")
    elif damage == "missing":
        sidecar.unlink()
    elif damage == "no-components":
        sidecar.write_text(json.dumps({"format": 1, "key": key_of().digest()}))
    elif damage == "edited":  # components edited without the key: the hash no longer fits
        data = json.loads(sidecar.read_text())
        data["key_components"]["precision"] = "int8"
        sidecar.write_text(json.dumps(data))
    else:  # the plan itself damaged after the sidecar was written
        path.write_bytes(b"plan bytez")
    with caplog.at_level(logging.WARNING):
        assert find(tmp_path) is None
    assert "rebuilding" in caplog.text


def test_find_plan_with_an_empty_cache(tmp_path: Path) -> None:
    assert find(tmp_path) is None
    assert find(tmp_path / "nowhere") is None


# --------------------------------------------------------------------------- the plan a model uses


@pytest.mark.parametrize("graph", [False, True], ids=["model", "prepared-graph"])
def test_the_daemon_and_engine_build_ask_for_the_same_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, graph: bool
) -> None:
    """``backend: tensorrt-native`` and ``edged engine build`` both go through ``plan_for``:
    the same model file, precision, batch, cache folder, timing cache and model name."""
    asked: list[dict[str, Any]] = []

    def recording_ensure_plan(*args: Any, **kwargs: Any) -> Path:
        call = inspect.signature(ensure_plan).bind(*args, **kwargs).arguments
        call.pop("progress", None)  # the CLI prints progress, the daemon does not
        asked.append(call)
        return tmp_path / "some.plan"

    monkeypatch.setattr(plans, "ensure_plan", recording_ensure_plan)
    monkeypatch.setattr(tensorrt, "TrtEngine", lambda plan: plan)
    config = ModelConfig(
        path=MODEL,
        backend="tensorrt-native",
        precision="fp16",
        max_batch=2,
        preprocess="graph" if graph else "cpu",
        cache_dir=tmp_path,
    )
    manifest = load_manifest(MODEL)
    source = prepared_model(config, manifest) if graph else MODEL
    assert open_engine(config, manifest, source) == tmp_path / "some.plan"
    assert build_engine(str(MODEL), "fp16", 2, str(tmp_path), graph) == 0
    daemon, cli = asked
    assert daemon == cli
    assert daemon == {
        "onnx_path": source,
        "precision": "fp16",
        "max_batch": 2,
        "cache_dir": tmp_path / "plans",
        "timing_cache_path": tmp_path / "plans" / "timing.cache",
        "model_name": "nanodet-g-416",
        "fp32_prefix": PREFIX,
    }


def test_plan_for_refuses_a_precision_the_model_cannot_give(tmp_path: Path) -> None:
    config = ModelConfig(
        path=MODEL, backend="tensorrt-native", precision="int8", cache_dir=tmp_path
    )
    with pytest.raises(EngineError, match="is fp32; precision int8"):
        plan_for(config, load_manifest(MODEL), MODEL)


# --------------------------------------------------------------------------- the ONNX side


def qdq_model(path: Path, zero_point_type: int) -> Path:
    """x → QuantizeLinear → DequantizeLinear → y with the given zero-point type."""
    zp_value = np.zeros((), np.int8 if zero_point_type == TensorProto.INT8 else np.uint8)
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
        numpy_helper.from_array(zp_value, "zp"),
    ]
    graph = helper.make_graph(
        [
            helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"], name="q"),
            helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"], name="dq"),
        ],
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_inspect_onnx_reads_precision_and_tensorrt_compatibility(tmp_path: Path) -> None:
    shipped = inspect_onnx(MODEL)
    assert shipped.precision == "fp32" and shipped.inputs == {"input_1:0": ("batch", 3, 416, 416)}
    signed = inspect_onnx(qdq_model(tmp_path / "s8.onnx", TensorProto.INT8))
    assert signed.precision == "int8" and signed.qdq_problems == ()
    assert signed.inputs == {"x": ("batch", 4)}
    unsigned = inspect_onnx(qdq_model(tmp_path / "u8.onnx", TensorProto.UINT8))
    assert unsigned.precision == "int8"
    assert len(unsigned.qdq_problems) == 2 and "uint8" in unsigned.qdq_problems[0]


def test_fp16_conversion_for_tensorrt_11_keeps_the_detections(tmp_path: Path) -> None:
    """TensorRT 11 has no FP16 builder flag, so an FP32 model is converted before a
    strongly typed build. Checked here on the CPU: the converted prepared graph is FP16
    inside, keeps uint8 frames in and FP32 outputs, and finds what the FP32 one finds."""
    spec = load_manifest(MODEL).input
    prepared = prepare_graph(MODEL, spec, tmp_path / "p32.onnx")
    half = convert_to_fp16(prepared, tmp_path / "p16.onnx", PREFIX)
    facts = inspect_onnx(half)
    assert facts.precision == "fp16" and facts.inputs == {FRAMES: ("batch", "height", "width", 3)}
    model = onnx.load(str(half))
    # the preprocessing stays FP32: frames cast to float32, mean and std float32
    cast = next(n for n in model.graph.node if n.name == "edged_pre/cast")
    assert cast.attribute[0].i == TensorProto.FLOAT
    kept = {i.name: i.data_type for i in model.graph.initializer}
    assert kept["edged_pre/mean"] == kept["edged_pre/std"] == TensorProto.FLOAT
    assert {o.type.tensor_type.elem_type for o in model.graph.output} == {TensorProto.FLOAT}
    frame = read_frames((1,))[1]
    runs = []
    for path in (prepared, half):
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        runs.append(
            dict(
                zip(
                    [o.name for o in s.get_outputs()],
                    s.run(None, {FRAMES: frame[None]}),
                    strict=True,
                )
            )
        )
    adapter = NanoDetAdapter(load_manifest(MODEL))
    geo = place(spec, 768, 576)
    full = adapter.postprocess(runs[0], 0, geo, 0.25, 0.5)
    half_dets = adapter.postprocess(runs[1], 0, geo, 0.25, 0.5)
    assert not unmatched(full, half_dets, 0.3, 0.9, 0.02)
    assert not unmatched(half_dets, full, 0.3, 0.9, 0.02)


def test_plan_shapes() -> None:
    static = OnnxFacts(inputs={"input_1:0": (1, 3, 416, 416)}, precision="fp32")
    assert plan_shapes(static, 4) == {"input_1:0": ((1, 3, 416, 416),) * 3}
    dynamic = OnnxFacts(inputs={"images": ("batch", 3, 640, 640)}, precision="fp32")
    assert plan_shapes(dynamic, 8) == {
        "images": ((1, 3, 640, 640), (8, 3, 640, 640), (8, 3, 640, 640))
    }
    frames = OnnxFacts(inputs={FRAMES: (1, "height", "width", 3)}, precision="fp32")
    with pytest.raises(EngineError, match="dynamic axis 1"):
        plan_shapes(frames, 1)
    given = {FRAMES: ((1, 240, 320, 3), (1, 576, 768, 3), (1, 1080, 1920, 3))}
    assert plan_shapes(frames, 1, given) == {FRAMES: given[FRAMES]}
    with pytest.raises(EngineError, match="does not fit"):
        plan_shapes(frames, 1, {FRAMES: (2, 576, 768, 3)})
    with pytest.raises(EngineError, match="names"):
        plan_shapes(frames, 1, {"images": (1, 576, 768, 3)})


# --------------------------------------------------------------------------- strategy


def facts(precision: str, problems: tuple[str, ...] = ()) -> OnnxFacts:
    return OnnxFacts(inputs={"x": (1, 3, 8, 8)}, precision=precision, qdq_problems=problems)


@pytest.mark.parametrize(
    ("caps", "requested", "carried", "expected"),
    [
        (TRT10, "fp32", "fp32", "strongly typed"),
        (TRT11, "fp32", "fp32", "strongly typed"),
        (TRT10, "fp16", "fp16", "strongly typed"),
        (TRT11, "fp16", "fp16", "strongly typed"),
        (TRT10, "fp16", "fp32", "weakly typed, BuilderFlag.FP16"),
        (TRT11, "fp16", "fp32", "strongly typed, converted to FP16 first"),
        (TRT10, "int8", "int8", "strongly typed"),
        (TRT11, "int8", "int8", "strongly typed"),
    ],
)
def test_precision_strategy_per_tensorrt_version(
    caps: TrtCapabilities, requested: str, carried: str, expected: str
) -> None:
    assert choose_strategy(requested, facts(carried), caps).describe() == expected


def test_precision_strategy_refusals() -> None:
    for caps in (TRT10, TRT11):
        with pytest.raises(EngineError, match="edged calibrate"):
            choose_strategy("int8", facts("fp32"), caps)
        with pytest.raises(EngineError, match="symmetric int8"):
            choose_strategy("int8", facts("int8", ("q: uint8 zero point",)), caps)
        with pytest.raises(EngineError, match="precision int8"):
            choose_strategy("fp16", facts("int8"), caps)
        with pytest.raises(EngineError, match="is fp16"):
            choose_strategy("fp32", facts("fp16"), caps)
    with pytest.raises(EngineError, match="no FP16 builder flag"):
        choose_strategy("fp16", facts("fp32"), TRT11, can_convert_fp16=False)


def test_progress_relay_reports_phases_and_can_cancel() -> None:
    seen: list[BuildProgress] = []
    relay = ProgressRelay(seen.append, started=0.0)
    relay.phase_start("Building engine", None, 2)
    relay.phase_start("Tactic selection", "Building engine", 3)
    assert relay.step_complete("Tactic selection", 0) is True
    relay.phase_finish("Tactic selection")
    assert [(e.event, e.phase, e.step, e.steps) for e in seen] == [
        ("start", "Building engine", 0, 2),
        ("start", "Tactic selection", 0, 3),
        ("step", "Tactic selection", 1, 3),
        ("finish", "Tactic selection", 3, 3),
    ]
    assert seen[2].parent == "Building engine" and seen[2].elapsed_s > 0
    assert "Building engine › Tactic selection: 1/3" in str(seen[2])

    cancel = ProgressRelay(lambda report: False)
    cancel.phase_start("Building engine", None, 2)
    assert cancel.step_complete("Building engine", 0) is False and cancel.cancelled

    def broken(report: BuildProgress) -> None:
        raise RuntimeError("callback bug")

    failing = ProgressRelay(broken)
    failing.phase_start("Building engine", None, 2)
    assert failing.step_complete("Building engine", 0) is False
    assert isinstance(failing.error, RuntimeError)


# --------------------------------------------------------------------------- on a GPU

GPU = probe()


def _gpu_ready() -> str:
    if GPU is None:
        return f"no GPU: {probe_reason()}"
    if gpu.tensorrt_version() is None:
        return "TensorRT is not installed"
    return ""


needs_gpu = pytest.mark.skipif(bool(_gpu_ready()), reason=_gpu_ready() or "GPU present")


@pytest.mark.gpu
@needs_gpu
def test_gpu_fp16_plan_of_the_shipped_model_finds_what_the_cpu_path_finds(
    tmp_path: Path,
) -> None:
    """Build (TensorRT, fp16) and run the shipped NanoDet; detections ≥ 0.35 on frames 1, 60,
    120 match the CPU path's with IoU ≥ 0.8 and |Δscore| ≤ 0.05 (FP16 tolerance)."""
    reports: list[BuildProgress] = []
    plan = build_plan(
        MODEL, "fp16", 1, tmp_path / "cache", tmp_path / "timing.cache", reports.append
    )
    assert plan.is_file() and (tmp_path / "timing.cache").is_file()
    assert reports and reports[-1].elapsed_s > 0
    manifest = load_manifest(MODEL)
    adapter = NanoDetAdapter(manifest)
    cpu = load_detector(ModelConfig(path=MODEL, backend="cpu", threads=2, precision="fp32"))
    with TrtEngine(plan) as engine:
        assert engine.provider == "TensorRT" and engine.max_batch == 1
        assert engine.input_names == ["input_1:0"]
        assert set(engine.output_names) == {o.name for o in onnx.load(str(MODEL)).graph.output}
        for n, frame in read_frames().items():
            batch = np.empty((1, *adapter.input_shape), np.float32)
            geo = adapter.preprocess(frame, batch[0])
            outputs = engine.run({"input_1:0": batch})
            ours = adapter.postprocess(outputs, 0, geo, 0.25, 0.5)
            theirs = cpu.detect([DetectRequest(frame, 0.25, 0.5)])[0].detections
            assert not unmatched(theirs, ours, 0.35, 0.8, 0.05), f"frame {n}"
            assert not unmatched(ours, theirs, 0.35, 0.8, 0.05), f"frame {n}"


@pytest.mark.gpu
@needs_gpu
def test_gpu_cached_plan_is_reused_and_a_stale_one_rebuilt(tmp_path: Path) -> None:
    first = ensure_plan(MODEL, "fp32", 1, tmp_path)
    stamp = first.stat().st_mtime_ns
    again = ensure_plan(MODEL, "fp32", 1, tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp
    sidecar = json.loads(first.with_suffix(".json").read_text())
    assert GPU is not None and sidecar["key_components"]["gpu_name"] == GPU.name
    assert sidecar["key_components"]["trt_version"] == gpu.tensorrt_version()
    assert find_plan(tmp_path, MODEL.stem, sha256_of(MODEL), "0.0.0", GPU, "fp32", SHAPES) is None


@pytest.mark.gpu
@needs_gpu
def test_gpu_prepared_graph_plan_takes_camera_frames(tmp_path: Path) -> None:
    """The prepared NanoDet (uint8 frames of any size in 240×320..1080×1920) as a TensorRT
    fp32 plan: its detections match the CPU path's (IoU ≥ 0.8, |Δscore| ≤ 0.05)."""
    manifest = load_manifest(MODEL)
    prepared = prepare_graph(MODEL, manifest.input, tmp_path / "nanodet.frames.onnx")
    shapes = {FRAMES: ((1, 240, 320, 3), (1, 576, 768, 3), (1, 1080, 1920, 3))}
    plan = build_plan(prepared, "fp32", 1, tmp_path / "cache", input_shapes=shapes)
    adapter = NanoDetAdapter(manifest)
    cpu = load_detector(ModelConfig(path=MODEL, backend="cpu", threads=2, precision="fp32"))
    with TrtEngine(plan) as engine:
        assert engine.input_names == [FRAMES]
        for n, frame in read_frames().items():
            outputs = engine.run({FRAMES: frame[None]})
            ours = adapter.postprocess(outputs, 0, place(manifest.input, 768, 576), 0.25, 0.5)
            theirs = cpu.detect([DetectRequest(frame, 0.25, 0.5)])[0].detections
            assert not unmatched(theirs, ours, 0.35, 0.8, 0.05), f"frame {n}"
            assert not unmatched(ours, theirs, 0.35, 0.8, 0.05), f"frame {n}"
        with pytest.raises(EngineError, match="outside the plan"):
            engine.run({FRAMES: np.zeros((1, 100, 100, 3), np.uint8)})
