"""How a source picture sits in a model's input, and boxes mapped back to source pixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Geometry:
    """How a source picture was placed in the model input: ``input = source · scale + pad``."""

    source_size: tuple[int, int]
    scale: tuple[float, float]
    pad: tuple[float, float]

    def to_source(self, xyxy: np.ndarray) -> np.ndarray:
        """Boxes (N×4, model-input pixels) in source pixels, clipped to the picture."""
        sx, sy = self.scale
        px, py = self.pad
        w, h = self.source_size
        out = (xyxy - np.array([px, py, px, py], np.float32)) / np.array(
            [sx, sy, sx, sy], np.float32
        )
        np.clip(out, 0.0, np.array([w, h, w, h], np.float32), out=out)
        return out.astype(np.float32, copy=False)
