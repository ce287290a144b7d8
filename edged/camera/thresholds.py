"""The least score a camera keeps, per class: its ``detect.min_score`` for every class when
set, else the model's measured floor per label (``min_scores`` in its manifest: NanoDet
scores vehicles lower than people), with ``detect.min_scores`` over either."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from edged.config.camera import DEFAULT_MIN_SCORE, DetectConfig
from edged.core.detections import unknown_classes


def class_floors(
    labels: list[str], detect: DetectConfig, model_floors: Mapping[str, float]
) -> np.ndarray:
    """float32 per class id; ValueError for a ``detect.min_scores`` label the model lacks."""
    everywhere = DEFAULT_MIN_SCORE if detect.min_score is None else detect.min_score
    floors = np.full(len(labels), everywhere, np.float32)
    if detect.min_score is None:
        for label, floor in model_floors.items():
            floors[labels.index(label)] = floor
    unknown = sorted(set(detect.min_scores) - set(labels))
    if unknown:
        raise ValueError(unknown_classes(unknown, labels))
    for label, floor in detect.min_scores.items():
        floors[labels.index(label)] = floor
    return floors
