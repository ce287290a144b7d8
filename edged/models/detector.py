"""A detector: a model's adapter bound to an engine, loaded from the model's manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edged.config.model import ModelConfig
from edged.detections import Detections
from edged.engines.onnxruntime import OrtEngine
from edged.models.manifest import Manifest, ModelError, load_manifest
from edged.models.nanodet import NanoDetAdapter

ADAPTERS = {"nanodet": NanoDetAdapter}


class Detector:
    """Frames in, ``Detections`` in source pixels out."""

    def __init__(self, manifest: Manifest, engine: OrtEngine) -> None:
        self.manifest = manifest
        self.adapter = ADAPTERS[manifest.family](manifest)
        self.engine = engine
        if self.adapter.input_name not in engine.input_names:
            raise ModelError(
                f"{manifest.file}: manifest input {self.adapter.input_name!r} is not among the "
                f"model's inputs {engine.input_names}"
            )
        self.max_batch = engine.max_batch or 8
        self._batch = np.empty((self.max_batch, *self.adapter.input_shape), np.float32)

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels

    def detect(
        self, images: list[np.ndarray], min_score: list[float], nms_iou: list[float]
    ) -> list[Detections]:
        """Detections for each image, with each image's own thresholds."""
        results: list[Detections] = []
        for start in range(0, len(images), self.max_batch):
            chunk = images[start : start + self.max_batch]
            geometry = [
                self.adapter.preprocess(image, self._batch[i]) for i, image in enumerate(chunk)
            ]
            outputs = self.engine.run({self.adapter.input_name: self._batch[: len(chunk)]})
            for i, geo in enumerate(geometry):
                k = start + i
                results.append(self.adapter.postprocess(outputs, i, geo, min_score[k], nms_iou[k]))
        return results


def load_detector(config: ModelConfig) -> Detector:
    manifest = load_manifest(Path(config.path))
    engine = OrtEngine(Path(config.path), backend=config.backend, threads=config.threads)
    return Detector(manifest, engine)
