"""Ground-plane speed and heading per track: a homography from the picture to the road, and a
least-squares velocity over a window of media time.

The velocity is the slope of a straight line fitted to the track's ground positions against
their timestamps over the last ``window_s`` seconds of the stream's own clock. A vehicle at
constant speed gives exactly that speed whatever the frame rate and however many frames were
dropped; detector jitter is averaged over every sample in the window, not just the two ends.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from edged.analytics.tracked import TrackedFrame
from edged.core.detections import Anchor

MPS_TO = {"mps": 1.0, "kmh": 3.6, "mph": 3600.0 / 1609.344}


def convert(mps: float, unit: str) -> float:
    """Metres per second in ``unit`` (mps, kmh or mph)."""
    return mps * MPS_TO[unit]


def to_mps(value: float, unit: str) -> float:
    return value / MPS_TO[unit]


class Homography:
    """Maps picture pixels to road-plane metres and back. Four pairs give the exact
    perspective transform; more are fitted by least squares."""

    def __init__(self, image: np.ndarray, ground: np.ndarray) -> None:
        image = np.asarray(image, np.float64).reshape(-1, 2)
        ground = np.asarray(ground, np.float64).reshape(-1, 2)
        if len(image) != len(ground) or len(image) < 4:
            raise ValueError("a homography needs at least 4 image/ground pairs of equal count")
        if len(image) == 4:
            h = cv2.getPerspectiveTransform(image.astype(np.float32), ground.astype(np.float32))
        else:
            h, _ = cv2.findHomography(image, ground, 0)
        if h is None or not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) < 1e-12:
            raise ValueError("the points do not define a perspective mapping (degenerate)")
        self.matrix = np.asarray(h, np.float64)
        self.inverse = np.linalg.inv(self.matrix)
        # the calibration points all lie below the horizon: one side of the vanishing line
        w = self._w(image)
        if np.any(w == 0) or len(set(np.sign(w).tolist())) != 1:
            raise ValueError("the calibration points straddle the horizon (inconsistent pairs)")
        self._side = float(np.sign(w[0]))
        self.error_m = float(np.max(np.linalg.norm(self.to_ground(image) - ground, axis=1)))

    def _w(self, pts: np.ndarray) -> np.ndarray:
        return np.asarray(pts, np.float64).reshape(-1, 2) @ self.matrix[2, :2] + self.matrix[2, 2]

    def on_road(self, pts: np.ndarray) -> np.ndarray:
        """Which picture points are below the horizon (map to the road, not the sky)."""
        return self._w(pts) * self._side > 0

    @staticmethod
    def _apply(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        if len(pts) == 0:
            return np.zeros((0, 2))
        return cv2.perspectiveTransform(pts[None], m)[0]

    def to_ground(self, pts: np.ndarray) -> np.ndarray:
        """N×2 picture pixels → N×2 road metres."""
        return self._apply(self.matrix, pts)

    def to_image(self, pts: np.ndarray) -> np.ndarray:
        """N×2 road metres → N×2 picture pixels."""
        return self._apply(self.inverse, pts)

    def ground_direction(self, at: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """The unit road-plane vector of a picture direction at picture point ``at``."""
        at = np.asarray(at, np.float64)
        d = np.asarray(direction, np.float64)
        d = d / np.linalg.norm(d)
        a, b = self.to_ground(np.stack([at - d, at + d]))
        g = b - a
        n = float(np.linalg.norm(g))
        if n == 0 or not math.isfinite(n):
            raise ValueError("the direction has no extent on the road plane there")
        return g / n


@dataclass(frozen=True, slots=True)
class Motion:
    """A track's fitted road-plane motion: ``velocity`` (m/s, ground axes), ``speed`` (m/s),
    ``heading_deg`` (0 along ground +x, 90 along ground +y), over ``span_s`` of samples."""

    velocity: tuple[float, float]
    speed: float
    heading_deg: float
    span_s: float
    samples: int


def fit_velocity(ts: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Least-squares slope of ``xy`` (N×2) against ``ts`` (N); needs two distinct times."""
    t = ts - ts.mean()
    return (t @ (xy - xy.mean(axis=0))) / float(t @ t)


class SpeedEstimator:
    """Keeps each track's ground positions for ``window_s`` of media time and fits its
    velocity. A motion is reported once the samples span ``min_span_s`` (default half the
    window), so a track's first frames give no speed rather than a wild one."""

    def __init__(self, window_s: float = 1.0, min_span_s: float | None = None) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self.min_span_s = window_s / 2 if min_span_s is None else min_span_s
        self._hist: dict[int, deque[tuple[float, float, float]]] = {}
        self._motion: dict[int, Motion] = {}

    def add(self, track_id: int, ts: float, ground: tuple[float, float]) -> Motion | None:
        hist = self._hist.setdefault(track_id, deque())
        if hist and ts <= hist[-1][0]:
            return self._motion.get(track_id)  # a repeated or older timestamp adds nothing
        hist.append((ts, float(ground[0]), float(ground[1])))
        while hist and hist[0][0] < ts - self.window_s - 1e-9:
            hist.popleft()
        span = hist[-1][0] - hist[0][0]
        if len(hist) < 2 or span < self.min_span_s - 1e-9:
            self._motion.pop(track_id, None)
            return None
        arr = np.asarray(hist, np.float64)
        v = fit_velocity(arr[:, 0], arr[:, 1:])
        speed = float(np.hypot(v[0], v[1]))
        heading = math.degrees(math.atan2(v[1], v[0])) % 360.0
        m = Motion((float(v[0]), float(v[1])), speed, heading, span, len(hist))
        self._motion[track_id] = m
        return m

    def motion(self, track_id: int) -> Motion | None:
        return self._motion.get(track_id)

    def end(self, track_ids: list[int]) -> None:
        for tid in track_ids:
            self._hist.pop(tid, None)
            self._motion.pop(tid, None)


def touches_border(
    xyxy: np.ndarray, width: int, height: int, anchor: Anchor, margin: float = 2.0
) -> np.ndarray:
    """Boxes cut by the picture's edge on a side the anchor depends on: their anchor moves at a
    fraction of the object's speed, so they are left out of speed fits."""
    x0, y0, x1, y1 = xyxy[:, 0], xyxy[:, 1], xyxy[:, 2], xyxy[:, 3]
    cut = (x0 <= margin) | (x1 >= width - margin)
    if anchor is not Anchor.TOP_CENTER:
        cut |= y1 >= height - margin
    if anchor is not Anchor.BOTTOM_CENTER:
        cut |= y0 <= margin
    return cut


class TrackSpeeds:
    """Speed and heading of every confirmed track of a ``TrackedFrame`` on the road plane."""

    def __init__(
        self,
        homography: Homography,
        width: int,
        height: int,
        anchor: Anchor = Anchor.BOTTOM_CENTER,
        window_s: float = 1.0,
        min_span_s: float | None = None,
    ) -> None:
        self.homography = homography
        self.size = (width, height)
        self.anchor = anchor
        self.estimator = SpeedEstimator(window_s, min_span_s)

    def update(self, tf: TrackedFrame, keep: np.ndarray | None = None) -> np.ndarray:
        """Feed this frame's tracks (those where ``keep``); returns their N×2 ground points."""
        objects = tf.objects
        ground = self.homography.to_ground(objects.anchors(self.anchor))
        if objects.track_id is not None and len(objects):
            usable = ~touches_border(objects.xyxy, *self.size, self.anchor)
            usable &= self.homography.on_road(objects.anchors(self.anchor))
            if keep is not None:
                usable &= keep
            for i in np.flatnonzero(usable).tolist():
                self.estimator.add(int(objects.track_id[i]), tf.media_ts, ground[i])
        self.estimator.end(tf.ended)
        return ground

    def motion(self, track_id: int) -> Motion | None:
        return self.estimator.motion(track_id)
