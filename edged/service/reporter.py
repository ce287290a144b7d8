"""What the daemon tells systemd, and when.

- ``READY=1`` once every camera has processed its first frame, or after ``ready_timeout_s``
  (then the status names the cameras still waiting), so ``systemctl start`` returns when the
  daemon really works, and never hangs on one dead camera.
- ``WATCHDOG=1`` every half ``WATCHDOG_USEC``, only while no camera is stalled (see
  ``edged.service.progress``): cameras that process frames, or wait legitimately for their source,
  keep the pings going; frames piling up unprocessed stop them.
- ``RELOADING=1`` … ``READY=1`` around a config reload, ``STOPPING=1`` at shutdown, and a
  ``STATUS=`` line that ``systemctl status edged`` shows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from edged.pipeline import CameraProgress
from edged.service.progress import ProgressMonitor
from edged.service.systemd import Notifier, watchdog_interval

log = logging.getLogger(__name__)

# without a watchdog, a stall this long is still worth a log line
DEFAULT_STALL_S = 30.0


class ServiceReporter:
    def __init__(
        self,
        ready_timeout_s: float,
        started: float,
        notifier: Notifier | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.notifier = notifier or Notifier(env)
        self.ping_every = watchdog_interval(env)
        self.monitor = ProgressMonitor(self.ping_every or DEFAULT_STALL_S)
        self.ready_timeout_s = ready_timeout_s
        self.started = started
        self.ready = False
        self.stalled: list[str] = []
        self._next_ping = started
        self._status = ""

    @property
    def tick_s(self) -> float:
        """How often ``tick`` should run so that no ping is late."""
        return 1.0 if self.ping_every is None else min(1.0, self.ping_every / 2)

    def tick(self, now: float, cameras: Mapping[str, CameraProgress], status: str) -> None:
        if not self.ready:
            waiting = sorted(name for name, c in cameras.items() if c.processed == 0)
            if not waiting:
                self._ready(f"ready: {len(cameras)} camera(s) processing")
            elif now - self.started >= self.ready_timeout_s:
                log.warning(
                    "ready after %.0f s without a first frame from: %s",
                    self.ready_timeout_s,
                    ", ".join(waiting),
                )
                self._ready(f"ready; no frame yet from {', '.join(waiting)}")
        stalled = self.monitor.update(now, cameras)
        if stalled != self.stalled:
            if stalled:
                log.error(
                    "no progress: frames wait unprocessed on %s; watchdog pings withheld",
                    ", ".join(stalled),
                )
            else:
                log.info("progress again on every camera; watchdog pings resume")
            self.stalled = stalled
        if self.ping_every is not None and not stalled and now >= self._next_ping:
            self.notifier.watchdog()
            self._next_ping = now + self.ping_every
        if self.ready:
            text = f"stalled: {', '.join(stalled)} | {status}" if stalled else status
            if text != self._status:
                self._status = text
                self.notifier.status(text)

    def _ready(self, status: str) -> None:
        self.ready = True
        self._status = status
        self.notifier.ready(status)
        log.info("%s", status)

    def reloading(self) -> None:
        self.notifier.reloading()

    def reloaded(self, summary: str) -> None:
        """End a reload; before the first READY, readiness still waits for the cameras."""
        self._status = f"reloaded: {summary}"
        if self.ready:
            self.notifier.ready(self._status)
        else:
            self.notifier.status(self._status)

    def stopping(self) -> None:
        self.notifier.stopping()

    def close(self) -> None:
        self.notifier.close()
