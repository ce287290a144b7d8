"""The MQTT publisher against a real Mosquitto: envelope, order, retain, availability, outages."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

from edged.config.events import JournalConfig, MqttConfig
from edged.core.event import Event
from edged.outputs.journal import Journal
from edged.outputs.mqtt import MAX_INFLIGHT, MqttPublisher
from tests.mqtt_helpers import Broker, BrokerFactory, Relay, Subscriber, free_port

ROOT = Path(__file__).resolve().parent.parent
DEVICE = "dev1"
BASE = f"edged/{DEVICE}"
AVAILABILITY = f"{BASE}/availability"
WAIT = 10.0  # generous upper bound for any single wait; the tests normally take far less

MakePublisher = Callable[..., tuple[MqttPublisher, Journal]]


@pytest.fixture
def make_publisher(tmp_path: Path) -> Iterator[MakePublisher]:
    """``make(broker_port, qos=1) -> (publisher, journal)``; stopped and closed at teardown."""
    made: list[tuple[MqttPublisher, Journal]] = []

    def make(port: int, qos: Literal[0, 1] = 1) -> tuple[MqttPublisher, Journal]:
        journal = Journal(JournalConfig(path=tmp_path / f"journal-{len(made)}.db"))
        config = MqttConfig(host="127.0.0.1", port=port, qos=qos, keepalive_s=5)
        publisher = MqttPublisher(config, DEVICE, journal)
        made.append((publisher, journal))
        return publisher, journal

    yield make
    for publisher, journal in made:
        publisher.stop(drain_timeout=0)
        journal.close()


def make_events(n: int, start: int = 0) -> list[Event]:
    return [
        Event(
            kind="new",
            camera="cam1",
            topic="cam1/events",
            payload={"track_id": start + i, "label": "person"},
            frame_ts=1000.0 + i,
        )
        for i in range(n)
    ]


def event_payloads(sub: Subscriber) -> list[dict[str, Any]]:
    """Every JSON message received, in arrival order (availability is plain text)."""
    return [json.loads(m.payload) for m in sub.messages if m.topic != AVAILABILITY]


def event_ids(sub: Subscriber) -> list[str]:
    return [m["id"] for m in sub.json(f"{BASE}/cam1/#")]


def first_arrival_seqs(sub: Subscriber) -> list[int]:
    seen: set[str] = set()
    seqs = []
    for m in sub.json(f"{BASE}/cam1/#"):
        if m["id"] not in seen:
            seen.add(m["id"])
            seqs.append(m["seq"])
    return seqs


def availability(sub: Subscriber) -> list[bytes]:
    return [m.payload for m in sub.messages if m.topic == AVAILABILITY]


def test_events_arrive_with_envelope_topic_and_order(
    mqtt_broker: Broker, make_publisher: MakePublisher
) -> None:
    publisher, journal = make_publisher(mqtt_broker.port)
    with Subscriber(mqtt_broker.host, mqtt_broker.port, f"{BASE}/#") as sub:
        publisher.start()
        assert publisher.wait_connected(WAIT)
        events = [
            *make_events(20),
            Event(
                kind="occupancy",
                camera="cam1",
                topic="cam1/zones/door",
                payload={"counts": {"person": 2}},
                retain=True,
            ),
            Event(kind="stats", camera=None, topic="stats", payload={"fps": 10.0}),
        ]
        stored = journal.append(events[:10]) + journal.append(events[10:])
        ids = {e.id for e in stored}
        assert sub.wait_for(lambda: {m["id"] for m in event_payloads(sub)} == ids, WAIT)
        assert publisher.wait_drained(WAIT)
        assert journal.backlog() == 0

        received = [
            (m.topic, json.loads(m.payload)) for m in sub.messages if m.topic != AVAILABILITY
        ]
        assert len(received) == len(stored)  # no duplicates without an outage
        by_id = {e.id: e for e in stored}
        for topic, payload in received:
            ev = by_id[payload["id"]]
            assert topic == f"{BASE}/{ev.topic}"
            assert payload == ev.envelope(DEVICE)
            assert {"v", "seq", "id", "ts", "frame_ts", "device", "camera", "kind"} <= set(payload)
            assert payload["device"] == DEVICE
        assert [p["seq"] for _, p in received] == [e.seq for e in stored]

    # Only the event marked retain is kept by the broker for a late subscriber.
    with Subscriber(mqtt_broker.host, mqtt_broker.port, f"{BASE}/cam1/#") as late:
        assert late.wait_for(lambda: len(late.messages) >= 1, WAIT)
        assert [(m.topic, m.retain) for m in late.messages] == [(f"{BASE}/cam1/zones/door", True)]
        assert late.json()[0]["id"] == stored[20].id


def test_availability_online_is_retained_and_stop_publishes_offline(
    mqtt_broker: Broker, make_publisher: MakePublisher
) -> None:
    publisher, journal = make_publisher(mqtt_broker.port)
    with Subscriber(mqtt_broker.host, mqtt_broker.port, AVAILABILITY) as sub:
        publisher.start()
        assert sub.wait_for(lambda: availability(sub) == [b"online"], WAIT)

        with Subscriber(mqtt_broker.host, mqtt_broker.port, AVAILABILITY) as late:
            assert late.wait_for(lambda: len(late.messages) >= 1, WAIT)
            assert late.messages[0].payload == b"online" and late.messages[0].retain

        journal.append(make_events(5))
        publisher.stop()
        # stop() drained the backlog before going offline.
        assert journal.backlog() == 0
        assert not publisher.connected
        assert sub.wait_for(lambda: availability(sub) == [b"online", b"offline"], WAIT)

    with Subscriber(mqtt_broker.host, mqtt_broker.port, f"{BASE}/#") as late:
        assert late.wait_for(lambda: len(late.messages) >= 1, WAIT)
        assert [(m.payload, m.retain) for m in late.messages] == [(b"offline", True)]


def test_broker_outage_loses_nothing_and_keeps_order(
    mqtt_broker_factory: BrokerFactory, make_publisher: MakePublisher
) -> None:
    broker = mqtt_broker_factory(persistence=True)
    relay = Relay(broker.host, broker.port)
    try:
        publisher, journal = make_publisher(relay.port)
        # A persistent session, so the subscriber misses nothing while the broker restarts,
        # whichever of it and the publisher reconnects first.
        with Subscriber(
            broker.host,
            broker.port,
            f"{BASE}/cam1/#",
            persistent=True,
            client_id=f"outage-{uuid.uuid4().hex[:8]}",
        ) as sub:
            publisher.start()
            assert publisher.wait_connected(WAIT)
            stored = journal.append(make_events(10))
            assert sub.wait_for(lambda: len(event_ids(sub)) >= 10, WAIT)
            assert publisher.wait_drained(WAIT)

            # Five more reach the broker but their PUBACKs are lost with the connection.
            relay.drop_replies()
            stored += journal.append(make_events(5, start=10))
            assert sub.wait_for(lambda: len(event_ids(sub)) >= 15, WAIT)
            broker.stop()
            for k in range(3):
                stored += journal.append(make_events(5, start=15 + 5 * k))
            assert journal.backlog() == 20
            relay.forward_replies()
            broker.start()

            ids = {e.id for e in stored}
            assert sub.wait_for(lambda: set(event_ids(sub)) == ids, WAIT), (
                f"missing {len(ids - set(event_ids(sub)))} events"
            )
            assert first_arrival_seqs(sub) == [e.seq for e in stored]
            assert publisher.wait_drained(WAIT)
            assert journal.backlog() == 0
            # The unacknowledged five were sent again: consumers must dedupe on id.
            assert sub.wait_for(lambda: len(event_ids(sub)) >= 30, WAIT)
            publisher.stop()
    finally:
        relay.close()
        broker.stop()


def test_broker_stopped_for_seconds_while_events_flow_loses_nothing(
    mqtt_broker_factory: BrokerFactory, make_publisher: MakePublisher
) -> None:
    broker = mqtt_broker_factory(persistence=True)
    publisher, journal = make_publisher(broker.port)
    stored: list[Event] = []
    stop = threading.Event()
    produced = threading.Condition()

    def produce() -> None:
        # about 200 events a second, like a busy camera, until told to stop
        k = 0
        while not stop.wait(0.005):
            batch = journal.append(make_events(1, start=k))
            with produced:
                stored.extend(batch)
                produced.notify_all()
            k += 1

    def stored_ids() -> set[str]:
        with produced:
            return {e.id for e in stored}

    producer = threading.Thread(target=produce)
    try:
        with Subscriber(
            broker.host,
            broker.port,
            f"{BASE}/cam1/#",
            persistent=True,
            client_id=f"flow-{uuid.uuid4().hex[:8]}",
        ) as sub:
            publisher.start()
            assert publisher.wait_connected(WAIT)
            producer.start()
            assert sub.wait_for(lambda: len(event_ids(sub)) >= 100, WAIT)
            broker.stop()
            # several seconds of outage: 600 more events at ~200/s pile up in the journal
            with produced:
                during = len(stored) + 600
                assert produced.wait_for(lambda: len(stored) >= during, 2 * WAIT)
            assert journal.backlog() >= 500
            broker.start()
            # the backlog is replayed while live events keep coming
            with produced:
                after = len(stored) + 200
                assert produced.wait_for(lambda: len(stored) >= after, WAIT)
            assert sub.wait_for(lambda: len(set(event_ids(sub))) >= after, 2 * WAIT)
            stop.set()
            producer.join()
            ids = stored_ids()
            assert sub.wait_for(lambda: set(event_ids(sub)) >= ids, WAIT)
            assert set(event_ids(sub)) == ids  # nothing invented, nothing lost
            assert first_arrival_seqs(sub) == [e.seq for e in stored]
            assert publisher.wait_drained(WAIT)
    finally:
        stop.set()
        if producer.is_alive():
            producer.join()
        broker.stop()


def test_broker_down_at_start_does_not_block_and_delivers_later(
    mqtt_broker_factory: BrokerFactory, make_publisher: MakePublisher
) -> None:
    broker = mqtt_broker_factory(persistence=True)
    try:
        with Subscriber(
            broker.host,
            broker.port,
            f"{BASE}/#",
            persistent=True,
            client_id=f"down-{uuid.uuid4().hex[:8]}",
        ) as sub:
            broker.stop()
            publisher, journal = make_publisher(broker.port)
            t0 = time.monotonic()
            publisher.start()
            # Not a speed check: start() must return without waiting for a broker at all.
            assert time.monotonic() - t0 < 1.0
            assert not publisher.connected
            stored = journal.append(make_events(5))
            assert journal.backlog() == 5

            broker.start()
            assert publisher.wait_connected(WAIT)
            ids = {e.id for e in stored}
            assert sub.wait_for(lambda: set(event_ids(sub)) == ids, WAIT)
            assert first_arrival_seqs(sub) == [e.seq for e in stored]
            assert publisher.wait_drained(WAIT)
            assert sub.wait_for(lambda: b"online" in availability(sub), WAIT)
            publisher.stop()
    finally:
        broker.stop()


def test_stop_without_broker_returns_and_keeps_events(make_publisher: MakePublisher) -> None:
    publisher, journal = make_publisher(free_port())
    publisher.start()
    journal.append(make_events(3))
    t0 = time.monotonic()
    publisher.stop(drain_timeout=5)
    # It does not sit out drain_timeout waiting for a broker that is not there.
    assert time.monotonic() - t0 < 5
    assert journal.backlog() == 3


def test_qos0_marks_delivered_once_written(
    mqtt_broker: Broker, make_publisher: MakePublisher
) -> None:
    publisher, journal = make_publisher(mqtt_broker.port, qos=0)
    with Subscriber(mqtt_broker.host, mqtt_broker.port, f"{BASE}/cam1/#", qos=0) as sub:
        publisher.start()
        assert publisher.wait_connected(WAIT)
        stored = journal.append(make_events(50))
        assert sub.wait_for(lambda: len(event_ids(sub)) == 50, WAIT)
        assert publisher.wait_drained(WAIT)
        assert first_arrival_seqs(sub) == [e.seq for e in stored]


def test_event_with_unpublishable_topic_is_dropped_loudly(
    mqtt_broker: Broker, make_publisher: MakePublisher, caplog: pytest.LogCaptureFixture
) -> None:
    publisher, journal = make_publisher(mqtt_broker.port)
    with Subscriber(mqtt_broker.host, mqtt_broker.port, f"{BASE}/cam1/#") as sub:
        publisher.start()
        assert publisher.wait_connected(WAIT)
        bad = Event(kind="new", camera="cam1", topic="cam1/+/events", payload={})
        stored = journal.append([*make_events(2), bad, *make_events(2, start=2)])
        good = {e.id for e in stored if e.id != bad.id}
        assert sub.wait_for(lambda: set(event_ids(sub)) == good, WAIT)
        assert publisher.wait_drained(WAIT)
    assert publisher.rejected == 1
    assert any(bad.id in r.getMessage() for r in caplog.records if r.levelname == "ERROR")


def test_stop_falls_back_to_last_will_when_offline_is_not_acknowledged(
    mqtt_broker: Broker, make_publisher: MakePublisher
) -> None:
    relay = Relay(mqtt_broker.host, mqtt_broker.port)
    try:
        publisher, journal = make_publisher(relay.port)
        with Subscriber(mqtt_broker.host, mqtt_broker.port, AVAILABILITY) as sub:
            publisher.start()
            assert sub.wait_for(lambda: availability(sub) == [b"online"], WAIT)
            # No PUBACK gets back: a full in-flight window stays outstanding and "offline"
            # queues behind it. A clean DISCONNECT now would leave "online" retained.
            relay.drop_replies()
            journal.append(make_events(MAX_INFLIGHT + 10))
            publisher.stop(drain_timeout=0.2)
            assert sub.wait_for(lambda: availability(sub)[-1:] == [b"offline"], WAIT)
    finally:
        relay.close()

    with Subscriber(mqtt_broker.host, mqtt_broker.port, AVAILABILITY) as late:
        assert late.wait_for(lambda: len(late.messages) >= 1, WAIT)
        assert [(m.payload, m.retain) for m in late.messages] == [(b"offline", True)]
    # Nothing unacknowledged was pruned.
    assert journal.backlog() == MAX_INFLIGHT + 10


_CHILD = """
import sys, threading
from edged.config.events import JournalConfig, MqttConfig
from edged.outputs.journal import Journal
from edged.outputs.mqtt import MqttPublisher
port, db = int(sys.argv[1]), sys.argv[2]
pub = MqttPublisher(MqttConfig(port=port, keepalive_s=5), "dev1", Journal(JournalConfig(path=db)))
pub.start()
if not pub.wait_connected(10):
    sys.exit("child: no connection")
threading.Event().wait()
"""


def test_killed_process_goes_offline_via_last_will(mqtt_broker: Broker, tmp_path: Path) -> None:
    stderr_path = tmp_path / "child.stderr"
    with (
        Subscriber(mqtt_broker.host, mqtt_broker.port, AVAILABILITY) as sub,
        open(stderr_path, "wb") as stderr,
    ):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        child = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(mqtt_broker.port), str(tmp_path / "child.db")],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            assert sub.wait_for(lambda: availability(sub) == [b"online"], WAIT), (
                stderr_path.read_text()
            )
            child.send_signal(signal.SIGKILL)
            assert child.wait(WAIT) == -signal.SIGKILL
            assert sub.wait_for(lambda: availability(sub) == [b"online", b"offline"], WAIT)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()

    with Subscriber(mqtt_broker.host, mqtt_broker.port, AVAILABILITY) as late:
        assert late.wait_for(lambda: len(late.messages) >= 1, WAIT)
        assert [(m.payload, m.retain) for m in late.messages] == [(b"offline", True)]
