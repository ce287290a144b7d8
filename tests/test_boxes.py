"""Greedy NMS (edged.core.boxes.nms): what the shelf's product count merges, and the same
boxes kept as by the shelf's own loop it replaced, down to overlaps at the threshold."""

from __future__ import annotations

import numpy as np

from edged.core.boxes import merge_across_parts, nms


def test_nms_merges_one_item_seen_as_two_classes() -> None:
    xyxy = np.array([[0, 0, 10, 30], [1, 0, 11, 31], [20, 0, 30, 30]], np.float32)
    score = np.array([0.4, 0.5, 0.45], np.float32)
    assert nms(xyxy, score, 0.5).tolist() == [1, 2]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).tolist() == []


def test_nms_keeps_a_box_overlapping_exactly_the_threshold_and_ties_in_order() -> None:
    xyxy = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 10]], np.float32)
    score = np.array([0.5, 0.5, 0.5], np.float32)
    # IoU of the first two is 1/3: kept at 1/3, dropped below; the third repeats the first
    assert nms(xyxy, score, 1 / 3).tolist() == [0, 1]
    assert nms(xyxy, score, 0.3).tolist() == [0]


def greedy_by_hand(xyxy: np.ndarray, score: np.ndarray, iou: float) -> np.ndarray:
    """The shelf's loop before it used ``nms``."""
    order = np.argsort(-score, kind="stable")
    kept: list[int] = []
    for i in order.tolist():
        b = xyxy[i]
        if kept:
            k = xyxy[kept]
            iw = np.clip(np.minimum(k[:, 2], b[2]) - np.maximum(k[:, 0], b[0]), 0, None)
            ih = np.clip(np.minimum(k[:, 3], b[3]) - np.maximum(k[:, 1], b[1]), 0, None)
            inter = iw * ih
            union = (k[:, 2] - k[:, 0]) * (k[:, 3] - k[:, 1]) + (b[2] - b[0]) * (b[3] - b[1])
            if np.any(inter > iou * (union - inter)):
                continue
        kept.append(i)
    return np.asarray(kept, np.intp)


def test_nms_keeps_what_the_shelf_kept() -> None:
    rng = np.random.default_rng(3)
    for _ in range(2000):
        n = int(rng.integers(1, 12))
        xy = rng.uniform(0, 200, (n, 2))
        wh = rng.uniform(0, 60, (n, 2))  # zero-area boxes too, now and then
        wh[rng.random(n) < 0.05] = 0.0
        xyxy = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
        score = np.round(rng.uniform(0.2, 1.0, n), 1).astype(np.float32)  # with ties
        iou = float(rng.choice([0.3, 0.5, 0.7]))
        assert nms(xyxy, score, iou).tolist() == greedy_by_hand(xyxy, score, iou).tolist()


def test_nms_decides_overlaps_at_the_threshold_as_the_shelf_did() -> None:
    """Whole-pixel boxes often overlap by exactly 0.3 or 0.7, which float32 can't hold: the
    comparison is the same one, in the same precision."""
    rng = np.random.default_rng(4)
    for _ in range(2000):
        n = int(rng.integers(2, 8))
        xy = rng.integers(0, 12, (n, 2))
        xyxy = np.concatenate([xy, xy + rng.integers(1, 11, (n, 2))], axis=1).astype(np.float32)
        score = rng.integers(1, 4, n).astype(np.float32) / 4
        for iou in (0.3, 0.5, 0.7):
            assert nms(xyxy, score, iou).tolist() == greedy_by_hand(xyxy, score, iou).tolist()


def test_a_vehicle_cut_by_the_seam_of_two_tiles_becomes_whole_again() -> None:
    """Tiles (0–368) and (272–640): a car at x 250–410 is cut in both; the halves (mostly
    inside each other's overlap) are one box spanning both. A whole view wins over a cut one
    of higher score, and a car elsewhere stays."""
    xyxy = np.array(
        [
            [250, 200, 368, 260],  # left tile: cut at its right edge
            [272, 200, 410, 262],  # right tile: cut at its left edge
            [500, 100, 600, 150],  # another car, right tile
        ],
        np.float32,
    )
    score = np.array([0.6, 0.5, 0.4], np.float32)
    car = np.zeros(3, np.int32)
    part = np.array([0, 1, 1])
    at_seam = np.array([True, True, False])
    keep, boxes = merge_across_parts(xyxy, score, car, part, at_seam, 0.5, 0.6)
    assert keep.tolist() == [2, 0]  # the whole view first, then the best cut one
    np.testing.assert_array_equal(boxes[1], [250, 200, 410, 262])
    np.testing.assert_array_equal(boxes[0], xyxy[2])
    # the same halves seen whole in one tile: the whole box is kept as it is
    whole = np.array([[252, 199, 409, 261], [272, 200, 410, 262]], np.float32)
    keep, boxes = merge_across_parts(
        whole,
        np.array([0.4, 0.7], np.float32),
        car[:2],
        np.array([0, 1]),
        np.array([False, True]),
        0.5,
        0.6,
    )
    assert keep.tolist() == [0]
    np.testing.assert_array_equal(boxes[0], whole[0])
