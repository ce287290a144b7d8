"""The events the console shows: the newest of each camera, and the outcome of the config
reloads, kept from the sink as they are committed."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from edged.core.event import Event

# what a person scrolls through on a camera's page; state updates (occupancy, totals) are
# shown as live counts instead
SHOWN = {"object", "zone_enter", "zone_exit", "line_crossing", "alert", "camera_status"}


class RecentEvents:
    """A sink listener (thread-safe): per camera the last ``keep`` events of the kinds a
    person reads, newest last, and every ``config_reload`` outcome with its number."""

    def __init__(self, device: str, keep: int = 50) -> None:
        self.device = device
        self.keep = keep
        self._events: dict[str, deque[dict[str, Any]]] = {}
        self._reloads: list[dict[str, Any]] = []
        self._cond = threading.Condition()

    def __call__(self, events: list[Event]) -> None:
        with self._cond:
            for event in events:
                if event.kind == "config_reload":
                    self._reloads.append(event.envelope(self.device))
                    self._cond.notify_all()
                elif event.kind in SHOWN and event.camera is not None:
                    shown = self._events.setdefault(event.camera, deque(maxlen=self.keep))
                    shown.append(event.envelope(self.device))

    def of(self, camera: str) -> list[dict[str, Any]]:
        with self._cond:
            return list(self._events.get(camera, ()))

    @property
    def reloads(self) -> int:
        with self._cond:
            return len(self._reloads)

    def reload_after(self, seen: int, timeout: float) -> dict[str, Any] | None:
        """The first reload outcome after ``seen`` of them, waiting up to ``timeout``."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._reloads) > seen, timeout):
                return None
            return self._reloads[seen]
