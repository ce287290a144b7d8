"""``edged events`` against a real broker: readable lines and JSON, from flags or a config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from edged.config.events import JournalConfig, MqttConfig
from edged.core.event import Event
from edged.outputs.journal import Journal
from edged.outputs.mqtt import MqttPublisher
from tests.mqtt_helpers import Broker
from tests.paths import MODEL

WAIT = 20.0

EVENTS = [
    Event(
        kind="line_crossing",
        camera="cam1",
        topic="cam1/lines/gate",
        payload={"line": "gate", "direction": "in", "track_id": 4, "label": "person"},
    ),
    Event(
        kind="zone_occupancy",
        camera="cam1",
        topic="cam1/zones/door/occupancy",
        payload={"zone": "door", "counts": {"person": 2}, "total": 2},
        retain=True,
    ),
    Event(
        kind="alert",
        camera="cam1",
        topic="cam1/alerts/loitering",
        payload={"alert": "loitering", "subject": "door/4", "state": "start"},
    ),
]


def watch(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "edged", "events", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()  # blocks until it has subscribed (or failed)
    assert line.startswith("subscribed to"), line + proc.stderr.read()
    return proc


def publish(broker: Broker, tmp_path: Path) -> list[Event]:
    journal = Journal(JournalConfig(path=tmp_path / "j.db"))
    publisher = MqttPublisher(MqttConfig(port=broker.port), "dev1", journal)
    publisher.start()
    assert publisher.wait_connected(WAIT)
    stored = journal.append(EVENTS)
    assert publisher.wait_drained(WAIT)
    publisher.stop()
    journal.close()
    return stored


def test_json_lines_carry_topic_and_the_event(mqtt_broker: Broker, tmp_path: Path) -> None:
    # availability online, three events, availability offline
    proc = watch("--port", str(mqtt_broker.port), "--json", "--count", "5")
    stored = publish(mqtt_broker, tmp_path)
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [m["payload"] for m in lines if m["topic"] == "edged/dev1/availability"] == [
        "online",
        "offline",
    ]
    events = [m for m in lines if isinstance(m["payload"], dict)]
    assert [m["payload"]["id"] for m in events] == [e.id for e in stored]
    assert [m["topic"] for m in events] == [f"edged/dev1/{e.topic}" for e in EVENTS]
    assert events[0]["payload"] == stored[0].envelope("dev1")


def test_readable_lines_from_a_config_and_a_topic_filter(
    mqtt_broker: Broker, tmp_path: Path
) -> None:
    config = tmp_path / "edged.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "device_id": "dev1",
                "mqtt": {"port": mqtt_broker.port, "protocol": "3.1.1"},
                "models": {"coco": {"path": str(MODEL)}},
                "cameras": {"cam1": {"source": {"uri": "x.mp4"}, "detect": {"model": "coco"}}},
            }
        )
    )
    proc = watch(str(config), "--topic", "edged/dev1/cam1/#", "--count", "3")
    stored = publish(mqtt_broker, tmp_path)
    out, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) == 3
    assert f"dev1/cam1/lines/gate line_crossing seq={stored[0].seq} gate in person #4" in lines[0]
    assert 'door total 2 {"person": 2}' in lines[1]
    assert "dev1/cam1/alerts/loitering alert" in lines[2] and "loitering start door/4" in lines[2]


def test_unreachable_broker_is_a_clear_error(tmp_path: Path) -> None:
    from tests.mqtt_helpers import free_port

    proc = subprocess.run(
        [sys.executable, "-m", "edged", "events", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert proc.returncode == 1
    assert "cannot reach the broker" in proc.stderr
