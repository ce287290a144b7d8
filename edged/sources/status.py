"""A source's state changes as the retained ``camera_status`` events subscribers see."""

from __future__ import annotations

from edged.core import topics
from edged.core.event import Event
from edged.core.redact import redact
from edged.sources.base import SourceState, StateChange

# what subscribers are told of each state; connecting and stalled are passing states that
# say nothing new (a stall is followed by reconnecting at once)
STATUS = {
    SourceState.STREAMING: "online",
    SourceState.RECONNECTING: "reconnecting",
    SourceState.ENDED: "offline",
    SourceState.STOPPED: "offline",
}


def status_event(camera: str, change: StateChange, uri: str) -> Event | None:
    """The ``camera_status`` event for ``change`` (credentials in ``uri`` redacted), or None
    for a state subscribers are not told of."""
    status = STATUS.get(change.state)
    if status is None:
        return None
    return Event(
        kind="camera_status",
        camera=camera,
        topic=topics.camera_status(camera),
        payload={
            "status": status,
            "state": change.state.value,
            "reason": change.reason,
            "attempt": change.attempt,
            "retry_in_s": change.retry_in_s,
            "source": redact(uri),
        },
        retain=True,
    )
