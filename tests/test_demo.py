"""The daemon end to end: the demo config, the real model and clip, a real Mosquitto."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import Broker
from tests.mqtt_helpers import Subscriber
from tests.paths import DEMO
from tests.schema import validator

ENVELOPE = {"v", "seq", "id", "ts", "frame_ts", "device", "camera", "kind"}


def demo_env(broker: Broker, state: Path) -> dict[str, str]:
    return {
        **os.environ,
        "EDGED_MQTT_HOST": broker.host,
        "EDGED_MQTT_PORT": str(broker.port),
        "EDGED_STATE_DIR": str(state),
    }


def run_demo(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edged", "run", str(DEMO), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_demo_publishes_line_and_zone_events(mqtt_broker: Broker, tmp_path: Path) -> None:
    with Subscriber(mqtt_broker.host, mqtt_broker.port, "edged/demo/#") as sub:
        proc = run_demo(
            demo_env(mqtt_broker, tmp_path),
            "--print-events",
            "--set",
            "cameras.walkway.source.realtime=false",
        )
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        printed = [json.loads(line) for line in out.splitlines()]
        assert sub.wait_for(lambda: len(sub.messages) >= len(printed) + 2, 10), err

    by_topic: dict[str, list] = {}
    for m in sub.messages:
        by_topic.setdefault(m.topic, []).append(m)
    availability = [m.payload for m in by_topic["edged/demo/availability"]]
    assert availability[0] == b"online" and availability[-1] == b"offline"

    events = [json.loads(m.payload) for m in sub.messages if m.topic != "edged/demo/availability"]
    schema = validator()
    for event in events:
        assert event.keys() >= ENVELOPE, event
        assert event["v"] == 1 and event["device"] == "demo"
        schema.validate(event)  # the shipped JSON Schema v1
    # every event printed was delivered, nothing invented on the way
    assert {e["id"] for e in events} == {e["id"] for e in printed}
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    crossings = [e for e in events if e["kind"] == "line_crossing"]
    assert crossings, "no line crossing"
    assert all(c["line"] == "walkway" and c["label"] == "person" for c in crossings)
    assert {c["direction"] for c in crossings} <= {"in", "out"}
    enters = [e for e in events if e["kind"] == "zone_enter"]
    assert enters and all(e["zone"] == "plaza" for e in enters)
    assert any(e["kind"] == "object" and e["type"] == "new" for e in events)

    totals = [m for m in by_topic["edged/demo/walkway/lines/walkway/totals"]]
    last = json.loads(totals[-1].payload)
    assert last["in_total"] + last["out_total"] == len(crossings)
    # regression: the ground truth of these 150 frames has 4 people crossing the line, all
    # walking away from the camera ("in"); measured: exactly that, and 11 zone entries
    assert (last["in_total"], last["out_total"]) == (4, 0)
    assert 9 <= len(enters) <= 13
    occupancy = json.loads(by_topic["edged/demo/walkway/zones/plaza/occupancy"][-1].payload)
    assert occupancy["total"] == 0  # the clip ended: every track ended and left

    status = [json.loads(m.payload)["status"] for m in by_topic["edged/demo/walkway/status"]]
    assert status == ["online", "offline"]

    # delivered rows are pruned: the journal's backlog is empty
    with sqlite3.connect(tmp_path / "events.db") as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0

    # a late subscriber still sees the retained state
    with Subscriber(mqtt_broker.host, mqtt_broker.port, "edged/demo/#") as late:
        assert late.wait_for(
            lambda: any(m.topic.endswith("/lines/walkway/totals") for m in late.messages), 5
        )
        retained = {m.topic: m.payload for m in late.messages if m.retain}
    assert retained["edged/demo/availability"] == b"offline"
    assert json.loads(retained["edged/demo/walkway/lines/walkway/totals"]) == last


def test_sigterm_stops_cleanly_and_says_offline(mqtt_broker: Broker, tmp_path: Path) -> None:
    with Subscriber(mqtt_broker.host, mqtt_broker.port, "edged/demo/#") as sub:
        proc = run_demo(demo_env(mqtt_broker, tmp_path))  # realtime: would run 21 s
        try:
            assert sub.wait_for(
                lambda: any(m.topic.endswith("/events") for m in sub.messages), 60
            ), "no object event"
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=5)
        finally:
            proc.kill()
        assert proc.returncode == 0, err
        assert sub.wait_for(
            lambda: (
                sub.messages[-1].topic == "edged/demo/availability"
                and sub.messages[-1].payload == b"offline"
            ),
            5,
        )
    assert "received SIGTERM" in err
    # what was live at the stop was ended and delivered, not left behind
    with sqlite3.connect(tmp_path / "events.db") as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0


def test_without_mqtt_events_go_to_journal_and_stdout(tmp_path: Path) -> None:
    config = tmp_path / "no-mqtt.yaml"
    text = DEMO.read_text()
    start, end = text.index("mqtt:"), text.index("journal:")
    text = text[:start] + text[end:]
    text = text.replace("../engines/", f"{DEMO.parent.parent}/engines/")
    text = text.replace("../samples/", f"{DEMO.parent.parent}/samples/")
    config.write_text(text)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edged",
            "run",
            str(config),
            "--print-events",
            "--set",
            "cameras.walkway.source.realtime=false",
            "--set",
            f"journal.path={tmp_path / 'j.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    printed = [json.loads(line) for line in proc.stdout.splitlines()]
    assert any(e["kind"] == "line_crossing" for e in printed)
    with sqlite3.connect(tmp_path / "j.db") as db:
        stored = [json.loads(p) for (p,) in db.execute("SELECT payload FROM events ORDER BY seq")]
    assert len(stored) == len(printed)
