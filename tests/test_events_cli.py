"""``edged events`` against a real broker: readable lines and JSON, from flags or a config."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edged.config.events import JournalConfig, MqttConfig
from edged.core.event import Event
from edged.outputs.journal import Journal
from edged.outputs.mqtt import MqttPublisher
from tests.mqtt_helpers import Broker, free_port
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
    proc = subprocess.run(
        [sys.executable, "-m", "edged", "events", "--port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert proc.returncode == 1
    assert "cannot reach the broker" in proc.stderr


def events_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edged", "events", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "error: --port 99999: Input should be less than or equal to 65535"),
        (["--port", "0"], "error: --port 0: Input should be greater than or equal to 1"),
        (["--prefix", "#"], "error: --prefix '#': must be a non-empty topic without the wildcards"),
        (["--prefix", "a/+"], "error: --prefix 'a/+': must be a non-empty topic"),
        (["--topic", "a/#/b"], "error: --topic 'a/#/b': '#' must be the whole last level"),
        (["--topic", "a/b#"], "error: --topic 'a/b#': '#' must be the whole last level"),
        (["--topic", "a/x+/b"], "error: --topic 'a/x+/b': '+' must be a whole level"),
        (["--topic", ""], "error: --topic '': a topic filter must not be empty"),
        (["--count", "0"], "error: --count 0: give at least 1"),
    ],
    ids=["port-high", "port-zero", "prefix-hash", "prefix-plus", "hash-inside", "hash-glued",
         "plus-glued", "empty-topic", "count"],
)  # fmt: skip
def test_bad_flags_are_clear_errors_before_connecting(args: list[str], message: str) -> None:
    # the port of no broker: a flag that passed would fail later with "cannot reach"
    proc = events_cli("--port", str(free_port()), *args)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[0].startswith(message), proc.stderr


def test_good_topic_filters_pass() -> None:
    from edged.outputs.watch import filter_problem

    for topic in ("#", "+", "a/+/c", "a/b/#", "+/+/#", "edged/dev1/cam1/#", "$SYS/#"):
        assert filter_problem(topic) is None, topic


def test_a_config_that_crashed_the_loader_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "edged.yaml"
    config.write_bytes(b"device_id: dev1\nmqtt: {host: caf\xe9}\n")
    proc = events_cli(str(config))
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {config}:2:"), proc.stderr
    assert "not UTF-8" in proc.stderr and "Traceback" not in proc.stderr


def test_tls_files_of_the_config_are_checked(tmp_path: Path) -> None:
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate\n")
    config = tmp_path / "edged.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "device_id": "dev1",
                "mqtt": {"port": free_port(), "tls": {"ca": str(garbage)}},
                "models": {"coco": {"path": str(MODEL)}},
                "cameras": {"cam1": {"source": {"uri": "x.mp4"}, "detect": {"model": "coco"}}},
            }
        )
    )
    proc = events_cli(str(config))
    assert proc.returncode == 2, proc.stderr
    assert f": mqtt.tls.ca: {garbage} holds no PEM certificate" in proc.stderr


def test_a_filter_paho_refuses_fails_at_once(mqtt_broker: Broker) -> None:
    # past the CLI's own check (a caller of run()): paho refuses it on its thread
    import io
    import signal

    from edged.outputs.watch import run

    err = io.StringIO()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = run(MqttConfig(port=mqtt_broker.port), ["a/#/b"], False, err=err)
    finally:
        for sig, handler in handlers.items():  # run() took them for its own Ctrl-C
            signal.signal(sig, handler)
    assert code == 1
    assert "cannot subscribe to a/#/b: Invalid subscription filter" in err.getvalue()
