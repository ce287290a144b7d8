"""The Redis Streams output against redis-server processes this test starts: every journaled
event in the stream, in order, through a Redis that is down at start or killed mid-flow."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from edged.config.events import JournalConfig
from edged.config.outputs import RedisConfig
from edged.outputs.journal import Journal
from edged.outputs.redis_streams import RedisStreamPublisher
from tests.daemon import Daemon, camera_config
from tests.mqtt_helpers import Broker, Subscriber, free_port
from tests.nats_helpers import NatsServer, stream_messages
from tests.paths import CLIP
from tests.test_jetstream import Appender, events
from tests.waiting import poll


class RedisServer:
    """redis-server on a free port; with append-only fsync always, so that what it has
    answered survives a kill (Redis's durability, which edged relies on)."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            pytest.fail("redis-server is not installed: run make setup (Debian redis-server)")
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.cmd = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(folder),
            "--save", "", "--appendonly", "yes", "--appendfsync", "always",
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL)

        def ready() -> bool:
            """redis-server answers PING"""
            try:
                return bool(self.client().ping())
            except redis.ConnectionError:
                return False

        poll(ready, 20)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.kill()


def config(url: str, **extra: object) -> RedisConfig:
    return RedisConfig.model_validate({"url": url, "reconnect_wait_s": 0.2, **extra})


def entries(server: RedisServer, stream: str) -> list[dict[str, str]]:
    return [fields for _, fields in server.client().xrange(stream)]


def test_every_event_is_appended_in_order_with_its_fields(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    journal = Journal(JournalConfig(path=tmp_path / "events.db"), ("redis",))
    stored = journal.append(events(300))
    publisher = RedisStreamPublisher(
        config(redis_server.url, stream="edged:{device}"), "dev1", journal
    )
    publisher.start()
    try:
        assert publisher.wait_connected(10) and publisher.wait_drained(20)
    finally:
        publisher.stop()
    got = entries(redis_server, "edged:dev1")
    assert [int(e["seq"]) for e in got] == [ev.seq for ev in stored]
    for fields, ev in zip(got, stored, strict=True):
        body = json.loads(fields["event"])
        assert fields["id"] == ev.id == body["id"]
        assert (fields["device"], fields["camera"], fields["kind"]) == ("dev1", ev.camera, ev.kind)
    journal.close()


def test_a_stream_is_trimmed_to_about_its_maxlen(tmp_path: Path, redis_server: RedisServer):
    journal = Journal(JournalConfig(path=tmp_path / "events.db"), ("redis",))
    journal.append(events(3000))
    publisher = RedisStreamPublisher(config(redis_server.url, maxlen=500), "dev1", journal)
    publisher.start()
    assert publisher.wait_connected(10) and publisher.wait_drained(20)
    publisher.stop()
    length = redis_server.client().xlen("edged:events")
    # "~": Redis trims whole nodes (100 entries by default), never below maxlen
    assert 500 <= length < 1000, length
    journal.close()


def test_redis_down_at_start_or_killed_mid_flow_loses_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = RedisServer(tmp_path / "redis")
    journal = Journal(JournalConfig(path=tmp_path / "events.db"), ("redis",))
    publisher = RedisStreamPublisher(config(server.url, timeout_s=2), "dev1", journal)
    try:
        with caplog.at_level(logging.WARNING, logger="edged.outputs.redis_streams"):
            publisher.start()
            appender = Appender(journal, 800)
            poll(lambda: publisher.error is not None, 10)  # nobody there yet
            poll(lambda: journal.backlog() > 0, 10)  # kept meanwhile
            server.start()
            assert appender.halfway.wait(30)
            poll(lambda: publisher.connected and publisher.published > 0, 20)
            server.kill()
            poll(lambda: not publisher.connected, 20)
            server.start()
            appender.join()
            poll(lambda: journal.backlog() == 0, 60)
        assert "events wait in the journal" in caplog.text
        got = entries(server, "edged:events")
        # at least once: everything is there, and a repeat is the same event again
        assert {e["id"] for e in got} == {ev.id for ev in appender.stored}
        assert len({(e["id"], e["event"]) for e in got}) == len(appender.stored)
    finally:
        publisher.stop()
        server.kill()
        journal.close()


def test_a_daemon_with_a_broker_stream_and_redis_gives_each_every_event(
    tmp_path: Path, redis_server: RedisServer, mqtt_broker: Broker
) -> None:
    nats = NatsServer(tmp_path / "nats")
    nats.start()
    try:
        config = camera_config(
            tmp_path,
            {"uri": str(CLIP), "realtime": False},
            mqtt={"port": mqtt_broker.port},
            outputs={"nats": {"servers": [nats.url]}, "redis": {"url": redis_server.url}},
        )
        with Subscriber(mqtt_broker.host, mqtt_broker.port, "edged/test/#") as sub:
            daemon = Daemon(config)
            assert daemon.finish(120) == 0, daemon.stderr
            printed = {e["id"] for e in daemon.events}

            def on_broker() -> set[str]:
                return {
                    json.loads(m.payload)["id"]
                    for m in sub.messages
                    if m.payload.startswith(b"{")  # not the availability text
                }

            poll(lambda: printed <= on_broker(), 10)
        assert printed == {e["id"] for e in entries(redis_server, "edged:events")}
        assert printed == {json.loads(m.data)["id"] for m in stream_messages(nats.url, "EDGED")}
        # every output had it: nothing is left in the journal
        assert Journal(JournalConfig(path=tmp_path / "events.db"), ()).backlog() == 0
    finally:
        nats.kill()
