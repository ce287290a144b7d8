"""A file read as fast as possible (``realtime: false``): payload times are the first frame's
wall-clock time plus stream time, so they agree with the durations measured on stream time."""

from __future__ import annotations

from typing import Any

import pytest

from tests.daemon import run_clip
from tests.paths import DEMO

FPS = 7  # the shipped clip: 150 frames at 7 fps
CLIP_S = 149 / FPS  # the last frame's stream time


def stamps(event: dict[str, Any]) -> list[float]:
    """Every wall-clock time an event carries: frame_ts, an alert's started/ended, and an
    object's first_seen/last_seen."""
    found = [] if event["frame_ts"] is None else [event["frame_ts"]]
    found += [event[k] for k in ("started", "ended") if k in event]
    for side in ("before", "after"):
        obj = event.get(side) or {}
        found += [obj[k] for k in ("first_seen", "last_seen") if k in obj]
    return found


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return run_clip(DEMO, "walkway", tmp_path_factory.mktemp("times") / "j.db")


def test_times_are_frames_of_the_stream(events: list[dict[str, Any]]) -> None:
    """Every time is the first frame's plus a whole number of frame periods, and they span
    the clip's stream time (not the second or so the run took)."""
    times = [t for e in events for t in stamps(e)]
    first = min(times)
    for t in times:
        frames = (t - first) * FPS
        assert frames == pytest.approx(round(frames), abs=1e-3), t - first
    # the first stamp is the clip's first frame (zone and line state), the last its last frame
    # (objects ended at the end of the stream)
    assert max(times) - first == pytest.approx(CLIP_S, abs=1e-3)


def test_ended_minus_started_is_the_duration(events: list[dict[str, Any]]) -> None:
    """Alerts (ended - started) and object lifetimes (last_seen - first_seen) against their
    duration_s; at least one of each lasts seconds, so wall-clock times would disagree."""
    alerts = [e for e in events if e["kind"] == "alert" and "ended" in e]
    lives = [e["after"] for e in events if e["kind"] == "object" and e["type"] == "end"]
    assert alerts and max(a["duration_s"] for a in alerts) > 2
    assert lives and max(o["duration_s"] for o in lives) > 2
    for a in alerts:
        assert a["ended"] - a["started"] == pytest.approx(a["duration_s"], abs=2e-3), a
    for o in lives:
        assert o["last_seen"] - o["first_seen"] == pytest.approx(o["duration_s"], abs=2e-3), o
