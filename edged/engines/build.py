"""``edged engine build``: ONNX → TensorRT plan, kept in a cache keyed by everything a plan
depends on.

A serialized TensorRT plan runs only on the TensorRT version that built it, and is tuned for
one GPU (compute capability, SM count); it also fixes a precision and the input shapes of
its optimization profile. The cache is therefore::

    <cache>/<model-name>/<key>.plan    the serialized engine
    <cache>/<model-name>/<key>.json    sidecar: every component of the key in clear, the
                                       plan's sha256 and size, how it was built

with ``key = cache_key(onnx_sha256, trt_version, gpu, precision, shapes)``. The plan is
written first and the sidecar last, each atomically (temporary file, fsync, rename), so a
plan without a sidecar is an interrupted build. :func:`find_plan` returns a plan only when
its sidecar matches the model, TensorRT version, GPU, precision and shapes of this machine;
otherwise it logs why the plans it has are stale and returns None, and the caller rebuilds.
It never hands out a mismatched plan.

Precision, as assumed for TensorRT 10.x and 11.x (the 10.13 and 11.4 Python bindings were
inspected; no GPU was available to run them):

- TensorRT ≥ 10 networks are always explicit-batch (the EXPLICIT_BATCH flag is deprecated in
  10 and gone in 11); it is set only for TensorRT < 10.
- When the ONNX already carries the precision asked for — an FP32 model for fp32, an FP16
  model (e.g. onnxconverter-common's ``keep_io_types``) for fp16, a Q/DQ model from
  ``edged calibrate`` for int8 — the network is created ``STRONGLY_TYPED``: TensorRT follows
  the model's types, which works the same on 10.x and 11.x.
- An FP32 model asked to build fp16 uses ``BuilderFlag.FP16`` where that flag exists
  (TensorRT 10.x, weakly typed network). TensorRT 11 removed the flag; there the model is
  converted to FP16 first (onnxconverter-common, ``keep_io_types=True``, a prepared graph's
  preprocessing kept in FP32) and built strongly typed.
- int8 needs a Q/DQ model. Implicit calibration (``int8_calibrator``) is not used: TensorRT 11
  removed it. TensorRT's Q/DQ must be symmetric signed INT8 (zero point 0, int8 type); a
  model quantized for ONNX Runtime on x86 with uint8 activations is refused with the reason.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edged.engines.base import EngineError
from edged.engines.gpu import GpuInfo, import_tensorrt, probe, probe_reason
from edged.models.graph_preprocess import PREFIX as PREPARED_PREFIX
from edged.models.manifest import sha256_of

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
SIDECAR_FORMAT = 1

# one shape per input, or (min, opt, max) shapes of its optimization profile
ShapeSpec = Mapping[str, Any]
Profile = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


# --------------------------------------------------------------------------- cache key


def canonical_shapes(shapes: ShapeSpec) -> tuple[tuple[str, Profile], ...]:
    """``{name: shape}`` or ``{name: (min, opt, max)}`` as a sorted tuple of
    ``(name, (min, opt, max))``; a single shape stands for ``(shape, shape, shape)``."""
    out = []
    for name, value in shapes.items():
        items = tuple(value)
        if all(isinstance(d, int) or hasattr(d, "__index__") for d in items):
            shape = tuple(int(d) for d in items)
            profile: Profile = (shape, shape, shape)
        else:
            if len(items) != 3:
                raise ValueError(f"shapes[{name!r}]: a shape or (min, opt, max), got {value!r}")
            mn, opt, mx = (tuple(int(d) for d in s) for s in items)
            if not len(mn) == len(opt) == len(mx):
                raise ValueError(f"shapes[{name!r}]: min, opt and max differ in rank: {value!r}")
            profile = (mn, opt, mx)
        out.append((str(name), profile))
    return tuple(sorted(out))


@dataclass(frozen=True)
class PlanKey:
    """Everything a plan depends on."""

    onnx_sha256: str
    trt_version: str
    gpu_name: str
    compute_capability: tuple[int, int]
    multiprocessors: int
    precision: str
    shapes: tuple[tuple[str, Profile], ...]

    @classmethod
    def of(
        cls,
        onnx_sha256: str,
        trt_version: str,
        gpu: GpuInfo,
        precision: str,
        shapes: ShapeSpec,
    ) -> PlanKey:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        return cls(
            onnx_sha256=str(onnx_sha256),
            trt_version=str(trt_version),
            gpu_name=gpu.name,
            compute_capability=(int(gpu.compute_capability[0]), int(gpu.compute_capability[1])),
            multiprocessors=int(gpu.multiprocessors),
            precision=precision,
            shapes=canonical_shapes(shapes),
        )

    def components(self) -> dict[str, Any]:
        """The key in clear, as JSON-ready values (the sidecar's ``key_components``)."""
        return {
            "onnx_sha256": self.onnx_sha256,
            "trt_version": self.trt_version,
            "gpu_name": self.gpu_name,
            "compute_capability": list(self.compute_capability),
            "multiprocessors": self.multiprocessors,
            "precision": self.precision,
            "shapes": {name: [list(s) for s in profile] for name, profile in self.shapes},
        }

    @classmethod
    def from_components(cls, data: Mapping[str, Any]) -> PlanKey:
        """Inverse of :meth:`components`; ValueError/KeyError/TypeError for a bad one."""
        cc = data["compute_capability"]
        if len(cc) != 2:
            raise ValueError(f"compute_capability {cc!r}")
        return cls(
            onnx_sha256=str(data["onnx_sha256"]),
            trt_version=str(data["trt_version"]),
            gpu_name=str(data["gpu_name"]),
            compute_capability=(int(cc[0]), int(cc[1])),
            multiprocessors=int(data["multiprocessors"]),
            precision=str(data["precision"]),
            shapes=canonical_shapes({k: tuple(v) for k, v in dict(data["shapes"]).items()}),
        )

    def digest(self) -> str:
        """A stable hash of all components (32 hex digits)."""
        text = json.dumps(
            {"format": SIDECAR_FORMAT, **self.components()}, sort_keys=True, separators=(",", ":")
        )
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def gpu(self) -> str:
        cc = f"{self.compute_capability[0]}.{self.compute_capability[1]}"
        return f"{self.gpu_name} (sm {cc}, {self.multiprocessors} SMs)"

    def shapes_text(self) -> str:
        def dims(shape: tuple[int, ...]) -> str:
            return "×".join(map(str, shape))

        parts = []
        for name, (mn, opt, mx) in self.shapes:
            if mn == opt == mx:
                parts.append(f"{name} {dims(mx)}")
            else:
                parts.append(f"{name} {dims(mn)}..{dims(mx)} (opt {dims(opt)})")
        return ", ".join(parts)

    def describe(self) -> str:
        return (
            f"TensorRT {self.trt_version} on {self.gpu()}, {self.precision}, "
            f"{self.shapes_text()}, model {self.onnx_sha256[:12]}"
        )


def cache_key(
    onnx_sha256: str, trt_version: str, gpu: GpuInfo, precision: str, shapes: ShapeSpec
) -> str:
    """The plan cache key: a stable hash of the model's sha256, the TensorRT version, the GPU
    (name, compute capability, SM count), the precision and the input shapes/profile."""
    return PlanKey.of(onnx_sha256, trt_version, gpu, precision, shapes).digest()


def stale_reason(built: PlanKey, current: PlanKey) -> str | None:
    """Why a plan built for ``built`` cannot serve ``current`` (None when it can), e.g.
    ``built for TensorRT 10.3 on Orin (sm 8.7, 16 SMs), this is TensorRT 10.7 on NVIDIA
    GeForce RTX 4090 (sm 8.9, 128 SMs)``."""
    was: list[str] = []
    now: list[str] = []
    platform_b = built.trt_version, built.gpu_name, built.compute_capability, built.multiprocessors
    platform_c = (
        current.trt_version,
        current.gpu_name,
        current.compute_capability,
        current.multiprocessors,
    )
    if platform_b != platform_c:
        was.append(f"TensorRT {built.trt_version} on {built.gpu()}")
        now.append(f"TensorRT {current.trt_version} on {current.gpu()}")
    if built.precision != current.precision:
        was.append(built.precision)
        now.append(current.precision)
    if built.shapes != current.shapes:
        was.append(f"shapes {built.shapes_text()}")
        now.append(f"shapes {current.shapes_text()}")
    if built.onnx_sha256 != current.onnx_sha256:
        was.append(f"model sha256 {built.onnx_sha256[:12]}")
        now.append(f"model sha256 {current.onnx_sha256[:12]}")
    if not was:
        return None
    return f"built for {', '.join(was)}; this is {', '.join(now)}"


# --------------------------------------------------------------------------- plan cache


def plan_paths(cache_dir: Path, model_name: str, key: str) -> tuple[Path, Path]:
    folder = Path(cache_dir) / model_name
    return folder / f"{key}.plan", folder / f"{key}.json"


def _read_sidecar(path: Path) -> tuple[PlanKey, dict[str, Any]]:
    """The key a sidecar describes and its full content; ValueError when unusable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"unreadable sidecar: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise ValueError(
            f"sidecar format {data.get('format') if isinstance(data, dict) else '?'}"
            f", expected {SIDECAR_FORMAT}"
        )
    try:
        key = PlanKey.from_components(data["key_components"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"corrupt sidecar: {type(exc).__name__}: {exc}") from exc
    if data.get("key") != key.digest():
        raise ValueError("corrupt sidecar: its key does not hash its components")
    return key, data


def _check_plan_file(plan: Path, sidecar: dict[str, Any]) -> str | None:
    """Why the plan file does not match its sidecar (None when it does)."""
    info = sidecar.get("plan") or {}
    try:
        size = plan.stat().st_size
    except OSError:
        return "plan file missing"
    if size != info.get("bytes"):
        return f"plan file is {size} bytes, the sidecar says {info.get('bytes')}"
    if sha256_of(plan) != info.get("sha256"):
        return "plan file's sha256 does not match its sidecar (corrupt)"
    return None


def find_plan(
    cache_dir: Path,
    model_name: str,
    onnx_sha256: str,
    trt_version: str,
    gpu: GpuInfo,
    precision: str,
    shapes: ShapeSpec,
) -> Path | None:
    """The cached plan for exactly this model, TensorRT version, GPU, precision and shapes,
    or None (after logging why every plan of the model that is there does not fit)."""
    want = PlanKey.of(onnx_sha256, trt_version, gpu, precision, shapes)
    key = want.digest()
    plan, sidecar = plan_paths(cache_dir, model_name, key)
    if plan.exists() or sidecar.exists():
        if not sidecar.is_file():
            log.warning("%s: no sidecar (interrupted build?): rebuilding", plan)
            return None
        try:
            built, data = _read_sidecar(sidecar)
        except ValueError as exc:
            log.warning("%s: %s: rebuilding", sidecar, exc)
            return None
        reason = stale_reason(built, want) or _check_plan_file(plan, data)
        if reason:
            log.warning("%s is stale: %s: rebuilding", plan, reason)
            return None
        log.info("%s: cached TensorRT plan for %s", plan, want.describe())
        return plan
    folder = plan.parent
    others = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not others:
        log.info("%s: no TensorRT plan of %s yet (%s)", folder, model_name, want.describe())
        return None
    for path in others:
        try:
            built, _ = _read_sidecar(path)
        except ValueError as exc:
            log.warning("%s: %s", path, exc)
            continue
        # another TensorRT, GPU or model: left over, worth a warning; another precision or
        # shape of the same model here: a sibling build, worth a note
        platform_changed = (
            built.trt_version != want.trt_version
            or built.gpu() != want.gpu()
            or built.onnx_sha256 != want.onnx_sha256
        )
        log.log(
            logging.WARNING if platform_changed else logging.INFO,
            "%s is stale: %s",
            path.with_suffix(".plan"),
            stale_reason(built, want),
        )
    return None


def _atomic_write(path: Path, data: bytes | memoryview) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def store_plan(
    cache_dir: Path,
    model_name: str,
    key: PlanKey,
    plan: bytes | memoryview,
    built: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``plan`` and its sidecar (plan first, both atomically); returns the plan path."""
    digest = key.digest()
    plan_path, sidecar_path = plan_paths(cache_dir, model_name, digest)
    data = memoryview(plan).cast("B")
    _atomic_write(plan_path, data)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "key": digest,
        "model": model_name,
        "key_components": key.components(),
        "plan": {
            "file": plan_path.name,
            "bytes": data.nbytes,
            "sha256": hashlib.sha256(data).hexdigest(),
        },
        "built": dict(built or {}),
    }
    _atomic_write(sidecar_path, (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())
    return plan_path


# --------------------------------------------------------------------------- the ONNX side


@dataclass(frozen=True)
class OnnxFacts:
    """What the builder needs to know about a model before TensorRT sees it."""

    inputs: dict[str, tuple[int | str, ...]]  # dims: int, or a name/"?" when dynamic
    precision: str  # what the model's own types say: fp32 | fp16 | int8 (Q/DQ)
    qdq_problems: tuple[str, ...] = ()  # why TensorRT would refuse its Q/DQ nodes


def inspect_onnx(onnx_path: Path) -> OnnxFacts:
    try:
        import onnx
        from onnx import TensorProto, numpy_helper
    except ImportError as exc:
        raise EngineError("building a plan needs onnx: pip install 'edged[tensorrt]'") from exc
    model = onnx.load(str(onnx_path), load_external_data=False)
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    consts = {
        n.output[0]: a.t
        for n in graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value"
    }
    inputs: dict[str, tuple[int | str, ...]] = {}
    for value in graph.input:
        if value.name in inits:
            continue
        dims = value.type.tensor_type.shape.dim
        inputs[value.name] = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims
        )
    fp16 = TensorProto.FLOAT16
    qdq = False
    problems: list[str] = []
    has_fp16 = any(i.data_type == fp16 for i in graph.initializer) or any(
        v.type.tensor_type.elem_type == fp16
        for v in (*graph.input, *graph.output, *graph.value_info)
    )
    for node in graph.node:
        if node.op_type == "Cast" and any(a.name == "to" and a.i == fp16 for a in node.attribute):
            has_fp16 = True
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        qdq = True
        label = f"{node.op_type} {node.name or node.output[0]!r}"
        zp_name = node.input[2] if len(node.input) > 2 else ""
        if not zp_name:
            x = inits.get(node.input[0])
            if node.op_type == "QuantizeLinear" or (x is not None and x.data_type != 3):
                problems.append(f"{label}: no zero point, so uint8 (TensorRT needs int8)")
            continue
        zp = inits.get(zp_name) or consts.get(zp_name)
        if zp is None:
            continue
        if zp.data_type == TensorProto.UINT8:
            problems.append(f"{label}: uint8 zero point (TensorRT needs symmetric int8)")
        elif numpy_helper.to_array(zp).any():
            problems.append(f"{label}: non-zero zero point (TensorRT needs symmetric int8)")
    precision = "int8" if qdq else "fp16" if has_fp16 else "fp32"
    return OnnxFacts(inputs=inputs, precision=precision, qdq_problems=tuple(problems))


def plan_shapes(
    facts: OnnxFacts, max_batch: int, input_shapes: ShapeSpec | None = None
) -> dict[str, Profile]:
    """The optimization profile of every input: ``input_shapes`` where given; else a
    dynamic batch (axis 0) becomes 1..max_batch (opt max_batch) and static dims stay. Any
    other dynamic dim must come from ``input_shapes``."""
    if max_batch < 1:
        raise EngineError(f"max_batch must be ≥ 1, got {max_batch}")
    given = dict(canonical_shapes(input_shapes or {}))
    unknown = set(given) - set(facts.inputs)
    if unknown:
        raise EngineError(
            f"input_shapes names {sorted(unknown)}, the model's inputs are {sorted(facts.inputs)}"
        )
    out: dict[str, Profile] = {}
    for name, dims in facts.inputs.items():
        if name in given:
            profile = given[name]
            for shape in profile:
                ok = len(shape) == len(dims) and all(
                    not isinstance(d, int) or d == s for d, s in zip(dims, shape, strict=False)
                )
                if not ok:
                    raise EngineError(
                        f"input_shapes[{name!r}] {shape} does not fit the model's {dims}"
                    )
            out[name] = profile
            continue
        mn, mx = [], []
        for axis, d in enumerate(dims):
            if isinstance(d, int):
                mn.append(d)
                mx.append(d)
            elif axis == 0:
                mn.append(1)
                mx.append(max_batch)
            else:
                raise EngineError(
                    f"input {name!r} has dynamic axis {axis} ({d!r}): give its "
                    f"(min, opt, max) shapes in input_shapes"
                )
        if dims and isinstance(dims[0], int) and dims[0] != max_batch:
            log.info(
                "input %r has a fixed batch of %d; max_batch %d does not apply",
                name,
                dims[0],
                max_batch,
            )
        out[name] = (tuple(mn), tuple(mx), tuple(mx))
    return out


def convert_to_fp16(src: Path, dst: Path) -> Path:
    """An FP16 copy of an FP32 model (inputs and outputs stay FP32; a prepared graph's
    preprocessing nodes stay FP32), for TensorRT versions without ``BuilderFlag.FP16``."""
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError as exc:
        raise EngineError(
            "converting to FP16 needs onnx and onnxconverter-common: pip install 'edged[tensorrt]'"
        ) from exc
    model = onnx.load(str(src))
    keep = [n.name for n in model.graph.node if n.name.startswith(PREPARED_PREFIX)]
    with warnings.catch_warnings():  # one warning per clipped constant (e.g. -inf pads)
        warnings.simplefilter("ignore", UserWarning)
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, node_block_list=keep or None
        )
    onnx.save(converted, str(dst))
    return dst


# --------------------------------------------------------------------------- strategy


@dataclass(frozen=True)
class BuildStrategy:
    strongly_typed: bool
    flags: tuple[str, ...] = ()  # BuilderFlag names
    convert_fp16: bool = False

    def describe(self) -> str:
        parts = ["strongly typed" if self.strongly_typed else "weakly typed"]
        parts += [f"BuilderFlag.{f}" for f in self.flags]
        if self.convert_fp16:
            parts.append("converted to FP16 first")
        return ", ".join(parts)


@dataclass(frozen=True)
class TrtCapabilities:
    """What the installed TensorRT offers, by name (so the decision is testable without it)."""

    version: str
    network_flags: frozenset[str] = field(default_factory=frozenset)
    builder_flags: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, trt: Any) -> TrtCapabilities:
        def members(enum: Any) -> frozenset[str]:
            return frozenset(m for m in dir(enum) if m.isupper())

        return cls(
            version=str(trt.__version__),
            network_flags=members(trt.NetworkDefinitionCreationFlag),
            builder_flags=members(trt.BuilderFlag),
        )

    @property
    def major(self) -> int:
        try:
            return int(self.version.split(".")[0])
        except ValueError:
            return 0


def choose_strategy(
    requested: str, facts: OnnxFacts, caps: TrtCapabilities, can_convert_fp16: bool = True
) -> BuildStrategy:
    """How to get ``requested`` precision out of this model with this TensorRT (see the
    module docstring); EngineError saying what to do when it cannot."""
    if requested not in PRECISIONS:
        raise EngineError(f"precision must be one of {PRECISIONS}, got {requested!r}")
    strongly = "STRONGLY_TYPED" in caps.network_flags
    carried = facts.precision
    if requested == "int8":
        if carried != "int8":
            raise EngineError(
                f"int8 needs a Q/DQ model: run `edged calibrate` and build that; this model is "
                f"{carried} (TensorRT's implicit INT8 calibration is not used: TensorRT 11 "
                f"removed it)"
            )
        if facts.qdq_problems:
            shown = "; ".join(facts.qdq_problems[:3])
            more = len(facts.qdq_problems) - 3
            raise EngineError(
                "TensorRT takes symmetric int8 Q/DQ only (zero point 0); calibrate for "
                f"TensorRT: {shown}" + (f" (and {more} more)" if more > 0 else "")
            )
        if strongly:
            return BuildStrategy(strongly_typed=True)
        if "INT8" in caps.builder_flags:
            return BuildStrategy(strongly_typed=False, flags=("INT8",))
        raise EngineError(f"TensorRT {caps.version} has neither strongly typed networks nor INT8")
    if carried == "int8":
        raise EngineError(
            f"this is a Q/DQ (int8) model; build it with precision int8, not {requested}"
        )
    if requested == carried:
        return BuildStrategy(strongly_typed=strongly)
    if requested == "fp32":  # an fp16 model asked for fp32
        raise EngineError("this model is fp16; build it as fp16, or build the fp32 model")
    # an fp32 model asked for fp16
    if "FP16" in caps.builder_flags:
        return BuildStrategy(strongly_typed=False, flags=("FP16",))
    if strongly and can_convert_fp16:
        return BuildStrategy(strongly_typed=True, convert_fp16=True)
    raise EngineError(
        f"TensorRT {caps.version} has no FP16 builder flag: convert the model to FP16 first "
        "(onnxconverter-common, keep_io_types) or pip install 'edged[tensorrt]'"
    )


# --------------------------------------------------------------------------- building


@dataclass(frozen=True)
class BuildProgress:
    """One report from TensorRT's builder: a phase started, a step of it completed, or the
    phase finished; ``elapsed_s`` since the build started."""

    event: str  # start | step | finish
    phase: str
    parent: str | None
    step: int
    steps: int
    elapsed_s: float

    def __str__(self) -> str:
        where = f"{self.parent} › {self.phase}" if self.parent else self.phase
        if self.event == "step":
            return f"[{self.elapsed_s:7.1f} s] {where}: {self.step}/{self.steps}"
        return f"[{self.elapsed_s:7.1f} s] {where}: {self.event}"


ProgressCallback = Callable[[BuildProgress], "bool | None"]


class ProgressRelay:
    """The Python side of ``trt.IProgressMonitor``: turns TensorRT's callbacks into
    :class:`BuildProgress` reports. The callback may return False to cancel the build; an
    exception in it cancels the build and is raised again after it."""

    def __init__(self, callback: ProgressCallback, started: float | None = None) -> None:
        self.callback = callback
        self.started = time.monotonic() if started is None else started
        self.cancelled = False
        self.error: BaseException | None = None
        self._steps: dict[str, int] = {}
        self._parents: dict[str, str | None] = {}

    def _emit(self, event: str, phase: str, step: int) -> None:
        if self.error is not None:
            return
        report = BuildProgress(
            event,
            phase,
            self._parents.get(phase),
            step,
            self._steps.get(phase, 0),
            time.monotonic() - self.started,
        )
        try:
            if self.callback(report) is False:
                self.cancelled = True
        except Exception as exc:  # must not unwind through TensorRT's C++ frames
            self.error = exc
            self.cancelled = True

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        self._steps[phase_name] = int(num_steps)
        self._parents[phase_name] = parent_phase or None
        self._emit("start", phase_name, 0)

    def step_complete(self, phase_name: str, step: int) -> bool:
        self._emit("step", phase_name, int(step) + 1)
        return not self.cancelled

    def phase_finish(self, phase_name: str) -> None:
        self._emit("finish", phase_name, self._steps.get(phase_name, 0))


def _progress_monitor(trt: Any, callback: ProgressCallback, started: float) -> ProgressRelay:
    class Monitor(ProgressRelay, trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            ProgressRelay.__init__(self, callback, started)

    return Monitor()


def _trt_logger(trt: Any) -> Any:
    from edged.engines.tensorrt import trt_logger

    return trt_logger(trt)


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
) -> Path:
    """Build a TensorRT plan of ``onnx_path`` and store it in the cache; returns its path.

    ``max_batch`` bounds a dynamic batch axis (profile 1..max_batch, opt max_batch);
    ``input_shapes`` gives ``(min, opt, max)`` for other dynamic axes (a prepared graph's
    frame height and width). ``timing_cache_path`` is read when present and written after
    the build (it makes rebuilds on the same GPU much faster). ``progress`` receives
    :class:`BuildProgress` reports (TensorRT ≥ 10) and may return False to cancel.
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
            source = convert_to_fp16(onnx_path, Path(tmp) / f"{onnx_path.stem}.fp16.onnx")
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
) -> Path:
    """The cached plan when it fits this machine, else a freshly built one."""
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
    logger = _trt_logger(trt)
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
            monitor = _progress_monitor(trt, progress, started)
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
            _atomic_write(Path(timing_cache_path), bytes(memoryview(cache.serialize())))
    return bytes(memoryview(serialized))
