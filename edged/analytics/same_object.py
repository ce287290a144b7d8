"""One object the detector gives several labels by turns (a car that is a truck in some
frames): its overlapping boxes of those labels become one before tracking, so that it is
one track, counted once, rather than a car track and a truck track side by side."""

from __future__ import annotations

import numpy as np

from edged.config.class_groups import DEFAULT_GROUPS
from edged.core.boxes import nms_per_class
from edged.core.detections import Detections, class_ids


def same_object_map(labels: list[str], groups: list[list[str]] | None) -> np.ndarray | None:
    """Per class id, the id it is suppressed as: its own, or one shared by its group. None:
    no group has two labels the model knows. ``groups`` None: the shipped vehicle group, of
    the labels this model has; explicit groups must name labels it has (ValueError)."""
    if groups is None:
        known = [name for name in DEFAULT_GROUPS["vehicle"] if name in labels]
        groups = [known]
    mapping = np.arange(len(labels), dtype=np.int64)
    merged = False
    for k, group in enumerate(groups):
        ids = class_ids(labels, group)
        if ids is not None and len(set(ids.tolist())) > 1:
            mapping[ids] = len(labels) + k
            merged = True
    return mapping if merged else None


def merge_same_object(detections: Detections, mapping: np.ndarray | None, iou: float) -> Detections:
    """``detections`` with the worse of two boxes of one group overlapping by more than
    ``iou`` dropped (best first, as non-maximum suppression over the group)."""
    if mapping is None or len(detections) < 2:
        return detections
    grouped = mapping[detections.class_id]
    if np.array_equal(grouped, detections.class_id):
        return detections
    keep = nms_per_class(detections.xyxy, detections.score, grouped, iou, len(detections))
    if len(keep) == len(detections):
        return detections
    return detections[np.sort(keep)]
