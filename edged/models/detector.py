"""A detector: a model's adapter bound to an engine, loaded from the model's manifest."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edged.config.model import ModelConfig
from edged.detections import Detections
from edged.engines.base import Engine, EngineError
from edged.engines.onnxruntime import OrtEngine, auto_backend
from edged.models.adapter import DetectionAdapter
from edged.models.manifest import Manifest, ModelError, load_manifest
from edged.models.nanodet import NanoDetAdapter
from edged.models.rtdetr import RtDetrAdapter
from edged.models.yolo import YoloV5Adapter, YoloV8Adapter
from edged.models.yolo_seg import YoloV8SegAdapter

ADAPTERS = {
    "nanodet": NanoDetAdapter,
    "yolov5": YoloV5Adapter,
    "yolov8": YoloV8Adapter,
    "yolov8-seg": YoloV8SegAdapter,
    "rtdetr": RtDetrAdapter,
}


class Detector:
    """Frames in, ``Detections`` in source pixels out."""

    def __init__(self, manifest: Manifest, engine: Engine, max_batch: int = 1) -> None:
        self.manifest = manifest
        if manifest.family not in ADAPTERS:
            raise ModelError(
                f"{manifest.file}: family {manifest.family} is not a detector "
                f"(detectors: {', '.join(sorted(ADAPTERS))})"
            )
        self.adapter: DetectionAdapter = ADAPTERS[manifest.family](manifest)
        self.engine = engine
        if self.adapter.input_name not in engine.input_names:
            raise ModelError(
                f"{manifest.file}: manifest input {self.adapter.input_name!r} is not among the "
                f"model's inputs {engine.input_names}"
            )
        # a model exported with a fixed batch runs that; a dynamic one takes up to max_batch
        self.max_batch = engine.max_batch or max_batch
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


def check_precision(config: ModelConfig, manifest: Manifest, backend: str) -> str:
    """The precision to run at; a combination that cannot work is refused with a hint."""
    model = manifest.precision
    wanted = config.precision or model
    if wanted == model:
        return wanted
    if backend in ("tensorrt", "tensorrt-native") and model == "fp32" and wanted == "fp16":
        return wanted  # TensorRT builds FP16 kernels from an FP32 model
    hint = {
        "int8": "make an INT8 model with `edged calibrate` and point path at it",
        "fp16": "make an FP16 model with `edged convert --fp16` and point path at it",
        "fp32": "point path at the FP32 model",
    }[wanted]
    raise EngineError(
        f"{config.path.name} is {model}; precision {wanted} on backend {backend} needs "
        f"a {wanted} model: {hint}"
    )


def open_engine(config: ModelConfig, manifest: Manifest) -> Engine:
    backend = auto_backend() if config.backend == "auto" else config.backend
    precision = check_precision(config, manifest, backend)
    return OrtEngine(
        Path(config.path),
        backend=config.backend,
        threads=config.threads,
        precision=precision,
        cache_dir=config.cache_dir,
    )


def load_detector(config: ModelConfig) -> Detector:
    manifest = load_manifest(Path(config.path))
    return Detector(manifest, open_engine(config, manifest), config.max_batch)
