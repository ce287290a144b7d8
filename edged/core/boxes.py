"""Box geometry on N×4 xyxy arrays: pairwise IoU and non-maximum suppression."""

from __future__ import annotations

import cv2
import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """N×M IoU between N×4 and M×4 xyxy boxes."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    # in place where possible: at tens of boxes the cost is the number of numpy calls
    iw = np.minimum(a[:, None, 2], b[None, :, 2])
    iw -= np.maximum(a[:, None, 0], b[None, :, 0])
    np.maximum(iw, 0.0, out=iw)
    ih = np.minimum(a[:, None, 3], b[None, :, 3])
    ih -= np.maximum(a[:, None, 1], b[None, :, 1])
    np.maximum(ih, 0.0, out=ih)
    inter = np.multiply(iw, ih, out=iw)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :]
    union -= inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


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
