"""The NATS JetStream output against real nats-server processes: every journaled event in the
stream once, through restarts, a lost node of a cluster, and beside a broker that is down."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import pytest

from edged.config.events import JournalConfig, MqttConfig
from edged.config.outputs import NatsConfig
from edged.core.event import Event
from edged.outputs.jetstream import JetStreamPublisher
from edged.outputs.journal import Journal
from edged.outputs.mqtt import MqttPublisher
from tests.daemon import Daemon, camera_config
from tests.mqtt_helpers import Broker, free_port
from tests.nats_helpers import NatsServer, cluster, stream_messages
from tests.paths import CLIP
from tests.test_observability import get, samples, scrape
from tests.tls_certs import make_certs
from tests.waiting import poll


def events(n: int, start: int = 0) -> list[Event]:
    out = []
    for i in range(start, start + n):
        camera = "cam1" if i % 3 else "cam2"
        out.append(
            Event(
                kind="line_crossing",
                camera=camera,
                topic=f"{camera}/lines/door",
                payload={"line": "door", "direction": "in", "track_id": i, "label": "person"},
                frame_ts=1000.0 + i,
            )
        )
    return out


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


def nats_config(*urls: str, **extra: object) -> NatsConfig:
    return NatsConfig.model_validate(
        {"servers": list(urls), "reconnect_wait_s": 0.2, "ack_timeout_s": 2, **extra}
    )


def by_seq(messages: list) -> dict[int, list]:
    seen: dict[int, list] = {}
    for msg in messages:
        body = json.loads(msg.data)
        seen.setdefault(body["seq"], []).append((msg.subject, msg.headers, body))
    return seen


def test_every_event_is_in_the_stream_once_with_its_subject_and_id(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    journal = Journal(JournalConfig(path=tmp_path / "events.db"), ("nats",))
    stored = journal.append(events(300))
    stored += journal.append(
        [Event(kind="stats", camera=None, topic="stats", payload={"cameras": {}})]
    )
    publisher = JetStreamPublisher(nats_config(nats_server.url), "dev1", journal)
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        assert publisher.wait_drained(20), publisher.state()
    finally:
        publisher.stop()
    assert journal.backlog() == 0
    seen = by_seq(stream_messages(nats_server.url, "EDGED"))
    assert sorted(seen) == [e.seq for e in stored]
    for ev in stored:
        [(subject, headers, body)] = seen[ev.seq]
        assert subject == f"edged.dev1.{ev.camera or '_'}.{ev.kind}"
        assert headers["Nats-Msg-Id"] == ev.id == body["id"]
        assert body["device"] == "dev1"
    journal.close()


def test_a_replay_of_events_the_stream_has_is_dropped_by_it(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """What a lost PubAck or a restart sends again: the same ids, deduplicated by the stream."""
    first = Journal(JournalConfig(path=tmp_path / "a.db"), ("nats",))
    sent = first.append(events(50))
    publisher = JetStreamPublisher(nats_config(nats_server.url), "dev1", first)
    publisher.start()
    assert publisher.wait_connected(10) and publisher.wait_drained(20)
    publisher.stop()
    again = Journal(JournalConfig(path=tmp_path / "b.db"), ("nats",))
    again.append(sent)  # same ids, as a journal replaying them would send
    replay = JetStreamPublisher(nats_config(nats_server.url), "dev1", again)
    replay.start()
    assert replay.wait_connected(10) and replay.wait_drained(20)
    replay.stop()
    assert replay.duplicates == 50 and replay.published == 50
    assert len(stream_messages(nats_server.url, "EDGED")) == 50
    first.close()
    again.close()


class Appender:
    """Appends a batch of events every few ms from its own thread, like the analytics."""

    def __init__(self, journal: Journal, total: int, batch: int = 5) -> None:
        self.journal = journal
        self.total = total
        self.batch = batch
        self.stored: list[Event] = []
        self.halfway = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while len(self.stored) < self.total and not self._stop.wait(0.01):
            self.stored += self.journal.append(events(self.batch, len(self.stored)))
            if len(self.stored) >= self.total // 2:
                self.halfway.set()

    def join(self) -> None:
        self._thread.join(60)
        assert not self._thread.is_alive()


def test_a_nats_restart_while_events_flow_loses_nothing(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(JournalConfig(path=tmp_path / "events.db"), ("nats",))
    publisher = JetStreamPublisher(nats_config(nats_server.url), "dev1", journal)
    publisher.start()
    assert publisher.wait_connected(10)
    appender = Appender(journal, 600)
    assert appender.halfway.wait(30)
    with caplog.at_level(logging.WARNING, logger="edged.outputs.jetstream"):
        nats_server.kill()  # no goodbye: in-flight publishes lose their acks
        poll(lambda: not publisher.connected, 10)
        nats_server.start()
        appender.join()
        poll(lambda: journal.backlog() == 0, 60)
    publisher.stop()
    assert "NATS disconnected" in caplog.text
    seen = by_seq(stream_messages(nats_server.url, "EDGED"))
    assert sorted(seen) == [e.seq for e in appender.stored]
    assert all(len(copies) == 1 for copies in seen.values())
    journal.close()


def test_an_output_that_is_down_holds_back_neither_the_other_nor_its_own_events(
    tmp_path: Path, nats_server: NatsServer, mqtt_broker_factory
) -> None:
    journal = Journal(JournalConfig(path=tmp_path / "events.db"), ("mqtt", "nats"), claim=True)
    broker: Broker = mqtt_broker_factory(start=False, port=free_port())
    mqtt = MqttPublisher(
        MqttConfig(port=broker.port, reconnect_min_s=0.1, reconnect_max_s=0.2), "dev1", journal
    )
    jet = JetStreamPublisher(nats_config(nats_server.url), "dev1", journal)
    mqtt.start()
    jet.start()
    try:
        stored = journal.append(events(100))
        assert jet.wait_connected(10) and jet.wait_drained(20)
        assert journal.backlogs() == {"mqtt": 100, "nats": 0}
        assert journal.backlog() == 100  # kept for the broker
        broker.start()
        poll(lambda: journal.backlog() == 0, 20)
    finally:
        mqtt.stop()
        jet.stop()
        broker.stop()
    assert len(stream_messages(nats_server.url, "EDGED")) == len(stored)
    journal.close()


def test_a_missing_stream_that_may_not_be_created_is_reported_and_waited_for(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    journal = Journal(JournalConfig(path=tmp_path / "events.db"), ("nats",))
    journal.append(events(3))
    config = nats_config(nats_server.url, stream={"name": "ELSEWHERE", "create": False})
    publisher = JetStreamPublisher(config, "dev1", journal)
    with caplog.at_level(logging.ERROR, logger="edged.outputs.jetstream"):
        publisher.start()
        poll(lambda: publisher.error is not None, 10)
    publisher.stop()
    assert "NATS stream ELSEWHERE does not exist (outputs.nats.stream.create: false)" in (
        caplog.text
    )
    assert journal.backlog() == 3
    journal.close()


def test_a_cluster_node_killed_while_publishing_to_three_replicas_loses_nothing(
    tmp_path: Path,
) -> None:
    servers = cluster(tmp_path / "cluster")
    try:
        urls = [s.url for s in servers]
        journal = Journal(JournalConfig(path=tmp_path / "events.db"), ("nats",))
        config = nats_config(*urls, stream={"replicas": 3}, ack_timeout_s=3)
        publisher = JetStreamPublisher(config, "dev1", journal)
        publisher.start()
        assert publisher.wait_connected(30), publisher.state()
        appender = Appender(journal, 600)
        assert appender.halfway.wait(30)
        # the node edged is connected to is as good a victim as any: kill the first
        servers[0].kill()
        appender.join()
        poll(lambda: journal.backlog() == 0, 60)
        publisher.stop()
        seen = by_seq(stream_messages([s.url for s in servers[1:]], "EDGED"))
        assert sorted(seen) == [e.seq for e in appender.stored]
        assert all(len(copies) == 1 for copies in seen.values())
        journal.close()
    finally:
        for server in servers:
            server.kill()


def test_a_daemon_reports_each_output_on_healthz_metrics_and_stats(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """The broker is down, the stream is up: each output says so, and the stream is not held
    back by the broker's backlog."""
    port = free_port()
    config = camera_config(
        tmp_path,
        {"uri": str(CLIP), "realtime": False, "loop": True},
        mqtt={"port": free_port(), "reconnect_min_s": 0.2, "reconnect_max_s": 0.5},
        outputs={"nats": {"servers": [nats_server.url], "reconnect_wait_s": 0.2}},
        metrics={"port": port},
        stats_interval_s=0.5,
    )
    daemon = Daemon(config)
    try:

        def healthy_outputs() -> dict | None:
            """/healthz: nats up with nothing pending, mqtt down with a backlog"""
            try:
                status, body = get(f"http://127.0.0.1:{port}/healthz")
            except urllib.error.URLError:
                return None  # not listening yet
            outputs = json.loads(body).get("outputs", {}) if status == 200 else {}
            nats, mqtt = outputs.get("nats", {}), outputs.get("mqtt", {})
            return (
                outputs
                if nats.get("state") == "up"
                and mqtt.get("state") == "down"
                and mqtt.get("backlog", 0) > 0
                else None
            )

        poll(healthy_outputs, 60)
        families = poll(lambda: scrape(port), 10)
        up = families["edged_output_connected"]
        assert samples(up, "edged_output_connected", output="nats") == [1.0]
        assert samples(up, "edged_output_connected", output="mqtt") == [0.0]
        backlog = families["edged_output_backlog"]
        assert samples(backlog, "edged_output_backlog", output="mqtt")[0] > 0
        acks = families["edged_output_ack_seconds"]
        assert samples(acks, "edged_output_ack_seconds_count", output="nats")[0] > 0

        def stats() -> dict | None:
            """a stats event with both outputs"""
            for e in reversed(daemon.kinds("stats")):
                if e.get("outputs", {}).get("nats", {}).get("ack"):
                    return e
            return None

        outputs = poll(stats, 20)["outputs"]
        assert outputs["mqtt"]["connected"] is False and outputs["mqtt"]["backlog"] > 0
        assert outputs["nats"]["connected"] is True and outputs["nats"]["ack"]["n"] > 0
        # with the broker gone, stopping still takes under 5 s
        assert daemon.terminate(within=5.0) < 5.0
    finally:
        daemon.kill()
    printed = {e["id"] for e in daemon.events}
    in_stream = {json.loads(m.data)["id"] for m in stream_messages(nats_server.url, "EDGED")}
    assert printed == in_stream


def test_over_tls_with_a_client_certificate_and_refused_without_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "certs").mkdir()
    certs = make_certs(tmp_path / "certs")
    tls = ["--tlscert", str(certs.server_cert), "--tlskey", str(certs.server_key)]
    tls += ["--tlscacert", str(certs.ca), "--tlsverify"]
    server = NatsServer(tmp_path / "nats", tls=tls)
    server.start()
    try:
        url = f"tls://127.0.0.1:{server.port}"
        journal = Journal(JournalConfig(path=tmp_path / "events.db"), ("nats",))
        journal.append(events(20))
        client = {"ca": str(certs.ca), "cert": str(certs.client_cert), "key": str(certs.client_key)}
        publisher = JetStreamPublisher(nats_config(url, tls=client), "dev1", journal)
        publisher.start()
        assert publisher.wait_connected(10), publisher.state()
        assert publisher.wait_drained(20)
        publisher.stop()
        # the server asks for a client certificate: without one nothing is delivered, and
        # the events wait
        journal.append(events(5, 20))
        anonymous = JetStreamPublisher(nats_config(url, tls={"ca": str(certs.ca)}), "dev1", journal)
        with caplog.at_level(logging.WARNING, logger="edged.outputs.jetstream"):
            anonymous.start()
            poll(lambda: anonymous.error is not None, 20)
        anonymous.stop()
        assert not anonymous.connected and journal.backlog() == 5
        assert "NATS tls://127.0.0.1" in caplog.text, caplog.text
        journal.close()
    finally:
        server.stop()


def test_a_wrong_password_is_an_error_that_says_so_and_keeps_the_events(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = NatsServer(tmp_path / "nats", tls=["--user", "edged", "--pass", "right"])
    server.start()
    try:
        journal = Journal(JournalConfig(path=tmp_path / "events.db"), ("nats",))
        journal.append(events(3))
        config = nats_config(server.url, user="edged", password="wrong")
        publisher = JetStreamPublisher(config, "dev1", journal)
        with caplog.at_level(logging.ERROR, logger="edged.outputs.jetstream"):
            publisher.start()
            poll(lambda: "Authorization Violation" in caplog.text, 20)
        publisher.stop()
        assert journal.backlog() == 3
        journal.close()
        good = JetStreamPublisher(
            nats_config(server.url, user="edged", password="right"),
            "d",
            (journal := Journal(JournalConfig(path=tmp_path / "events.db"), ("nats",))),
        )
        good.start()
        assert good.wait_connected(10) and good.wait_drained(10)
        good.stop()
        journal.close()
    finally:
        server.stop()


def test_a_stream_deleted_under_the_publisher_is_made_again_and_nothing_is_lost(
    tmp_path: Path, nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    import asyncio

    import nats

    journal = Journal(JournalConfig(path=tmp_path / "events.db"), ("nats",))
    publisher = JetStreamPublisher(nats_config(nats_server.url), "dev1", journal)
    publisher.start()
    assert publisher.wait_connected(10)
    journal.append(events(5))
    assert publisher.wait_drained(10)

    async def delete() -> None:
        nc = await nats.connect(nats_server.url)
        await nc.jetstream().delete_stream("EDGED")
        await nc.close()

    asyncio.run(delete())
    with caplog.at_level(logging.INFO, logger="edged.outputs.jetstream"):
        stored = journal.append(events(5, 5))
        poll(lambda: journal.backlog() == 0, 20)
    publisher.stop()
    assert "NATS publish of seq=6 failed" in caplog.text
    assert "NATS: created stream EDGED" in caplog.text
    # the new stream has what came after: the old stream's events went with it
    seen = by_seq(stream_messages(nats_server.url, "EDGED"))
    assert sorted(seen) == [e.seq for e in stored]
    journal.close()


def test_stop_does_not_wait_long_for_a_stalled_server(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    import signal
    import time

    journal = Journal(JournalConfig(path=tmp_path / "events.db"), ("nats",))
    publisher = JetStreamPublisher(nats_config(nats_server.url, ack_timeout_s=30), "dev1", journal)
    publisher.start()
    assert publisher.wait_connected(10)
    assert nats_server.proc is not None
    nats_server.proc.send_signal(signal.SIGSTOP)  # up, but it answers nothing
    try:
        journal.append(events(5))
        poll(lambda: journal.backlog() == 5, 5)
        start = time.monotonic()
        publisher.stop(drain_timeout=0.5)
        assert time.monotonic() - start < 3.5
        assert journal.backlog() == 5  # kept for the next start
    finally:
        nats_server.proc.send_signal(signal.SIGCONT)
    journal.close()
