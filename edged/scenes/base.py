"""What every scene module offers the camera's analytics."""

from __future__ import annotations

from typing import Protocol

from shapely.geometry.base import BaseGeometry

from edged.analytics.tracked import TrackedFrame
from edged.core.event import Event
from edged.core.frame import Frame


class SceneModule(Protocol):
    def update(self, frame: Frame, tf: TrackedFrame, events: list[Event]) -> list[Event]:
        """This frame's scene events; ``events`` are the generic ones (zones, lines, objects)."""
        ...

    def finish(self, tf: TrackedFrame) -> list[Event]:
        """The stream ended: end whatever is active."""
        ...

    @property
    def regions(self) -> tuple[BaseGeometry, ...]:
        """The areas it watches beyond the camera's zones and lines, in pixels (the motion
        gate's region of interest)."""
        ...

    @property
    def busy(self) -> bool:
        """It needs the next frames whether or not anything moves or is tracked (a judgement
        that waits for a still picture, a passage still open)."""
        ...
