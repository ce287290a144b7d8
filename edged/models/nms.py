"""Class-aware non-maximum suppression."""

from __future__ import annotations

import cv2
import numpy as np


def nms_per_class(
    xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray, iou: float, max_det: int
) -> np.ndarray:
    """Indices kept, best first; boxes of different classes never suppress each other."""
    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    xywh = xyxy.copy()
    xywh[:, 2:] -= xyxy[:, :2]
    keep = cv2.dnn.NMSBoxesBatched(
        xywh.tolist(), score.tolist(), class_id.tolist(), 0.0, iou, top_k=max_det
    )
    keep = np.asarray(keep, np.int64).reshape(-1)
    return keep[np.argsort(-score[keep], kind="stable")]
