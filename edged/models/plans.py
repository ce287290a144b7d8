"""Which TensorRT plan a model runs with. One convention, for the daemon
(``backend: tensorrt-native``) and ``edged engine build`` alike::

    <cache_dir>/plans/<model>/<key>.plan    <model>: the manifest's file name without .onnx
    <cache_dir>/plans/timing.cache          TensorRT's timing cache of this machine

so a plan built ahead of time is the one the daemon finds.
"""

from __future__ import annotations

from pathlib import Path

from edged.config.model import ModelConfig
from edged.engines.build_progress import ProgressCallback
from edged.engines.plan_build import ensure_plan
from edged.models.graph_preprocess import PREFIX
from edged.models.manifest import Manifest
from edged.models.precision import check_precision

PLANS = "plans"
TIMING_CACHE = "timing.cache"


def plan_for(
    config: ModelConfig,
    manifest: Manifest,
    onnx_path: Path,
    progress: ProgressCallback | None = None,
) -> Path:
    """The plan ``config`` runs ``onnx_path`` (its model file, or the model's prepared graph)
    with: the cached one when it fits this machine, else one built now. A prepared graph's
    preprocessing stays FP32 where the build converts the model to FP16."""
    precision = check_precision(config, manifest, "tensorrt-native")
    plans = config.cache_dir / PLANS
    return ensure_plan(
        onnx_path,
        precision,
        config.max_batch,
        plans,
        plans / TIMING_CACHE,
        progress,
        model_name=Path(manifest.file).stem,
        fp32_prefix=PREFIX,
    )
