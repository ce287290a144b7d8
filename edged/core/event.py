"""The ``Event`` type and its wire format (schema version 1)."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened on one camera (or on the device, when ``camera`` is None).

    ``seq`` is assigned by the journal when the event is made durable; it is device-monotonic
    across restarts. ``topic`` is relative to ``<prefix>/<device>/`` and ``retain`` marks state
    (occupancy, totals, status) that a late subscriber should still see.
    """

    kind: str
    camera: str | None
    topic: str
    payload: dict[str, Any]
    frame_ts: float | None = None
    retain: bool = False
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    ts: float = field(default_factory=time.time)
    seq: int = 0
    v: int = SCHEMA_VERSION

    def envelope(self, device: str) -> dict[str, Any]:
        """The payload with the common fields every message carries."""
        return {
            "v": self.v,
            "seq": self.seq,
            "id": self.id,
            "ts": round(self.ts, 6),
            "frame_ts": None if self.frame_ts is None else round(self.frame_ts, 6),
            "device": device,
            "camera": self.camera,
            "kind": self.kind,
            **self.payload,
        }

    def to_json(self, device: str) -> str:
        return json.dumps(self.envelope(device), separators=(",", ":"), sort_keys=False)
