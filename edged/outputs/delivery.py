"""What the JetStream and Redis publishers share: their side of the journal, whether the
engine is reachable, waiting for the backlog, and problems logged once while they repeat."""

from __future__ import annotations

import logging
import threading

from edged.core.latency import Latency
from edged.outputs.journal import Journal


class Delivery:
    """State of one output's delivery, for its publisher thread and the daemon."""

    name: str

    def __init__(self, journal: Journal, log: logging.Logger) -> None:
        self._journal = journal.reader(self.name)
        self._log = log
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None  # the publisher's, once started
        # notified on every acknowledgement and every lost connection (wait_drained)
        self._progress = threading.Condition()
        self._last_problem: str | None = None
        self.error: str | None = None  # why nothing is delivered now (None: it is)
        self.published = 0
        self.ack_latency = Latency()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def backlog(self) -> int:
        """Events this output has not yet acknowledged."""
        return self._journal.backlog()

    def wait_drained(self, timeout: float) -> bool:
        """Block until this output has every event (True), or ``timeout`` or a lost
        connection (False)."""
        with self._progress:
            self._progress.wait_for(
                lambda: self._journal.backlog() == 0 or not self.connected, timeout
            )
        return self._journal.backlog() == 0

    def _begin_stop(self, drain_timeout: float) -> bool:
        """The start of ``stop``: what is pending may go out for ``drain_timeout`` s, then
        the publisher thread is told to end. False when it never started or is stopping."""
        if self._thread is None or self._stopping.is_set():
            return False
        if self.connected:
            self.wait_drained(drain_timeout)
        self._stopping.set()
        self._journal.wake()
        return True

    def _acked(self, seqs: list[int]) -> None:
        """The engine has these: pruned for this output, and whoever waits is told."""
        self._journal.mark_delivered(seqs)
        self.published += len(seqs)
        with self._progress:
            self._progress.notify_all()

    def _lost(self) -> None:
        self._connected.clear()
        with self._progress:
            self._progress.notify_all()

    def _problem(self, what: str, level: int = logging.WARNING) -> None:
        """Logged once while it repeats; kept as ``error``."""
        self.error = what
        if what == self._last_problem:
            self._log.debug("%s", what)
            return
        self._last_problem = what
        self._log.log(level, "%s (events wait in the journal)", what)
