"""Past one box: edged daemons → JetStream or Mosquitto → ``edged store`` workers → PostgreSQL,
with every event in the database exactly once through the faults a fleet meets."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from edged.config.events import JournalConfig, MqttConfig
from edged.core.event import Event
from edged.outputs.jetstream import JetStreamPublisher
from edged.outputs.journal import Journal
from edged.outputs.mqtt import MqttPublisher
from tests.daemon import Daemon, camera_config
from tests.mqtt_helpers import Broker
from tests.nats_helpers import NatsServer, stream_messages
from tests.paths import CLIP
from tests.postgres_helpers import terminate_store_connections
from tests.test_jetstream import events as crossings
from tests.test_jetstream import nats_config
from tests.waiting import poll


class StoreWorker:
    """``edged store CONFIG`` as a process; its log is read on a thread."""

    def __init__(self, folder: Path, name: str, config: dict[str, Any]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{name}.yaml"
        self.path.write_text(yaml.safe_dump(config))
        self.log = ""
        self._cond = threading.Condition()
        self.proc: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edged", "store", str(self.path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._cond:
                self.log += line
                self._cond.notify_all()

    def logged(self, text: str, timeout: float = 30.0, after: int = 0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: text in self.log[after:], timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: it stops where it is, and what is sent to it meanwhile it holds unacked."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise AssertionError(f"edged store did not stop:\n{self.log}") from None
        return self.proc.returncode


@pytest.fixture
def workers() -> Iterator[list[StoreWorker]]:
    started: list[StoreWorker] = []
    yield started
    for worker in started:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.proc.kill()
            worker.proc.wait()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.kill()


def stored(dsn: str) -> list[tuple[str, str, int]]:
    """(id, device, seq) of every row; empty while the schema is not there yet."""
    with psycopg.connect(dsn) as conn:
        try:
            return conn.execute("SELECT id::text, device, seq FROM events").fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def wait_stored(dsn: str, n: int, timeout: float = 60.0) -> list[tuple[str, str, int]]:
    def enough() -> list[tuple[str, str, int]] | None:
        """the database holds the expected number of events"""
        rows = stored(dsn)
        return rows if len(rows) >= n else None

    return poll(enough, timeout)


def grows(
    dsn: str, by: int, workers: list[StoreWorker], flow: Flow | None = None, timeout: float = 60.0
) -> None:
    """The database gains ``by`` rows within ``timeout``; else fail with the workers' logs
    (and where the flow's events are: journaled, still in the journals)."""
    start = len(stored(dsn))
    try:
        poll(lambda: len(stored(dsn)) >= start + by, timeout)
    except AssertionError:
        logs = "\n".join(f"--- {w.path.stem}:\n{w.log[-4000:]}" for w in workers)
        where = "" if flow is None else f" of {flow.count()} journaled, {flow.backlogs()} unsent"
        raise AssertionError(
            f"the database stayed at {len(stored(dsn))} rows{where}\n{logs}"
        ) from None


def nats_store(name: str, server: NatsServer, dsn: str, **extra: Any) -> dict[str, Any]:
    return {
        "nats": {"servers": [server.url], "reconnect_wait_s": 0.2, "ack_wait_s": 2, **extra},
        "postgres": {"dsn": dsn, "reconnect_s": 0.2},
    }


def device_config(tmp_path: Path, device: str, **extra: Any) -> Path:
    folder = tmp_path / device
    folder.mkdir()
    config = camera_config(folder, {"uri": str(CLIP), "realtime": False}, device_id=device, **extra)
    data = yaml.safe_load(config.read_text())
    # a line and a zone, so that crossings and occupancy flow as well as objects
    data["cameras"]["cam"]["lines"] = {"mid": {"points": [[0.5, 0.0], [0.5, 1.0]]}}
    data["cameras"]["cam"]["zones"] = {"left": {"polygon": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}}
    config.write_text(yaml.safe_dump(data))
    return config


def run_devices(configs: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Run the daemons side by side through the clip; the events each journaled."""
    daemons = {path.parent.name: Daemon(path) for path in configs}
    for name, daemon in daemons.items():
        assert daemon.finish(120) == 0, f"{name}:\n{daemon.stderr}"
    return {name: daemon.events for name, daemon in daemons.items()}


def check_once_each(rows: list[tuple[str, str, int]], journaled: dict[str, list[dict]]) -> None:
    assert len(rows) == len({r[0] for r in rows})  # no id twice
    for device, events in journaled.items():
        assert sorted(r[2] for r in rows if r[1] == device) == sorted(e["seq"] for e in events)
        assert {r[0] for r in rows if r[1] == device} == {e["id"] for e in events}
    assert len(rows) == sum(map(len, journaled.values()))


def test_two_daemons_through_jetstream_into_two_store_workers_store_every_event_once(
    tmp_path: Path, pg_dsn: str, nats_server: NatsServer, workers: list[StoreWorker]
) -> None:
    for name in ("w1", "w2"):
        workers.append(StoreWorker(tmp_path / "store", name, nats_store(name, nats_server, pg_dsn)))
    outputs = {"nats": {"servers": [nats_server.url], "reconnect_wait_s": 0.2}}
    journaled = run_devices([device_config(tmp_path, d, outputs=outputs) for d in ("dev1", "dev2")])
    assert all(len(events) > 20 for events in journaled.values()), journaled
    kinds = {e["kind"] for events in journaled.values() for e in events}
    assert {"line_crossing", "zone_occupancy", "camera_status", "object"} <= kinds
    rows = wait_stored(pg_dsn, sum(map(len, journaled.values())))
    check_once_each(rows, journaled)
    # the stream holds each device's events in the order of its seq
    for device, events in journaled.items():
        seqs = [
            json.loads(m.data)["seq"]
            for m in stream_messages(nats_server.url, "EDGED", f"edged.{device}.>")
        ]
        assert seqs == sorted(e["seq"] for e in events)
    # what the workers say they stored adds up: shared, not copied
    for worker in workers:
        assert worker.stop() == 0
    shares = [int(w.log.split("store: stopped; ")[1].split(" ")[0]) for w in workers]
    assert sum(shares) == len(rows), shares
    with psycopg.connect(pg_dsn) as conn:
        totals = conn.execute(
            "SELECT device, sum(crossed_in + crossed_out) FROM line_counts GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert totals == [
        (d, sum(e["kind"] == "line_crossing" for e in journaled[d])) for d in sorted(journaled)
    ]


class Flow:
    """Two devices' journals and publishers (JetStream, or MQTT to ``broker``), appending
    events from a thread."""

    def __init__(
        self, tmp_path: Path, server: NatsServer | None = None, broker: Broker | None = None
    ) -> None:
        output = "nats" if server is not None else "mqtt"
        self.journals = {
            d: Journal(JournalConfig(path=tmp_path / f"{d}.db"), (output,)) for d in ("d1", "d2")
        }
        self.publishers: list[Any] = []
        for device, journal in self.journals.items():
            if server is not None:
                self.publishers.append(JetStreamPublisher(nats_config(server.url), device, journal))
            else:
                assert broker is not None
                config = MqttConfig(port=broker.port, reconnect_min_s=0.1, reconnect_max_s=0.5)
                self.publishers.append(MqttPublisher(config, device, journal))
        for p in self.publishers:
            p.start()
        self.stored: dict[str, list[Event]] = {d: [] for d in self.journals}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            for device, journal in self.journals.items():
                self.stored[device] += journal.append(crossings(4, len(self.stored[device])))

    def count(self) -> int:
        return sum(map(len, self.stored.values()))

    def backlogs(self) -> dict[str, int]:
        return {d: j.backlog() for d, j in self.journals.items()}

    def finish(self) -> dict[str, list[dict[str, Any]]]:
        self._stop.set()
        self._thread.join(10)
        for journal in self.journals.values():
            poll(lambda j=journal: j.backlog() == 0, 60)
        for p in self.publishers:
            p.stop()
        for journal in self.journals.values():
            journal.close()
        return {
            d: [{"id": e.id, "seq": e.seq} for e in events] for d, events in self.stored.items()
        }


def test_nats_restart_a_killed_worker_and_killed_database_connections_lose_nothing(
    tmp_path: Path, pg_dsn: str, nats_server: NatsServer, workers: list[StoreWorker]
) -> None:
    for name in ("w1", "w2"):
        config = nats_store(name, nats_server, pg_dsn, batch=50)
        workers.append(StoreWorker(tmp_path / "store", name, config))
    flow = Flow(tmp_path, nats_server)
    for worker in workers:
        assert worker.logged("store: consuming"), worker.log
    poll(lambda: len(stored(pg_dsn)) > 200, 30)
    # the stream's server goes away without a word, and comes back
    nats_server.kill()
    nats_server.start()
    poll(lambda: len(stored(pg_dsn)) > flow.count() // 2 + 200, 60)
    # a worker dies holding events it fetched and did not acknowledge (frozen first, so
    # that it surely holds some): after ack_wait_s they go to the other
    workers[0].freeze()
    grows(pg_dsn, 200, workers, flow)
    workers[0].kill()
    # the database drops every connection of the store, as a restart does
    assert terminate_store_connections(pg_dsn) >= 1
    mark = len(workers[1].log)
    assert workers[1].logged("database reachable again", after=mark), workers[1].log
    grows(pg_dsn, 200, workers, flow)
    journaled = flow.finish()
    rows = wait_stored(pg_dsn, sum(map(len, journaled.values())))
    check_once_each(rows, journaled)


def mqtt_store(name: str, broker: Broker, dsn: str) -> dict[str, Any]:
    return {
        "mqtt": {"host": broker.host, "port": broker.port, "client_id": f"store-{name}"},
        "postgres": {"dsn": dsn, "reconnect_s": 0.2},
    }


def test_mqtt_shared_subscription_workers_store_every_event_once_through_a_kill(
    tmp_path: Path, pg_dsn: str, mqtt_broker_factory: Any, workers: list[StoreWorker]
) -> None:
    broker: Broker = mqtt_broker_factory(persistence=True)
    for name in ("w1", "w2"):
        workers.append(StoreWorker(tmp_path / "store", name, mqtt_store(name, broker, pg_dsn)))
    for worker in workers:
        assert worker.logged("consuming $share/edged-store/edged/+/#"), worker.log
    mqtt = {"port": broker.port, "reconnect_min_s": 0.1, "reconnect_max_s": 0.5}
    configs = [device_config(tmp_path, d, mqtt=mqtt) for d in ("dev1", "dev2")]
    daemons = {path.parent.name: Daemon(path) for path in configs}
    # one worker is killed while the daemons publish; it comes back with its session
    assert daemons["dev1"].wait_for(lambda events: len(events) >= 10, 60)
    workers[0].kill()
    journaled = {}
    for name, daemon in daemons.items():
        assert daemon.finish(120) == 0, daemon.stderr
        journaled[name] = daemon.events
    workers[0].start()
    assert workers[0].logged("session resumed"), workers[0].log
    rows = wait_stored(pg_dsn, sum(map(len, journaled.values())))
    check_once_each(rows, journaled)
    for worker in workers:
        assert worker.stop() == 0


def test_over_mqtt_a_killed_worker_and_killed_database_connections_lose_nothing(
    tmp_path: Path, pg_dsn: str, mqtt_broker_factory: Any, workers: list[StoreWorker]
) -> None:
    broker: Broker = mqtt_broker_factory(persistence=True)
    for name in ("w1", "w2"):
        workers.append(StoreWorker(tmp_path / "store", name, mqtt_store(name, broker, pg_dsn)))
    for worker in workers:
        assert worker.logged("consuming $share/edged-store/edged/+/#"), worker.log
    flow = Flow(tmp_path, broker=broker)
    poll(lambda: len(stored(pg_dsn)) > 200, 30)
    # killed holding messages it had not acknowledged (frozen first, so that the broker
    # surely sent it some): its session keeps them for it
    workers[0].freeze()
    grows(pg_dsn, 200, workers, flow)
    workers[0].kill()
    workers[0].start()
    assert workers[0].logged("session resumed"), workers[0].log
    assert terminate_store_connections(pg_dsn) >= 1
    grows(pg_dsn, 200, workers, flow)
    journaled = flow.finish()
    rows = wait_stored(pg_dsn, sum(map(len, journaled.values())))
    check_once_each(rows, journaled)


def test_over_mqtt_plain_subscriptions_lose_nothing_when_the_broker_restarts(
    tmp_path: Path, pg_dsn: str, mqtt_broker_factory: Any, workers: list[StoreWorker]
) -> None:
    """Mosquitto restores a persistent session's plain subscription from its persistence file
    (not a shared one): the events published before the workers are back wait for them."""
    broker: Broker = mqtt_broker_factory(persistence=True)
    for name in ("w1", "w2"):
        config = mqtt_store(name, broker, pg_dsn)
        config["mqtt"]["group"] = None
        workers.append(StoreWorker(tmp_path / "store", name, config))
    for worker in workers:
        assert worker.logged("consuming edged/+/#"), worker.log
    flow = Flow(tmp_path, broker=broker)
    poll(lambda: len(stored(pg_dsn)) > 200, 30)
    broker.stop()
    broker.start()
    grows(pg_dsn, 400, workers, flow)
    journaled = flow.finish()
    rows = wait_stored(pg_dsn, sum(map(len, journaled.values())))
    check_once_each(rows, journaled)


def test_a_store_worker_stops_at_once_while_its_stream_is_away(
    tmp_path: Path, pg_dsn: str, workers: list[StoreWorker]
) -> None:
    away = NatsServer(tmp_path / "nats")  # never started: nothing listens on its port
    workers.append(StoreWorker(tmp_path / "store", "w1", nats_store("w1", away, pg_dsn)))
    assert workers[0].logged("Connect call failed"), workers[0].log
    start = time.monotonic()
    assert workers[0].stop() == 0
    assert time.monotonic() - start < 5, workers[0].log
