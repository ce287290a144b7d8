"""A person probability mask at a segmenter's resolution."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edged.core.placement import Geometry


@dataclass(frozen=True, slots=True)
class PersonMask:
    """Person probability at the model's resolution, and how the frame was placed there.
    Kept small: zone ratios are computed at this resolution; ``to_source`` is for when full
    resolution is needed (privacy masking)."""

    prob: np.ndarray
    geometry: Geometry

    def covered(self, threshold: float) -> np.ndarray:
        return self.prob >= threshold

    def to_source(self, threshold: float) -> np.ndarray:
        """An H×W bool mask in source pixels (stretch placement)."""
        w, h = self.geometry.source_size
        return cv2.resize(self.prob, (w, h), interpolation=cv2.INTER_LINEAR) >= threshold
