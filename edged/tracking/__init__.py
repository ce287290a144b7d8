"""Multi-object tracking: ByteTrack over a batched Kalman filter."""

from edged.tracking.bytetrack import Association, ByteTracker, TrackState

__all__ = ["Association", "ByteTracker", "TrackState"]
