"""Topic paths below ``<prefix>/<device>/`` — the one place that spells them."""

from __future__ import annotations

AVAILABILITY = "availability"
STATS = "stats"
CONFIG = "config"  # config_reload events
OVERFLOW = "overflow"


def camera_events(camera: str) -> str:
    return f"{camera}/events"


def camera_status(camera: str) -> str:
    return f"{camera}/status"


def line(camera: str, name: str) -> str:
    return f"{camera}/lines/{name}"


def line_totals(camera: str, name: str) -> str:
    return f"{camera}/lines/{name}/totals"


def zone(camera: str, name: str) -> str:
    return f"{camera}/zones/{name}"


def zone_occupancy(camera: str, name: str) -> str:
    return f"{camera}/zones/{name}/occupancy"


def alerts(camera: str, kind: str) -> str:
    return f"{camera}/alerts/{kind}"


def alerts_active(camera: str, kind: str) -> str:
    """How many alerts of the kind are active now (retained), whatever their subjects."""
    return f"{camera}/alerts/{kind}/active"


def scene(camera: str, name: str) -> str:
    """Scene-specific state and events, e.g. ``<camera>/shelf/<slot>``, ``<camera>/traffic``."""
    return f"{camera}/{name}"


def snapshot(camera: str, name: str) -> str:
    """The latest JPEG for an object label or an alert kind (retained)."""
    return f"{camera}/snapshots/{name}"
