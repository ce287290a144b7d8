"""Where analytics hand their events: the journal first, then whoever listens live."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Sequence

from edged.core.event import Event
from edged.outputs.journal import Journal

Listener = Callable[[list[Event]], None]
# (topic below <prefix>/<device>/, JPEG, event id) -> whether it was sent
ImageListener = Callable[[str, bytes, str], bool]


class EventSink:
    """Thread-safe. An event reaches listeners (and the publisher, through the journal) only
    after it is committed, so whatever is seen live is also replayable."""

    def __init__(self, journal: Journal, listeners: Sequence[Listener] = ()) -> None:
        self.journal = journal
        self.listeners = list(listeners)
        self.image_listeners: list[ImageListener] = []
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def emit(self, events: list[Event]) -> None:
        if not events:
            return
        stored = self.journal.append(events)
        with self._lock:
            self.counts.update(e.kind for e in stored)
        for listener in self.listeners:
            listener(stored)

    def publish_image(self, topic: str, jpeg: bytes, event_id: str) -> bool:
        """Hand a snapshot to whoever sends pictures (the MQTT publisher); best effort."""
        sent = False
        for listener in self.image_listeners:
            sent = listener(topic, jpeg, event_id) or sent
        return sent

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())
