"""Multi-object tracking: ByteTrack over a batched Kalman filter."""

from edged.tracking.bytetrack import ByteTracker, ByteTrackParams, TrackState

__all__ = ["ByteTrackParams", "ByteTracker", "TrackState"]
