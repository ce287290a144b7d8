"""Constant-velocity Kalman filter in (x, y, aspect, height) space, batched over tracks.

The model and noise weights follow ByteTrack's ``KalmanFilter``; every function takes
and returns stacks (means N×8, covariances N×8×8) so that all tracks advance in one call.
"""

from __future__ import annotations

import numpy as np

STD_WEIGHT_POSITION = 1.0 / 20
STD_WEIGHT_VELOCITY = 1.0 / 160

# One step per frame, as in ByteTrack: the noise weights are tuned per frame, not per second.
MOTION = np.eye(8) + np.eye(8, k=4)


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


def _diag(std: np.ndarray) -> np.ndarray:
    """N×K standard deviations to N×K×K diagonal covariances."""
    return np.eye(std.shape[1]) * np.square(std)[:, None, :]


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start tracks from N×4 xyah measurements, with zero velocity."""
    n = len(measurements)
    mean = np.concatenate([measurements, np.zeros((n, 4))], axis=1)
    h = measurements[:, 3]
    p, v = 2 * STD_WEIGHT_POSITION * h, 10 * STD_WEIGHT_VELOCITY * h
    std = np.stack([p, p, np.full(n, 1e-2), p, v, v, np.full(n, 1e-5), v], axis=1)
    return mean, _diag(std)


def predict(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Advance all tracks by one frame."""
    n = len(mean)
    h = mean[:, 3]
    p, v = STD_WEIGHT_POSITION * h, STD_WEIGHT_VELOCITY * h
    std = np.stack([p, p, np.full(n, 1e-2), p, v, v, np.full(n, 1e-5), v], axis=1)
    return mean @ MOTION.T, MOTION @ cov @ MOTION.T + _diag(std)


def update(
    mean: np.ndarray, cov: np.ndarray, measurements: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Correct N tracks with N xyah measurements (row i belongs to track i)."""
    n = len(mean)
    p = STD_WEIGHT_POSITION * mean[:, 3]
    innovation_cov = cov[:, :4, :4] + _diag(np.stack([p, p, np.full(n, 1e-1), p], axis=1))
    # K = P Hᵀ S⁻¹, solved as S Kᵀ = H P since S and P are symmetric.
    gain = np.linalg.solve(innovation_cov, cov[:, :4, :]).transpose(0, 2, 1)
    innovation = measurements - mean[:, :4]
    new_mean = mean + np.einsum("nij,nj->ni", gain, innovation)
    new_cov = cov - gain @ innovation_cov @ gain.transpose(0, 2, 1)
    return new_mean, new_cov
