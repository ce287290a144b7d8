"""Whether a model's INT8 variant runs faster than its FP32 file on this CPU, where the CPU's
flags do not settle it (no VNNI or AMX: AVX2-only x86, ARM). Measured once — both files,
batch 1, one thread (how an INT8 model runs on the CPU: one run per thread), interleaved
runs so that a busy neighbour slows both alike — and remembered per model pair, CPU and
ONNX Runtime version in ``<cache_dir>/int8-speed.json``, so later starts cost nothing.

Measured here (2 vCPU AMD EPYC, AVX2 only, ONNX Runtime 1.32, ``benchmarks.precision``): the
shipped NanoDet INT8 at 1.4–2.5× FP32's speed over runs; without the check that CPU ran FP32.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from edged.engines.onnxruntime import OrtEngine

log = logging.getLogger(__name__)

CACHE_FILE = "int8-speed.json"
RUNS = 7  # timed runs of each file, after one warm-up run
FASTER = 0.8  # INT8 is chosen when it takes at most this share of FP32's time

# times the FP32 and the INT8 file (ms per run); a test gives its own
Timer = Callable[[Path, Path], tuple[float, float]]


@dataclass(frozen=True, slots=True)
class SpeedCheck:
    fp32_ms: float
    int8_ms: float
    remembered: Path | None  # the cache file the result came from; None: measured now

    @property
    def int8_faster(self) -> bool:
        return self.int8_ms <= FASTER * self.fp32_ms

    def describe(self) -> str:
        where = f", remembered in {self.remembered}" if self.remembered else ""
        return (
            f"measured on this CPU: {self.int8_ms:.1f} ms per frame against "
            f"{self.fp32_ms:.1f} ms for FP32 on one thread{where}"
        )


def time_pair(fp32: Path, int8: Path, runs: int = RUNS) -> tuple[float, float]:
    """Median milliseconds of one batch-1 run of each file, one thread, runs interleaved."""
    engines = [OrtEngine(p, backend="cpu", threads=1) for p in (fp32, int8)]
    feeds = [_feeds(e) for e in engines]
    for engine, feed in zip(engines, feeds, strict=True):
        engine.run(feed)
    times: list[list[float]] = [[], []]
    for _ in range(runs):
        for k, (engine, feed) in enumerate(zip(engines, feeds, strict=True)):
            t0 = time.perf_counter()
            engine.run(feed)
            times[k].append(1000 * (time.perf_counter() - t0))
    return statistics.median(times[0]), statistics.median(times[1])


def _feeds(engine: OrtEngine) -> dict[str, np.ndarray]:
    """A normal-noise batch of one for each input (symbolic dimensions as 1)."""
    rng = np.random.default_rng(0)
    feeds = {}
    for i in engine.session.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
        feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


def machine_key() -> str:
    """This CPU (model name and flags) and ONNX Runtime build, as a short digest."""
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "flags", "Features", "CPU part"):
                cpu += "|" + value.strip()
                if key.strip() == "flags":
                    break
    except OSError:
        cpu += "|" + platform.processor()
    digest = hashlib.sha256(cpu.encode()).hexdigest()[:16]
    return f"{digest}:onnxruntime-{ort.__version__}"


def check_int8_speed(
    fp32: Path,
    fp32_sha: str,
    int8: Path,
    int8_sha: str,
    cache_dir: Path,
    timer: Timer = time_pair,
) -> SpeedCheck:
    """The remembered result for this pair on this machine, else a measurement, remembered
    (a cache that cannot be written is logged; the measurement still decides)."""
    path = cache_dir / CACHE_FILE
    key = f"{fp32_sha}:{int8_sha}:{machine_key()}"
    known = _read(path)
    if key in known:
        entry = known[key]
        return SpeedCheck(float(entry["fp32_ms"]), float(entry["int8_ms"]), path)
    fp32_ms, int8_ms = timer(fp32, int8)
    known[key] = {"fp32_ms": round(fp32_ms, 3), "int8_ms": round(int8_ms, 3), "model": fp32.name}
    try:
        _write(path, known)
    except OSError as exc:
        log.warning("%s: cannot remember the INT8 speed check in %s: %s", fp32.name, path, exc)
    return SpeedCheck(fp32_ms, int8_ms, None)


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable, the INT8 speed check runs again: %s", path, exc)
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a daemon and ``edged check`` starting together never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
