"""Floor 8: the config wired into threads — sources → inference workers (batching across
cameras) → each camera's analytics → the event sink."""

from edged.pipeline.camera import CameraProgress, CameraRuntime, CameraStats
from edged.pipeline.wiring import Pipeline

__all__ = ["CameraProgress", "CameraRuntime", "CameraStats", "Pipeline"]
