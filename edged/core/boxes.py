"""Box geometry on N×4 xyxy arrays: pairwise IoU and non-maximum suppression (per class with
OpenCV for detector outputs, or plain greedy for a few boxes)."""

from __future__ import annotations

import cv2
import numpy as np


def _overlaps(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """N×M intersection and union areas of N×4 and M×4 xyxy boxes, in their own precision."""
    # in place where possible: at tens of boxes the cost is the number of numpy calls
    iw = np.minimum(a[:, None, 2], b[None, :, 2])
    iw -= np.maximum(a[:, None, 0], b[None, :, 0])
    np.maximum(iw, 0, out=iw)
    ih = np.minimum(a[:, None, 3], b[None, :, 3])
    ih -= np.maximum(a[:, None, 1], b[None, :, 1])
    np.maximum(ih, 0, out=ih)
    inter = np.multiply(iw, ih, out=iw)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :]
    union -= inter
    return inter, union


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """N×M IoU between N×4 and M×4 xyxy boxes."""
    inter, union = _overlaps(np.asarray(a, np.float64), np.asarray(b, np.float64))
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms_per_class(
    xyxy: np.ndarray, score: np.ndarray, class_id: np.ndarray, iou: float, max_det: int
) -> np.ndarray:
    """Indices kept, best first; boxes of different classes never suppress each other."""
    if len(xyxy) == 0:
        return np.zeros(0, np.int64)
    xywh = xyxy.copy()
    xywh[:, 2:] -= xyxy[:, :2]
    found = cv2.dnn.NMSBoxesBatched(
        xywh.tolist(), score.tolist(), class_id.tolist(), 0.0, iou, top_k=max_det
    )
    keep = np.asarray(found, np.int64).reshape(-1)
    return keep[np.argsort(-score[keep], kind="stable")]


def nms_across_parts(
    xyxy: np.ndarray,
    score: np.ndarray,
    class_id: np.ndarray,
    part: np.ndarray,
    iou: float,
    inside: float,
) -> np.ndarray:
    """Indices kept by greedy class-aware NMS over boxes found in several parts of a picture,
    best first: a box is also dropped when it comes from another part than a kept box of its
    class and lies more than ``inside`` of its own area within it (a box cut by a part's
    edge is the same object as the whole one seen in the next part)."""
    inter, union = _overlaps(xyxy, xyxy)
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    smaller = np.minimum(area[:, None], area[None, :])
    same = class_id[:, None] == class_id[None, :]
    cut = (part[:, None] != part[None, :]) & (inter > inside * smaller)
    suppresses = same & ((inter > iou * union) | cut)
    kept: list[int] = []
    for i in np.argsort(-score, kind="stable").tolist():
        if not kept or not suppresses[i, kept].any():
            kept.append(i)
    return np.asarray(kept, np.intp)


def nms(xyxy: np.ndarray, score: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS, best first (equal scores in their order): a box is dropped
    when it overlaps a kept box by more than ``iou``, compared as intersection > iou × union
    in the boxes' own precision."""
    order = np.argsort(-score, kind="stable")
    inter, union = _overlaps(xyxy, xyxy)
    suppresses = inter > iou * union
    kept: list[int] = []
    for i in order.tolist():
        if not kept or not suppresses[i, kept].any():
            kept.append(i)
    return np.asarray(kept, np.intp)
