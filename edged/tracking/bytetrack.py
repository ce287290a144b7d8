"""ByteTrack multi-object tracker (Zhang et al. 2022) with all track state in numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from edged.config.camera import (
    DEFAULT_MIN_SCORE,
    HIGH_OVER_FLOOR,
    NEW_OVER_FLOOR,
    TrackerConfig,
)
from edged.core.boxes import iou_matrix
from edged.core.detections import Detections
from edged.tracking import kalman
from edged.tracking.matching import assign


@dataclass(frozen=True, slots=True)
class Association:
    """The matching stages' fixed settings, ByteTrack's own; a camera's ``tracker:`` section
    (``TrackerConfig``) holds the rest.

    The ``*_iou`` values are the least similarities (IoU, times the detection's score when
    ``fuse_score``) for the second stage (tracked tracks against low-score detections) and
    for tentative tracks; the first stage's is the config's ``match_iou``.
    """

    second_match_iou: float = 0.5
    tentative_match_iou: float = 0.3
    fuse_score: bool = True


class TrackState(IntEnum):
    """Life cycle of a track: tentative until confirmed, then tracked or lost."""

    TENTATIVE = 0
    TRACKED = 1
    LOST = 2


# Plain ints for the array comparisons: numpy compares an IntEnum member more slowly.
_TENTATIVE, _TRACKED, _LOST = (int(s) for s in TrackState)


# the tracker of a camera with no ``tracker:`` section
DEFAULTS = TrackerConfig()

# a track's label is the class with the most score summed over its matches, and changes only
# when another class leads it by this factor: a detector that wavers between two classes
# (car/truck, vase/bottle) moves a track's label once, when the evidence turns, not back and
# forth with every frame
LABEL_LEAD = 1.5


class ByteTracker:
    """Assigns persistent ids to detections, one ``update`` per frame.

    Detections with ``score >= high_thresh`` take part in the first stage, those in
    ``[low_thresh, high_thresh)`` in the second; unmatched high ones with
    ``score >= new_track_thresh`` start tentative tracks. A track is confirmed, and gets an
    id, after ``min_hits`` matched frames; a lost track is kept ``lost_track_buffer_s``
    seconds. With ``class_aware`` a detection only matches tracks of its class.

    The detections reported carry their track's label (``LABEL_LEAD``), not their own
    class of the frame.
    """

    def __init__(
        self,
        config: TrackerConfig = DEFAULTS,
        association: Association = Association(),
        floors: np.ndarray | None = None,
    ) -> None:
        self.config = config
        self.association = association
        # per class id: the detection floor the default thresholds follow (None: one floor)
        self.floors = floors
        self._next_id = 1
        self.reset()

    def reset(self) -> None:
        """Drop all tracks. Ids keep increasing so that downstream never sees one reused."""
        self._mean = np.zeros((0, 8))
        # covariance as four decoupled 2×2 blocks per track (kalman.initiate_blocks)
        self._var = np.zeros((0, 3, 4))
        self._id = np.zeros(0, np.int64)  # 0 until the track is confirmed
        self._class = np.zeros(0, np.int32)  # the track's label
        self._votes = np.zeros((0, 1), np.float32)  # score summed per class, per track
        self._hits = np.zeros(0, np.int64)
        self._state = np.zeros(0, np.int8)
        self._last_seen = np.zeros(0, np.float64)
        self._ended: list[int] = []
        self._last_ts: float | None = None

    @property
    def tracking(self) -> bool:
        """Any track is kept: tentative, tracked or lost within its buffer."""
        return len(self._state) > 0

    @property
    def ended(self) -> list[int]:
        """Ids of confirmed tracks removed during the last ``update``."""
        return list(self._ended)

    def update(self, detections: Detections, ts: float) -> Detections:
        """Associate one frame's detections (``ts`` in monotonic seconds).

        Returns the detections matched to confirmed tracks, with ``track_id`` set.
        """
        p, assoc = self.config, self.association
        self._ended = []
        # Before association, so that a track gone longer than the buffer can't be re-found.
        self._remove_expired(ts)

        state = self._state
        lost = state == _LOST
        # ByteTrack freezes the height velocity of lost tracks.
        self._mean[lost, 7] = 0.0
        # the motion model runs on stream time: frames skipped by detect_fps or lost in
        # decode are predicted across, not taken for one step
        dt = 1.0 if self._last_ts is None else max(ts - self._last_ts, 0.0) / kalman.STEP_S
        self._last_ts = ts
        self._mean, self._var = kalman.predict_blocks(self._mean, self._var, dt)

        n_tracks = len(self._mean)
        det_track = np.full(len(detections), -1, np.intp)
        track_matched = np.zeros(n_tracks, bool)
        score = detections.score
        high_thresh, new_thresh = self._thresholds(detections.class_id)
        high = score >= high_thresh
        low = (score >= p.low_thresh) & ~high
        # One IoU matrix for all stages: each stage takes its rows and columns of it.
        iou = iou_matrix(kalman.xyah_to_xyxy(self._mean[:, :4]), detections.xyxy)
        fused = iou * score[None, :] if assoc.fuse_score else iou

        def associate(tracks: np.ndarray, dets: np.ndarray, fusable: bool, min_sim: float) -> None:
            if len(tracks) == 0 or len(dets) == 0:
                return
            sim = (fused if fusable else iou)[np.ix_(tracks, dets)]
            if p.class_aware:
                sim[self._class[tracks][:, None] != detections.class_id[dets][None, :]] = -1.0
            rows, cols = assign(sim, min_sim)
            det_track[dets[cols]] = tracks[rows]
            track_matched[tracks[rows]] = True

        tentative = state == _TENTATIVE
        associate(np.flatnonzero(~tentative), np.flatnonzero(high), True, p.match_iou)
        associate(
            np.flatnonzero((state == _TRACKED) & ~track_matched),
            np.flatnonzero(low),
            False,
            assoc.second_match_iou,
        )
        unmatched_high = high & (det_track < 0)
        associate(
            np.flatnonzero(tentative),
            np.flatnonzero(unmatched_high),
            True,
            assoc.tentative_match_iou,
        )

        matched_dets = np.flatnonzero(det_track >= 0)
        t = det_track[matched_dets]
        if len(t):
            self._mean[t], self._var[t] = kalman.update_blocks(
                self._mean[t], self._var[t], kalman.xyxy_to_xyah(detections.xyxy[matched_dets])
            )
            self._hits[t] += 1
            self._last_seen[t] = ts
            self._vote(t, detections.class_id[matched_dets], score[matched_dets])

        confirmed = ~tentative
        state[confirmed & track_matched] = _TRACKED
        state[confirmed & ~track_matched] = _LOST
        survivors = confirmed | track_matched

        new = np.flatnonzero(high & (det_track < 0) & (score >= new_thresh))
        if len(new):
            det_track[new] = n_tracks + np.arange(len(new))
            self._start(detections[new], ts)
            survivors = np.concatenate([survivors, np.ones(len(new), bool)])

        confirm = np.flatnonzero((self._state == _TENTATIVE) & (self._hits >= p.min_hits))
        if len(confirm):
            self._state[confirm] = _TRACKED
            self._id[confirm] = np.arange(self._next_id, self._next_id + len(confirm))
            self._next_id += len(confirm)

        has_track = det_track >= 0
        track_id = np.zeros(len(detections), np.int64)
        track_id[has_track] = self._id[det_track[has_track]]
        reported = track_id > 0
        out = detections[reported]
        out.track_id = track_id[reported]
        out.class_id = self._class[det_track[reported]]

        if not survivors.all():
            self._keep(survivors)
        self._remove_expired(ts)
        return out

    def _thresholds(self, class_id: np.ndarray) -> tuple[np.ndarray | float, np.ndarray | float]:
        """The first-stage and new-track thresholds, per detection: as set, or following the
        detection's class floor (``HIGH_OVER_FLOOR``, ``NEW_OVER_FLOOR``), so that a class the
        model scores low is tracked as surely as one it scores high."""
        p = self.config
        floor: np.ndarray | float = (
            DEFAULT_MIN_SCORE if self.floors is None else self.floors[class_id]
        )
        high = np.minimum(HIGH_OVER_FLOOR * floor, 1.0) if p.high_thresh is None else p.high_thresh
        new = (
            np.minimum(NEW_OVER_FLOOR * floor, 1.0)
            if p.new_track_thresh is None
            else p.new_track_thresh
        )
        return high, new

    def _vote(self, tracks: np.ndarray, cls: np.ndarray, score: np.ndarray) -> None:
        """Add each matched detection's score to its class's votes on its track (each track
        once per frame); a label changes where another class leads by ``LABEL_LEAD``."""
        self._grow_votes(int(cls.max()) + 1)
        self._votes[tracks, cls] += score
        votes = self._votes[tracks]
        leader = votes.argmax(axis=1).astype(np.int32)
        current = votes[np.arange(len(tracks)), self._class[tracks]]
        lead = votes[np.arange(len(tracks)), leader] >= LABEL_LEAD * current
        self._class[tracks[lead]] = leader[lead]

    def _grow_votes(self, classes: int) -> None:
        if classes > self._votes.shape[1]:
            extra = np.zeros((len(self._votes), classes - self._votes.shape[1]), np.float32)
            self._votes = np.concatenate([self._votes, extra], axis=1)

    def _start(self, detections: Detections, ts: float) -> None:
        """Append one tentative track per detection."""
        n = len(detections)
        mean, var = kalman.initiate_blocks(kalman.xyxy_to_xyah(detections.xyxy))
        self._mean = np.concatenate([self._mean, mean])
        self._var = np.concatenate([self._var, var])
        self._id = np.concatenate([self._id, np.zeros(n, np.int64)])
        cls = detections.class_id.astype(np.int32)
        self._class = np.concatenate([self._class, cls])
        self._grow_votes(int(cls.max()) + 1)
        votes = np.zeros((n, self._votes.shape[1]), np.float32)
        votes[np.arange(n), cls] = detections.score
        self._votes = np.concatenate([self._votes, votes])
        self._hits = np.concatenate([self._hits, np.ones(n, np.int64)])
        self._state = np.concatenate([self._state, np.full(n, _TENTATIVE, np.int8)])
        self._last_seen = np.concatenate([self._last_seen, np.full(n, ts)])

    def _keep(self, keep: np.ndarray) -> None:
        """Drop the tracks where ``keep`` is False, reporting confirmed ones as ended."""
        self._ended.extend(self._id[~keep & (self._id > 0)].tolist())
        self._mean = self._mean[keep]
        self._var = self._var[keep]
        self._id = self._id[keep]
        self._class = self._class[keep]
        self._votes = self._votes[keep]
        self._hits = self._hits[keep]
        self._state = self._state[keep]
        self._last_seen = self._last_seen[keep]

    def _remove_expired(self, ts: float) -> None:
        """Drop lost tracks not seen for longer than the buffer."""
        expired = (self._state == _LOST) & (ts - self._last_seen > self.config.lost_track_buffer_s)
        if expired.any():
            self._keep(~expired)
