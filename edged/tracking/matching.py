"""Thresholded optimal assignment of tracks to detections."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

# Cost of a forbidden pair: large enough that the solver first maximises the number of
# allowed pairs, small enough to keep float64 sums exact to well below the IoU scale.
_FORBIDDEN_COST = 1e6


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
