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


def merge_across_parts(
    xyxy: np.ndarray,
    score: np.ndarray,
    class_id: np.ndarray,
    part: np.ndarray,
    at_seam: np.ndarray,
    iou: float,
    inside: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy class-aware NMS over boxes found in several parts of a picture: the indices
    kept, best first, and their boxes grown over the boxes they absorbed. A box is also
    dropped when it comes from another part than a kept box of its class and lies more than
    ``inside`` of its own area within it (a box cut by a part's edge is the same object seen
    in the next part). Boxes ``at_seam`` (touching an edge between parts) come after the
    others of any score, so a whole view of an object wins over a cut one; a kept box that
    is itself cut takes in the extent of a cut box it absorbs, so an object wider than the
    parts' overlap, cut in both, becomes whole again."""
    inter, union = _overlaps(xyxy, xyxy)
    area = (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])
    smaller = np.minimum(area[:, None], area[None, :])
    same = class_id[:, None] == class_id[None, :]
    cut = same & (part[:, None] != part[None, :]) & (inter > inside * smaller)
    suppresses = (same & (inter > iou * union)) | cut
    kept: list[int] = []
    grown = xyxy.copy()
    for i in np.lexsort((-score, at_seam)).tolist():
        by = [k for k in kept if suppresses[i, k]]
        if not by:
            kept.append(i)
            continue
        for k in by:
            if cut[i, k] and at_seam[i] and at_seam[k]:
                grown[k, :2] = np.minimum(grown[k, :2], xyxy[i, :2])
                grown[k, 2:] = np.maximum(grown[k, 2:], xyxy[i, 2:])
    idx = np.asarray(kept, np.intp)
    return idx, grown[idx]


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
