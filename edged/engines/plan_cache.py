"""The TensorRT plan cache: plans keyed by everything a plan depends on.

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
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edged.core.files import atomic_write, sha256_of
from edged.engines.gpu import GpuInfo

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
SIDECAR_FORMAT = 1

# one shape per input, or (min, opt, max) shapes of its optimization profile
ShapeSpec = Mapping[str, Any]
Profile = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]


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
    atomic_write(plan_path, data)
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
    atomic_write(sidecar_path, (json.dumps(sidecar, indent=2, sort_keys=True) + "\n").encode())
    return plan_path
