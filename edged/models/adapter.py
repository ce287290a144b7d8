"""What every model family's adapter offers the detector."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edged.core.detections import Detections
from edged.core.placement import Geometry
from edged.models.manifest import Manifest
from edged.models.preprocess import ImagePreprocessor, Resize


class DetectionAdapter(Protocol):
    """Preprocess one frame into one item of the input batch; read one item's detections
    out of the engine's named outputs, in source pixels."""

    labels: list[str]
    input_name: str

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    def preprocess(
        self, image: np.ndarray, out: np.ndarray, resize: Resize | None = None
    ) -> Geometry: ...

    def postprocess(
        self,
        outputs: dict[str, np.ndarray],
        item: int,
        geometry: Geometry,
        min_score: float,
        nms_iou: float,
        classes: np.ndarray | None = None,
    ) -> Detections:
        """Detections of batch item ``item`` scoring at least ``min_score``, in the pixels of
        the source picture; only of ``classes`` (sorted class ids; None: every class), which
        gives what filtering afterwards would, for less work."""
        ...


class AdapterBase:
    """What every family's adapter shares: labels, input name and the preprocessor the
    manifest describes."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.labels = manifest.labels
        self.input_name = manifest.input.name
        self.preprocess = ImagePreprocessor(manifest.input)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.preprocess.shape()
