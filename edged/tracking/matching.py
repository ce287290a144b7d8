"""IoU similarity and thresholded optimal assignment."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

# Cost of a forbidden pair: large enough that the solver first maximises the number of
# allowed pairs, small enough to keep float64 sums exact to well below the IoU scale.
_FORBIDDEN_COST = 1e6


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


def assign(similarity: np.ndarray, min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-similarity one-to-one assignment of rows to columns.

    Pairs with similarity below ``min_similarity`` are never returned. Returns the matched
    row indices and column indices (equal length, pair i is ``(rows[i], cols[i])``).
    """
    allowed = similarity >= min_similarity
    rows, cols = np.nonzero(allowed)
    if len(rows) == 0:
        empty = np.zeros(0, np.intp)
        return empty, empty
    if np.bincount(rows).max() == 1 and np.bincount(cols).max() == 1:
        # No row or column has a choice: every allowed pair is in the optimum.
        return rows.astype(np.intp), cols.astype(np.intp)
    cost = np.where(allowed, 1.0 - similarity, _FORBIDDEN_COST)
    rows, cols = linear_sum_assignment(cost)
    keep = allowed[rows, cols]
    return rows[keep], cols[keep]
