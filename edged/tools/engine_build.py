"""``edged engine build``: the plan ``backend: tensorrt-native`` will use, built ahead of time
(or found in the cache), with TensorRT's progress on stderr."""

from __future__ import annotations

import sys

from edged.config.model import ModelConfig
from edged.engines.base import EngineError
from edged.engines.build_progress import BuildProgress
from edged.models.detector import prepared_model
from edged.models.manifest import ModelError, load_manifest
from edged.models.plans import plan_for
from edged.models.precision import check_precision


def build_engine(
    model: str,
    precision: str,
    max_batch: int,
    cache_dir: str | None = None,
    graph_preprocess: bool = False,
) -> int:
    """Build a plan the way ``backend: tensorrt-native`` will look for it; prints its path and
    returns the exit status (1 with the reason on stderr when it cannot)."""
    config = ModelConfig.model_validate(
        {
            "path": model,
            "backend": "tensorrt-native",
            "precision": precision,
            "max_batch": max_batch,
            "preprocess": "graph" if graph_preprocess else "cpu",
            **({"cache_dir": cache_dir} if cache_dir else {}),
        }
    )
    tty = sys.stderr.isatty()

    def progress(report: BuildProgress) -> None:
        if tty:
            print(f"\r\x1b[2K{report}", end="", file=sys.stderr, flush=True)
        elif report.event != "step":
            print(report, file=sys.stderr)

    try:
        manifest = load_manifest(config.path)
        check_precision(config, manifest, "tensorrt-native")  # refused before any preparing
        source = prepared_model(config, manifest) if graph_preprocess else config.path
        plan = plan_for(config, manifest, source, progress)
    except (EngineError, ModelError) as exc:
        print(("\n" if tty else "") + f"error: {exc}", file=sys.stderr)
        return 1
    print(("\n" if tty else "") + str(plan))
    return 0
