"""SIGTERM/SIGINT stop the daemon, SIGHUP reloads its config.

The handlers are installed before the config and its models are checked (which takes a few
seconds): a signal that came before them would otherwise take its default action — SIGHUP
would kill the process (rc 129) while systemd believes a reload was asked for.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

log = logging.getLogger(__name__)


class Signals:
    """What arrived: ``stop`` (SIGTERM, SIGINT), ``hup`` (SIGHUP); ``wake`` is set by both, so
    the daemon's loop answers at once."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.hup = threading.Event()
        self.wake = threading.Event()

    def install(self) -> Signals:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._handle)
        log.debug("signal handlers installed")
        return self

    def request_reload(self) -> None:
        """What SIGHUP does, asked from inside (the console's editor after a save)."""
        self.hup.set()
        self.wake.set()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            log.info("received SIGHUP, reloading the config")
            self.hup.set()
        else:
            log.info("received %s, stopping", signal.Signals(signum).name)
            self.stop.set()
        self.wake.set()

    def request_stop(self) -> None:
        """Stop as SIGTERM does, from within (the events' output was closed)."""
        self.stop.set()
        self.wake.set()
