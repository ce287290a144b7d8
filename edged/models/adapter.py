"""What every model family's adapter offers the detector."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from edged.detections import Detections
from edged.models.preprocess import Geometry


class DetectionAdapter(Protocol):
    """Preprocess one frame into one item of the input batch; read one item's detections
    out of the engine's named outputs, in source pixels."""

    labels: list[str]
    input_name: str

    @property
    def input_shape(self) -> tuple[int, ...]: ...

    def preprocess(self, image: np.ndarray, out: np.ndarray) -> Geometry: ...

    def postprocess(
        self,
        outputs: dict[str, np.ndarray],
        item: int,
        geometry: Geometry,
        min_score: float,
        nms_iou: float,
    ) -> Detections: ...
