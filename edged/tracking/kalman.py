"""Constant-velocity Kalman filter in (x, y, aspect, height) space, batched over tracks.

The model and noise weights follow ByteTrack's ``KalmanFilter``; every function takes and
returns stacks (means N×8) so that all tracks advance in one call.

Started from a diagonal covariance, ByteTrack's filter never couples two of the four
coordinates: the motion matrix pairs each position
with its own velocity, the noises are diagonal and the measurement picks the positions. The
8×8 covariance is then four independent 2×2 blocks, kept as an N×3×4 array ``var`` (position
variance, position–velocity covariance, velocity variance, per coordinate), and predict and
update are a few element-wise operations instead of batched 8×8 products and solves — the same
numbers up to rounding (``blocks_to_cov`` gives the 8×8 form back).
"""

from __future__ import annotations

import numpy as np

STD_WEIGHT_POSITION = 1.0 / 20
STD_WEIGHT_VELOCITY = 1.0 / 160

# ByteTrack's noise weights are per frame; a step here is one frame at 25 fps (the common CCTV
# rate, where this is ByteTrack's filter exactly), and a frame ``dt`` steps after the last one
# is predicted that far (see ``predict_blocks``). 1/25 and 1/30 were measured on MOT15
# (benchmarks/eval_mot.py): 50.7 and 50.5 combined HOTA; per frame, whatever the rate: 49.3.
STEP_S = 1.0 / 25


def xyxy_to_xyah(xyxy: np.ndarray) -> np.ndarray:
    """N×4 corner boxes to N×4 (center x, center y, width / height, height)."""
    xyxy = np.asarray(xyxy, np.float64)
    w = xyxy[:, 2] - xyxy[:, 0]
    # Degenerate boxes would otherwise put inf/nan into the filter state.
    h = np.maximum(xyxy[:, 3] - xyxy[:, 1], 1e-6)
    return np.stack(
        [(xyxy[:, 0] + xyxy[:, 2]) * 0.5, (xyxy[:, 1] + xyxy[:, 3]) * 0.5, w / h, h], axis=1
    )


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """N×4 (center x, center y, width / height, height) to N×4 corner boxes."""
    w = xyah[:, 2] * xyah[:, 3]
    half = np.stack([w, xyah[:, 3]], axis=1) * 0.5
    return np.concatenate([xyah[:, :2] - half, xyah[:, :2] + half], axis=1)


def _squares(std: np.ndarray, aspect_std: float) -> np.ndarray:
    """N standard deviations (for x, y, h) → N×4 variances, the aspect's fixed."""
    sq = np.square(std)
    out = np.empty((len(std), 4))
    out[:] = sq[:, None]
    out[:, 2] = aspect_std * aspect_std
    return out


def initiate_blocks(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from N (x, y, a, h) measurements: zero velocity, wide uncertainty; the
    covariance as N×3×4 blocks (see the module doc)."""
    n = len(measurements)
    mean = np.zeros((n, 8))
    mean[:, :4] = measurements
    h = measurements[:, 3]
    var = np.zeros((n, 3, 4))
    var[:, 0] = _squares(2 * STD_WEIGHT_POSITION * h, 1e-2)
    var[:, 2] = _squares(10 * STD_WEIGHT_VELOCITY * h, 1e-5)
    return mean, var


def predict_blocks(
    mean: np.ndarray, var: np.ndarray, dt: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Advance every track by ``dt`` steps (of ``STEP_S``) at once: positions move by
    ``dt`` × velocity, and the process noise, a random walk, grows by ``dt`` times a step's.
    With ``dt`` = 1 this is ByteTrack's per-frame predict; at 7 fps a frame is ~4.3 steps, so
    the same filter serves a camera at any (or a varying) detection rate."""
    h = mean[:, 3]
    new_mean = mean.copy()
    new_mean[:, :4] += dt * mean[:, 4:]
    pp, pv, vv = var[:, 0], var[:, 1], var[:, 2]
    new_var = np.empty_like(var)
    new_var[:, 1] = pv + dt * vv
    new_var[:, 0] = pp + dt * (pv + new_var[:, 1]) + dt * _squares(STD_WEIGHT_POSITION * h, 1e-2)
    new_var[:, 2] = vv + dt * _squares(STD_WEIGHT_VELOCITY * h, 1e-5)
    return new_mean, new_var


def update_blocks(
    mean: np.ndarray, var: np.ndarray, measurements: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Correct every track with its measurement: per coordinate, S = P_pp + R and gain
    (P_pp, P_pv) / S."""
    pp, pv, vv = var[:, 0], var[:, 1], var[:, 2]
    s = pp + _squares(STD_WEIGHT_POSITION * mean[:, 3], 1e-1)
    k_pos, k_vel = pp / s, pv / s
    innovation = measurements - mean[:, :4]
    new_mean = np.empty_like(mean)
    new_mean[:, :4] = mean[:, :4] + k_pos * innovation
    new_mean[:, 4:] = mean[:, 4:] + k_vel * innovation
    new_var = np.empty_like(var)
    new_var[:, 0] = pp - k_pos * pp
    new_var[:, 1] = pv - k_pos * pv
    new_var[:, 2] = vv - k_vel * pv
    return new_mean, new_var


def blocks_to_cov(var: np.ndarray) -> np.ndarray:
    """N×3×4 blocks → N×8×8 covariances."""
    n = len(var)
    cov = np.zeros((n, 8, 8))
    i = np.arange(4)
    cov[:, i, i] = var[:, 0]
    cov[:, i, i + 4] = var[:, 1]
    cov[:, i + 4, i] = var[:, 1]
    cov[:, i + 4, i + 4] = var[:, 2]
    return cov
