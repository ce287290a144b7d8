"""ByteTracker: identity across motion, occlusion, score stages and classes; batched Kalman."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import cho_factor, cho_solve

from edged.config.camera import TrackerConfig
from edged.core.boxes import iou_matrix
from edged.core.detections import Detections
from edged.tracking import Association, ByteTracker, kalman
from edged.tracking.matching import assign


def dets(
    boxes: list[list[float]], scores: list[float] | None = None, classes: list[int] | None = None
) -> Detections:
    n = len(boxes)
    return Detections(
        xyxy=np.asarray(boxes, np.float32).reshape(n, 4),
        score=np.asarray(scores if scores is not None else [0.9] * n, np.float32),
        class_id=np.asarray(classes if classes is not None else [0] * n, np.int32),
    )


def box(x: float, y: float, w: float = 40.0, h: float = 80.0) -> list[float]:
    return [x, y, x + w, y + h]


def test_constant_velocity_keeps_one_id_and_waits_for_min_hits() -> None:
    tracker = ByteTracker()
    for i in range(30):
        frame = dets([box(100 + 6 * i, 50 + 2 * i)])
        out = tracker.update(frame, ts=i / 30)
        if i == 0:
            assert len(out) == 0
            continue
        assert out.track_id is not None and out.track_id.dtype == np.int64
        assert out.track_id.tolist() == [1]
        np.testing.assert_array_equal(out.xyxy, frame.xyxy)
        assert tracker.ended == []


def test_min_hits_one_reports_first_frame() -> None:
    tracker = ByteTracker(TrackerConfig(min_hits=1))
    assert tracker.update(dets([box(0, 0)]), ts=0.0).track_id.tolist() == [1]


def test_crossing_objects_keep_their_ids() -> None:
    tracker = ByteTracker()
    ids_right, ids_left = set(), set()
    overlapping = 0
    for i in range(40):
        a, b = box(10 * i, 100), box(390 - 10 * i, 110)
        overlapping += iou_matrix(np.array([a]), np.array([b]))[0, 0] > 0
        # Alternate the detection order so that ids can't follow list positions.
        frame = dets([a, b] if i % 2 else [b, a])
        out = tracker.update(frame, ts=i * 0.04)
        for xyxy, tid in zip(out.xyxy, out.track_id, strict=False):
            moving_right = xyxy[1] == 100
            (ids_right if moving_right else ids_left).add(int(tid))
    assert overlapping >= 4
    assert len(ids_right) == 1 and len(ids_left) == 1
    assert ids_right != ids_left


def test_short_gap_with_irregular_timestamps_restores_id() -> None:
    tracker = ByteTracker(TrackerConfig(lost_track_buffer_s=1.0))
    obj = dets([box(200, 200)])
    for ts in (0.0, 0.03, 0.08, 0.1):
        out = tracker.update(obj, ts)
    assert out.track_id.tolist() == [1]
    for ts in (0.17, 0.35, 0.36, 0.7, 1.05):  # 0.95 s unseen
        assert len(tracker.update(Detections.empty(), ts)) == 0
        assert tracker.ended == []
    assert tracker.update(obj, 1.09).track_id.tolist() == [1]


def test_long_gap_ends_track_and_reappearance_gets_new_id() -> None:
    tracker = ByteTracker(TrackerConfig(lost_track_buffer_s=1.0))
    obj = dets([box(200, 200)])
    for ts in (0.0, 0.05):
        tracker.update(obj, ts)
    for ts in (0.3, 0.31, 0.9, 1.0):
        tracker.update(Detections.empty(), ts)
        assert tracker.ended == []
    tracker.update(Detections.empty(), 1.07)
    assert tracker.ended == [1]
    tracker.update(Detections.empty(), 1.1)
    assert tracker.ended == []
    assert len(tracker.update(obj, 1.2)) == 0
    assert tracker.update(obj, 1.23).track_id.tolist() == [2]


def test_frames_stalled_past_buffer_end_track_before_matching() -> None:
    tracker = ByteTracker(TrackerConfig(lost_track_buffer_s=1.0))
    obj = dets([box(200, 200)])
    for ts in (0.0, 0.05):
        tracker.update(obj, ts)
    tracker.update(Detections.empty(), 0.1)
    out = tracker.update(obj, 1.5)
    assert tracker.ended == [1]
    assert len(out) == 0
    assert tracker.update(obj, 1.55).track_id.tolist() == [2]


def test_low_score_detection_keeps_track_alive_but_never_starts_one() -> None:
    tracker = ByteTracker()
    for i in range(3):
        tracker.update(dets([box(100 + 2 * i, 100)]), ts=i * 0.1)
    for i in range(3, 40):  # 3.7 s of low scores, far past the lost buffer
        out = tracker.update(dets([box(100 + 2 * i, 100)], [0.3]), ts=i * 0.1)
        assert out.track_id.tolist() == [1]
        assert out.score.tolist() == pytest.approx([0.3])
        assert tracker.ended == []

    # Even with new_track_thresh below high_thresh, only high detections start tracks.
    fresh = ByteTracker(TrackerConfig(new_track_thresh=0.2))
    for i in range(10):
        assert len(fresh.update(dets([box(300, 300)], [0.45]), ts=i * 0.1)) == 0
    # A high detection at the same spot is new, so it still needs min_hits frames.
    assert len(fresh.update(dets([box(300, 300)]), ts=1.0)) == 0
    assert fresh.update(dets([box(300, 300)]), ts=1.1).track_id.tolist() == [1]


def test_low_score_below_low_thresh_or_on_lost_track_is_ignored() -> None:
    tracker = ByteTracker()
    for i in range(3):
        tracker.update(dets([box(100, 100)]), ts=i * 0.1)
    assert len(tracker.update(dets([box(100, 100)], [0.05]), ts=0.3)) == 0
    # The track is lost now; stage 2 only considers tracks that are still tracked.
    assert len(tracker.update(dets([box(100, 100)], [0.3]), ts=0.4)) == 0
    assert tracker.update(dets([box(100, 100)]), ts=0.5).track_id.tolist() == [1]


def test_high_detection_below_new_track_thresh_continues_but_does_not_start() -> None:
    tracker = ByteTracker()
    for i in range(5):
        assert len(tracker.update(dets([box(100, 100)], [0.55]), ts=i * 0.1)) == 0
    tracker.update(dets([box(300, 100)]), ts=0.5)
    out = tracker.update(dets([box(300, 100)], [0.55]), ts=0.6)
    assert out.track_id.tolist() == [1]


def test_tentative_track_dies_after_one_missed_frame() -> None:
    tracker = ByteTracker()
    tracker.update(dets([box(100, 100)]), ts=0.0)
    tracker.update(Detections.empty(), ts=0.1)
    assert len(tracker.update(dets([box(100, 100)]), ts=0.2)) == 0
    assert tracker.update(dets([box(100, 100)]), ts=0.3).track_id.tolist() == [1]


@pytest.mark.parametrize("fuse_score", [True, False])
def test_fuse_score_prefers_confident_detection(fuse_score: bool) -> None:
    tracker = ByteTracker(TrackerConfig(), Association(fuse_score=fuse_score))
    for i in range(3):
        tracker.update(dets([box(100, 100)]), ts=i * 0.1)
    # IoU with the track: 0.50 for the confident one, 0.55 for the weak one.
    confident, weak = box(100 + 40 / 3, 100), box(100 - 18 / 1.55, 100)
    out = tracker.update(dets([confident, weak], [0.95, 0.55]), ts=0.3)
    assert out.track_id.tolist() == [1]
    assert out.score.tolist() == pytest.approx([0.95 if fuse_score else 0.55])


@pytest.mark.parametrize("class_aware", [True, False])
def test_class_aware_matching(class_aware: bool) -> None:
    tracker = ByteTracker(TrackerConfig(class_aware=class_aware))
    for i in range(3):
        tracker.update(dets([box(100, 100)], classes=[0]), ts=i * 0.1)
    out = tracker.update(dets([box(100, 100)], classes=[1]), ts=0.3)
    if class_aware:
        assert len(out) == 0
        out = tracker.update(dets([box(100, 100)], classes=[1]), ts=0.4)
        assert out.track_id.tolist() == [2]
        assert out.class_id.tolist() == [1]
    else:
        # one track whatever the class; it keeps its label until the new class leads it
        # by LABEL_LEAD in summed score: 3 frames of class 0, then 5 of class 1 (4.5 needed)
        assert out.track_id.tolist() == [1]
        assert out.class_id.tolist() == [0]
        labels = [
            tracker.update(dets([box(100, 100)], classes=[1]), ts=0.4 + i * 0.1).class_id[0]
            for i in range(4)
        ]
        assert labels == [0, 0, 0, 1]


def test_a_label_wavering_between_two_classes_changes_once() -> None:
    """Raw labels car, truck, car, truck… with car a little more often and more sure: the
    track's label is car from the first frame and never flips; then the detector turns to
    truck for good, and the label follows once."""
    tracker = ByteTracker(TrackerConfig())
    car, truck = 2, 7
    raw = [car, truck, car, car, truck, car, truck, car] * 3 + [truck] * 30
    scores = [0.7 if c == car else 0.6 for c in raw]
    labels = []
    for i, (c, sc) in enumerate(zip(raw, scores, strict=True)):
        out = tracker.update(dets([box(100 + 2 * i, 100)], [sc], classes=[c]), ts=i * 0.1)
        labels += out.class_id.tolist()
    changes = [k for k in range(1, len(labels)) if labels[k] != labels[k - 1]]
    assert labels[0] == car and len(changes) == 1, labels
    assert labels[-1] == truck


def test_class_aware_picks_same_class_among_overlapping() -> None:
    tracker = ByteTracker(TrackerConfig(class_aware=True))
    tracker.update(dets([box(100, 100)], classes=[2]), ts=0.0)
    tracker.update(dets([box(100, 100)], classes=[2]), ts=0.1)
    out = tracker.update(dets([box(100, 100), box(100, 100)], classes=[3, 2]), ts=0.2)
    assert out.track_id.tolist() == [1]
    assert out.class_id.tolist() == [2]


def test_vanishing_tentative_tracks_do_not_consume_ids() -> None:
    tracker = ByteTracker()
    seen: list[int] = []
    for i in range(12):
        boxes = [box(50, 50)]
        if i >= 4:
            boxes.append(box(300, 50))
        if i >= 8:
            boxes.append(box(550, 50))
        # A one-frame blip at a new place every frame: tentative, never confirmed.
        boxes.append(box(50 + 60 * i, 400))
        out = tracker.update(dets(boxes), ts=i * 0.05)
        seen.extend(int(t) for t in out.track_id)
    assert sorted(set(seen)) == [1, 2, 3]
    assert tracker.ended == []


def test_ids_are_not_reused_after_reset() -> None:
    tracker = ByteTracker()
    for ts in (0.0, 0.1):
        tracker.update(dets([box(0, 0)]), ts)
    tracker.reset()
    assert tracker.ended == []
    for ts in (0.2, 0.3):
        out = tracker.update(dets([box(0, 0)]), ts)
    assert out.track_id.tolist() == [2]


def test_empty_inputs() -> None:
    tracker = ByteTracker()
    out = tracker.update(Detections.empty(), 0.0)
    assert len(out) == 0 and out.track_id is not None and out.track_id.dtype == np.int64
    tracker.update(dets([box(0, 0)]), 0.1)
    assert len(tracker.update(Detections.empty(), 0.2)) == 0
    assert iou_matrix(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    rows, cols = assign(np.zeros((2, 0)), 0.5)
    assert len(rows) == len(cols) == 0


def test_iou_and_assignment() -> None:
    a = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], float)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [100, 100, 110, 110]], float)
    np.testing.assert_allclose(iou_matrix(a, b), [[1 / 3, 1, 0], [0, 0, 0]])
    rows, cols = assign(iou_matrix(a, b), 0.2)
    assert rows.tolist() == [0] and cols.tolist() == [1]


# Reference: ByteTrack's per-track KalmanFilter, written out one track at a time.
def ref_predict(
    mean: np.ndarray, cov: np.ndarray, dt: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    f = np.eye(8)
    for i in range(4):
        f[i, 4 + i] = dt
    h = mean[3]
    std = [h / 20, h / 20, 1e-2, h / 20, h / 160, h / 160, 1e-5, h / 160]
    return f @ mean, f @ cov @ f.T + dt * np.diag(np.square(std))


def ref_update(mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hmat = np.eye(4, 8)
    std = [mean[3] / 20, mean[3] / 20, 1e-1, mean[3] / 20]
    s = hmat @ cov @ hmat.T + np.diag(np.square(std))
    gain = cho_solve(cho_factor(s, lower=True), (cov @ hmat.T).T).T
    return mean + gain @ (z - hmat @ mean), cov - gain @ s @ gain.T


@pytest.mark.parametrize("dt", [1.0, 4.3, 0.25])
def test_batched_kalman_matches_per_track_reference(dt: float) -> None:
    """The batched filter, whose covariance is four 2×2 blocks per track (ByteTrack never
    couples x, y, a and h), equals the textbook 8×8 filter track by track, for steps of any
    length (F with dt, process noise dt × a step's)."""
    rng = np.random.default_rng(0)
    n = 7
    z0 = np.column_stack(
        [rng.uniform(0, 1000, (n, 2)), rng.uniform(0.3, 2, n), rng.uniform(20, 300, n)]
    )
    mean, var = kalman.initiate_blocks(z0)
    mean[:, 4:] = rng.normal(0, 3, (n, 4))  # moving, as after a few updates
    for _ in range(3):  # correlated position/velocity terms, as after a few steps
        mean, var = kalman.predict_blocks(mean, var)
    z = z0 + rng.normal(0, 5, (n, 4))
    cov = kalman.blocks_to_cov(var)
    pm, pv = kalman.predict_blocks(mean, var, dt)
    um, uv = kalman.update_blocks(pm, pv, z)
    pc, uc = kalman.blocks_to_cov(pv), kalman.blocks_to_cov(uv)
    for i in range(n):
        rm, rc = ref_predict(mean[i], cov[i], dt)
        assert np.allclose(pm[i], rm) and np.allclose(pc[i], rc)
        rm, rc = ref_update(rm, rc, z[i])
        assert np.allclose(um[i], rm) and np.allclose(uc[i], rc)
    assert not np.allclose(um, pm)


def test_kalman_initiate_and_box_round_trip() -> None:
    xyxy = np.array([[10, 20, 50, 100], [0, 0, 30, 10]], np.float32)
    xyah = kalman.xyxy_to_xyah(xyxy)
    np.testing.assert_allclose(xyah, [[30, 60, 0.5, 80], [15, 5, 3, 10]])
    np.testing.assert_allclose(kalman.xyah_to_xyxy(xyah), xyxy)
    mean, var = kalman.initiate_blocks(xyah)
    np.testing.assert_array_equal(mean[:, 4:], 0)
    cov = kalman.blocks_to_cov(var)
    assert np.allclose(cov[0], np.diag(np.square([8, 8, 1e-2, 8, 5, 5, 1e-5, 5])))
    empty = kalman.update_blocks(*kalman.predict_blocks(mean[:0], var[:0]), np.zeros((0, 4)))
    assert empty[0].shape == (0, 8) and empty[1].shape == (0, 3, 4)


@pytest.mark.parametrize("slow_fps", [5.0, 2.5])
def test_motion_model_runs_on_stream_time_when_the_frame_rate_drops(slow_fps: float) -> None:
    """A person running at 400 px/s seen at 25 fps, then at a lower rate (detect_fps, dropped
    frames): predicted one frame's worth of motion per update, the track would fall behind by
    more than a box width and break; predicted by elapsed time, it keeps its id."""
    tracker = ByteTracker()
    speed, ts, ids = 400.0, 0.0, set()
    for _ in range(15):
        out = tracker.update(dets([box(100 + speed * ts, 200, w=60, h=150)]), ts)
        ids.update(out.track_id.tolist())
        ts += 1 / 25
    for _ in range(6):
        ts += 1 / slow_fps
        out = tracker.update(dets([box(100 + speed * ts, 200, w=60, h=150)]), ts)
        assert len(out) == 1, ts
        ids.update(out.track_id.tolist())
    assert ids == {1}
