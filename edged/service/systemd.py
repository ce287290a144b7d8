"""The sd_notify protocol, without libsystemd: datagrams to ``$NOTIFY_SOCKET``.

systemd sets ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace) for
``Type=notify`` services and ``WATCHDOG_USEC`` (with ``WATCHDOG_PID``) when ``WatchdogSec=``
is set. Outside systemd both are absent and every call here does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends ``KEY=value`` lines to the service manager; a no-op without ``NOTIFY_SOCKET``."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self.address: str | None = None
        if address.startswith("@"):
            self.address = "\0" + address[1:]
        elif address.startswith("/"):
            self.address = address
        elif address:
            log.warning("NOTIFY_SOCKET=%r is neither a path nor @abstract; not notifying", address)
        self._sock: socket.socket | None = None
        self._failing = False
        if self.address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *fields: str) -> bool:
        """Send one datagram of ``fields`` (e.g. ``"READY=1"``, ``"STATUS=…"``); False when
        there is nowhere to send or the manager is gone (never raises: health reports must
        not take the daemon down)."""
        if self._sock is None or self.address is None:
            return False
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            if not self._failing:  # once per outage, not once a second
                log.warning("sd_notify to %s failed: %s", self.address.replace("\0", "@"), exc)
            self._failing = True
            return False
        self._failing = False
        return True

    def ready(self, status: str) -> bool:
        return self.send("READY=1", f"STATUS={status}")

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets a Type=notify-reload manager match this to its reload job
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading config")

    def stopping(self) -> bool:
        return self.send("STOPPING=1", "STATUS=stopping: draining frames and events")

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={text}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``, as sd_watchdog_enabled
    advises), or None when no watchdog is asked of this process."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (we were started by a wrapper)
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not a number; no watchdog pings", usec)
        return None
    return value / 2e6 if value > 0 else None
