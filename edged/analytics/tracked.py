"""What analytics get each frame: the confirmed tracks, with labels and timestamps."""

from __future__ import annotations

from dataclasses import dataclass

from edged.core.detections import Detections
from edged.core.masks import PersonMask


@dataclass(frozen=True, slots=True)
class TrackedFrame:
    """``media_ts`` measures durations; ``wall_ts`` is what payloads carry as ``frame_ts``."""

    camera: str
    media_ts: float
    wall_ts: float
    objects: Detections
    ended: list[int]
    labels: list[str]
    people: PersonMask | None = None

    def label(self, i: int) -> str:
        return self.labels[int(self.objects.class_id[i])]

    def box(self, i: int) -> list[float]:
        return [round(float(v), 1) for v in self.objects.xyxy[i]]
