"""What analytics get each frame: the confirmed tracks, with labels and timestamps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


def class_filter(labels: list[str], names: list[str] | None) -> np.ndarray | None:
    """Class ids for ``names`` (None: every class); unknown names are a config error."""
    if names is None:
        return None
    unknown = sorted(set(names) - set(labels))
    if unknown:
        raise ValueError(f"unknown classes {unknown}; the model knows {len(labels)} labels")
    return np.array([labels.index(n) for n in names], np.int32)
