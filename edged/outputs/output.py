"""What every output fed by the journal offers the daemon, /metrics and /healthz."""

from __future__ import annotations

from typing import Protocol

from edged.core.latency import Latency


class Output(Protocol):
    """An engine's publisher: reads its own side of the journal (``Journal.reader``) from
    its own thread, and acknowledges there only what the engine has stored."""

    name: str
    ack_latency: Latency  # publish → the engine's acknowledgement

    @property
    def connected(self) -> bool: ...

    def backlog(self) -> int:
        """Events this output has not yet acknowledged."""
        ...

    def start(self) -> None: ...

    def wait_drained(self, timeout: float) -> bool: ...

    def stop(self, drain_timeout: float = 5.0) -> None: ...
