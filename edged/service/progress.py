"""Whether the pipeline is making progress: the truth behind the systemd watchdog pings.

A camera is owed work when a frame was handed over (or still waits in its slot or analytics
queue) since the last look. It is healthy when it processed a frame since then (or skipped one
as still: motion gating), or when it is owed nothing: a source that is connecting,
reconnecting, ended or simply between frames is waiting legitimately. A camera owed work that
processes nothing for ``stall_s`` is stalled — a wedged inference worker or analytics thread —
and then the pings must stop so that systemd restarts the daemon.
"""

from __future__ import annotations

from collections.abc import Mapping

from edged.pipeline import CameraProgress


class ProgressMonitor:
    def __init__(self, stall_s: float) -> None:
        self.stall_s = stall_s
        self._seen: dict[str, CameraProgress] = {}
        self._ok_at: dict[str, float] = {}

    def update(self, now: float, cameras: Mapping[str, CameraProgress]) -> list[str]:
        """Take a new look at every camera; return the names of the stalled ones."""
        for gone in set(self._seen) - set(cameras):
            del self._seen[gone], self._ok_at[gone]
        stalled = []
        for name, cur in cameras.items():
            prev = self._seen.get(name)
            self._seen[name] = cur
            owed = cur.waiting or (prev is not None and cur.delivered > prev.delivered)
            # a counter that went down is a camera restarted by a reload: a new start
            progressed = prev is None or (cur.processed, cur.skipped) != (
                prev.processed,
                prev.skipped,
            )
            if progressed or not owed:
                self._ok_at[name] = now
            elif now - self._ok_at[name] > self.stall_s:
                stalled.append(name)
        return stalled
