"""Semantic person segmentation: a per-frame person probability mask (MediaPipe selfie)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edged.config.base import StrictModel
from edged.config.model import ModelConfig
from edged.core.masks import PersonMask
from edged.engines.base import Engine
from edged.models.manifest import Manifest, ModelError, decode_spec, load_manifest
from edged.models.preprocess import ImagePreprocessor

SEMANTIC_FAMILIES = {"selfie"}


class SemanticDecode(StrictModel):
    output: str


class Segmenter:
    def __init__(self, manifest: Manifest, engine: Engine) -> None:
        if manifest.family not in SEMANTIC_FAMILIES:
            raise ModelError(f"{manifest.file}: family {manifest.family} is not a segmenter")
        if manifest.input.resize != "stretch":
            raise ModelError(f"{manifest.file}: a segmenter's input must be stretched")
        self.manifest = manifest
        self.engine = engine
        self.output = decode_spec(manifest, SemanticDecode).output
        self.preprocess = ImagePreprocessor(manifest.input)
        self._batch = np.empty((1, *self.preprocess.shape()), np.float32)

    def segment(self, image: np.ndarray) -> PersonMask:
        geometry = self.preprocess(image, self._batch[0])
        out = self.engine.run({self.manifest.input.name: self._batch})[self.output]
        prob = np.ascontiguousarray(out[0].reshape(out.shape[1], out.shape[2]))
        return PersonMask(prob, geometry)


def load_segmenter(config: ModelConfig) -> Segmenter:
    from edged.models.detector import open_engine

    manifest = load_manifest(Path(config.path))
    return Segmenter(manifest, open_engine(config, manifest))
