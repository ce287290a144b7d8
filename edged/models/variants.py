"""Which file of a model runs. With ``precision: int8`` on the CPU, the INT8 variant of the
configured FP32 model. With ``precision: auto`` (the default) on the CPU, an INT8
variant of the configured FP32 model — a manifest beside it whose ``derived_from`` is the
model's sha256 — runs where the CPU has the instructions that make ONNX Runtime's INT8
kernels fast (x86 VNNI or AMX), and on any other CPU where a speed check of both files
shows it faster (``int8_speed``: measured once, remembered); for every other precision or
backend the configured file runs as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edged.config.model import ModelConfig
from edged.models.int8_speed import Timer, check_int8_speed, time_pair
from edged.models.manifest import Manifest, ModelError, load_manifest

log = logging.getLogger(__name__)

# /proc/cpuinfo flags of the instructions ONNX Runtime's INT8 kernels speed up with
INT8_FLAGS = {
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "amx_int8": "AMX-INT8",
}

# reads the CPU's INT8 instructions, by name; a test gives its own
CpuProbe = Callable[[], list[str]]


def cpu_int8_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The INT8 instructions this CPU has (names from ``INT8_FLAGS``); none when unknown."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return []
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return [name for flag, name in INT8_FLAGS.items() if flag in flags]


@dataclass(frozen=True, slots=True)
class ModelFile:
    """The file that runs, its manifest, and why it was chosen (empty: it is the one
    configured, nothing was chosen)."""

    path: Path
    manifest: Manifest
    why: str = ""


def int8_variant(path: Path, manifest: Manifest) -> ModelFile | None:
    """An INT8 model made from this one, in its folder (its sha256 checked); None if none."""
    for candidate in sorted(path.parent.glob("*.yaml")):
        if candidate == path.with_suffix(".yaml"):
            continue
        model = candidate.with_suffix(".onnx")
        if not model.is_file():
            continue
        try:
            found = load_manifest(model, verify=False)
        except ModelError:
            continue  # not a model manifest, or another model's broken one: not a variant
        if found.precision == "int8" and found.derived_from == manifest.sha256:
            return ModelFile(model, load_manifest(model))
    return None


def choose_file(
    config: ModelConfig,
    backend: str,
    probe: CpuProbe = cpu_int8_features,
    timer: Timer = time_pair,
) -> ModelFile:
    """The file ``config`` runs on ``backend`` (``cpu``, ``cuda``, …): see the module."""
    path = Path(config.path)
    manifest = load_manifest(path)
    if config.precision not in ("auto", "int8") or backend != "cpu" or manifest.precision != "fp32":
        return ModelFile(path, manifest)
    variant = int8_variant(path, manifest)
    if config.precision == "int8":
        # asked for by name: the variant if there is one (else check_precision says how to
        # make one)
        if variant is None:
            return ModelFile(path, manifest)
        return ModelFile(variant.path, variant.manifest, f"precision int8: {variant.path.name}")
    if variant is None:
        return ModelFile(path, manifest, "precision auto: fp32, the model has no INT8 variant")
    features = probe()
    if features:
        return ModelFile(
            variant.path,
            variant.manifest,
            f"precision auto: int8 ({variant.path.name}), this CPU has {', '.join(features)} "
            "(precision: fp32 for the FP32 model)",
        )
    check = check_int8_speed(
        path, manifest.sha256, variant.path, variant.manifest.sha256, config.cache_dir, timer
    )
    if check.int8_faster:
        return ModelFile(
            variant.path,
            variant.manifest,
            f"precision auto: int8 ({variant.path.name}), this CPU has no VNNI or AMX but "
            f"runs it faster, {check.describe()} (precision: fp32 for the FP32 model)",
        )
    return ModelFile(
        path,
        manifest,
        f"precision auto: fp32, not {variant.path.name}: this CPU has no VNNI or AMX and "
        f"runs INT8 no faster, {check.describe()} (precision: int8 to run it anyway)",
    )
