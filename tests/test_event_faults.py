"""The daemon as a process against a real Mosquitto: killed with SIGKILL mid-stream, its
backlog is delivered after a restart; Home Assistant discovery and the last will."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.daemon import Daemon
from tests.mqtt_helpers import BrokerFactory, Subscriber
from tests.paths import DEMO
from tests.schema import validator

FAST = ("--set", "cameras.walkway.source.realtime=false")
WAIT = 60.0  # model load and inference on 2 shared cores


@pytest.fixture
def demo_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("EDGED_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("EDGED_MQTT_HOST", "127.0.0.1")
    return tmp_path


def first_arrivals(sub: Subscriber) -> list[dict]:
    seen: set[str] = set()
    out = []
    for m in sub.json("edged/demo/walkway/#"):
        if m["id"] not in seen:
            seen.add(m["id"])
            out.append(m)
    return out


def test_sigkill_mid_stream_then_restart_delivers_the_backlog_in_order(
    mqtt_broker_factory: BrokerFactory, demo_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = mqtt_broker_factory(start=False)
    monkeypatch.setenv("EDGED_MQTT_PORT", str(broker.port))
    # the broker is down: everything the first run makes waits in its journal
    first = Daemon(DEMO, *FAST)
    try:
        assert first.wait_for(lambda ev: sum(e["kind"] == "object" for e in ev) >= 10, WAIT), (
            first.stderr
        )
        first.kill()
    finally:
        first.kill()
    assert first.proc.returncode == -9
    backlog = list(first.events)  # printed only once committed to the journal
    with sqlite3.connect(demo_env / "events.db") as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] >= len(backlog)

    broker.start()
    try:
        with Subscriber(broker.host, broker.port, "edged/demo/#") as sub:
            second = Daemon(DEMO, *FAST)
            assert second.finish(WAIT) == 0, second.stderr
            live = list(second.events)
            expected = {e["id"] for e in backlog + live}
            assert sub.wait_for(lambda: {m["id"] for m in first_arrivals(sub)} >= expected, 10), (
                second.stderr
            )
        arrivals = first_arrivals(sub)
        # the backlog first, then live, all in seq order; nothing lost
        assert [m["seq"] for m in arrivals] == sorted(m["seq"] for m in arrivals)
        assert {m["id"] for m in arrivals[: len(backlog)]} == {e["id"] for e in backlog}
        assert "undelivered events from a previous run" in second.stderr
        check = validator()
        for m in arrivals:
            check.validate(m)
        with sqlite3.connect(demo_env / "events.db") as db:
            assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
    finally:
        broker.stop()


REQUIRED = {"name", "unique_id", "state_topic", "device", "availability_topic"}


def test_homeassistant_discovery_and_offline_when_killed(
    mqtt_broker_factory: BrokerFactory, demo_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = mqtt_broker_factory()
    monkeypatch.setenv("EDGED_MQTT_PORT", str(broker.port))
    with (
        Subscriber(broker.host, broker.port, "homeassistant/#") as ha,
        Subscriber(broker.host, broker.port, "edged/demo/#") as edged,
    ):
        daemon = Daemon(DEMO, "--set", "homeassistant.prefix=homeassistant")
        try:
            # camera status, plaza occupancy + presence, walkway in + out, plaza loitering
            assert ha.wait_for(lambda: len(ha.messages) >= 6, WAIT), daemon.stderr
            assert edged.wait_for(
                lambda: any(m.topic.endswith("/zones/plaza/occupancy") for m in edged.messages),
                WAIT,
            )
            daemon.proc.kill()
            daemon.proc.wait(10)
        finally:
            daemon.kill()
        configs = {m.topic: json.loads(m.payload) for m in ha.messages}
        assert all(m.retain is False for m in ha.messages)  # live: delivered as sent
        assert len(configs) == 6
        for topic, c in configs.items():
            component, node, object_id, last = topic.split("/")[1:]
            assert component in {"sensor", "binary_sensor"} and last == "config"
            assert node == "edged_demo" and c["unique_id"] == f"edged_demo_{object_id}"
            assert c.keys() >= REQUIRED, topic
            assert c["device"]["identifiers"] == ["edged_demo"]
            assert c["availability_topic"] == "edged/demo/availability"
            assert (c["payload_available"], c["payload_not_available"]) == ("online", "offline")
            assert c["state_topic"].startswith("edged/demo/walkway/")
            assert "{{" in c["value_template"]
        assert len({c["unique_id"] for c in configs.values()}) == 6
        by_id = {c["unique_id"]: c for c in configs.values()}
        occupancy = by_id["edged_demo_walkway_plaza_occupancy"]
        assert occupancy["state_topic"] == "edged/demo/walkway/zones/plaza/occupancy"
        assert by_id["edged_demo_walkway_walkway_in"]["state_topic"].endswith("/totals")
        assert by_id["edged_demo_walkway_loitering"]["device_class"] == "problem"
        # the state topics are real: edged published on the occupancy one
        assert any(m.topic == occupancy["state_topic"] for m in edged.messages)
        # SIGKILL: no goodbye from edged; the broker sends its last will
        assert edged.wait_for(
            lambda: (
                [m.payload for m in edged.messages if m.topic.endswith("/availability")][-1:]
                == [b"offline"]
            ),
            10,
        )
    # discovery and availability are retained for Home Assistant restarting later
    with Subscriber(broker.host, broker.port, "homeassistant/#") as late:
        assert late.wait_for(lambda: len(late.messages) == 6, 5)
    with Subscriber(broker.host, broker.port, "edged/demo/availability") as late:
        assert late.wait_for(lambda: len(late.messages) == 1, 5)
        assert late.messages[0].payload == b"offline" and late.messages[0].retain
    broker.stop()
