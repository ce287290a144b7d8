"""The surveillance preset: schedules, intrusion alerts, entrance counts; and its config on
the sample clip."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from edged.analytics.tracked import TrackedFrame
from edged.config import ConfigError, load
from edged.config.scene_surveillance import SurveillanceConfig, TimeWindow
from edged.core.detections import Detections
from edged.core.event import Event
from edged.outputs.schema import event_kinds
from edged.scenes.surveillance import Surveillance, armed
from tests.daemon import run_clip
from tests.paths import ROOT

CONFIG = ROOT / "configs" / "surveillance.yaml"


def test_schedule_windows_including_overnight() -> None:
    night = [TimeWindow(days=["fri"], start="22:00", end="06:00")]
    friday_late = datetime(2026, 11, 20, 23, 30)  # a Friday
    saturday_early = datetime(2026, 11, 21, 5, 59)
    saturday_late = datetime(2026, 11, 21, 23, 0)
    assert armed(night, friday_late) and armed(night, saturday_early)
    assert not armed(night, saturday_late)
    assert not armed(night, datetime(2026, 11, 21, 6, 0))
    office = [TimeWindow(days=["mon", "tue", "wed", "thu", "fri"], start="08:00", end="18:00")]
    assert armed(office, datetime(2026, 11, 20, 8, 0)) and not armed(office, friday_late)
    assert armed([TimeWindow()], saturday_late)  # the default: always


def test_bad_schedule_and_time_zone_are_config_errors(tmp_path: Path) -> None:
    text = CONFIG.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace('end: "24:00"', 'end: "25:00"').replace("../", f"{ROOT}/"))
    with pytest.raises(ConfigError, match=r"schedule\[0\]\.end: .*'25:00'"):
        load(bad, env={})
    bad.write_text(text.replace("timezone: null", "timezone: Mars/Olympus"))
    with pytest.raises(ConfigError, match="unknown time zone"):
        load(bad, env={})


def scene(tmp_path: Path, start: str = "00:00", end: str = "24:00") -> Surveillance:
    text = CONFIG.read_text().replace(
        'start: "00:00", end: "24:00"', f'start: "{start}", end: "{end}"'
    )
    path = tmp_path / "s.yaml"
    path.write_text(text.replace("../", f"{ROOT}/"))
    config = load(path, env={}).cameras["campus"]
    return Surveillance("campus", config, ["person", "bicycle"], 768, 576)


def zone_event(kind: str, tid: int, label: str = "person") -> Event:
    payload = {"zone": "plaza", "track_id": tid, "label": label}
    return Event(kind=kind, camera="campus", topic="x", payload=payload)


def tf(t: float, wall: float) -> TrackedFrame:
    return TrackedFrame("campus", t, wall, Detections.empty(), [], ["person", "bicycle"])


def test_intrusion_starts_once_and_ends_when_the_zone_is_clear(tmp_path: Path) -> None:
    s = scene(tmp_path)
    frame = None
    out = s.update(frame, tf(0, 1000), [zone_event("zone_enter", 1)])  # type: ignore[arg-type]
    assert [(e.payload["alert"], e.payload["state"]) for e in out] == [("intrusion", "start")]
    assert out[0].topic == "campus/alerts/intrusion"
    assert s.update(frame, tf(1, 1001), [zone_event("zone_enter", 2)]) == []  # type: ignore[arg-type]
    assert s.update(frame, tf(2, 1002), [zone_event("zone_exit", 1)]) == []  # type: ignore[arg-type]
    out = s.update(frame, tf(5, 1005), [zone_event("zone_exit", 2)])  # type: ignore[arg-type]
    assert out[0].payload["state"] == "end" and out[0].payload["duration_s"] == 5


def test_unarmed_zone_and_other_classes_raise_nothing(tmp_path: Path) -> None:
    # armed only one minute a day, at a time of day the test is not run at (the frames' wall
    # clock is 1970, 00:16 UTC; local time in this machine's zone)
    wall = 1000.0
    hour = datetime.fromtimestamp(wall).hour
    other = f"{(hour + 12) % 24:02d}:00"
    s = scene(tmp_path, start=other, end=f"{(hour + 12) % 24:02d}:01")
    frame = None
    assert s.update(frame, tf(0, wall), [zone_event("zone_enter", 1)]) == []  # type: ignore[arg-type]
    s = scene(tmp_path)
    assert s.update(frame, tf(0, wall), [zone_event("zone_enter", 3, "bicycle")]) == []  # type: ignore[arg-type]


def test_preset_on_the_sample_clip(tmp_path: Path) -> None:
    events = run_clip(CONFIG, "campus", tmp_path / "j.db")
    alerts = [(e["alert"], e["state"]) for e in events if e["kind"] == "alert"]
    # only kinds it declares (loitering and crowding are the zones')
    assert {a for a, _ in alerts} <= {*SurveillanceConfig.alerts, "loitering", "crowding"}
    assert set(SurveillanceConfig.event_kinds) <= {e["kind"] for e in events} <= set(event_kinds())
    for kind in ("intrusion", "loitering", "crowding"):
        assert alerts.count((kind, "start")) == alerts.count((kind, "end")) >= 1, alerts
    occupancy = [e for e in events if e["kind"] == "entrance_occupancy"]
    # the four people who walk up the walkway towards the building (ground truth: 4)
    assert occupancy[-1]["entered"] == 4 and occupancy[-1]["inside"] == 4
