"""Events past one box: journal → JetStream → ``edged store`` workers → PostgreSQL.

    python -m benchmarks.fleet [--events 20000] [--outage-s 30] [--json]

A nats-server with JetStream is started here on free ports; PostgreSQL is the server named
by ``EDGED_TEST_POSTGRES`` (default ``host=127.0.0.1 user=postgres``), in a database made
for each run and dropped after.

- publish: ``--events`` appended in batches of 10 as fast as the journal takes them, timed
  until the stream has acknowledged every one (the journal's nats backlog is 0).
- store: that stream into PostgreSQL by 1, 2 and 4 ``edged store`` processes (a fresh
  durable consumer and database each time), events/s from the first row to the last.
- latency: 50 events/s with ``frame_ts`` = now, through a publisher and two workers; each
  row's ``stored_at`` (the database's clock, the same machine) minus its ``frame_ts``.
- outage: the stream's server down for ``--outage-s`` while 50 events/s are journaled; once
  it is back, how fast the backlog reaches the stream and the database.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import yaml

from benchmarks.events import free_port
from edged.config.events import JournalConfig
from edged.config.outputs import NatsConfig
from edged.core.event import Event
from edged.outputs.jetstream import JetStreamPublisher
from edged.outputs.journal import Journal

SERVER = os.environ.get("EDGED_TEST_POSTGRES", "host=127.0.0.1 user=postgres")
BATCH = 10


def wait(check: Any, timeout: float, what: str, every: float = 0.02) -> float:
    """Poll ``check`` until true; the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)
    return time.monotonic()


class Nats:
    def __init__(self, folder: Path) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.port, self.monitor = free_port(), free_port()
        self.cmd = [
            binary, "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor),
            "-js", "-sd", str(folder / "store"), "-l", str(folder / "nats.log"),
        ]  # fmt: skip
        self.url = f"nats://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.cmd)
        wait(self._healthy, 20, "nats-server")

    def _healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.monitor}/healthz"
            with urllib.request.urlopen(url, timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class Database:
    def __init__(self) -> None:
        self.name = f"edged_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        self.dsn = f"{SERVER} dbname={self.name}"

    def count(self) -> int:
        with psycopg.connect(self.dsn) as conn:
            try:
                row = conn.execute("SELECT count(*) FROM events").fetchone()
            except psycopg.errors.UndefinedTable:
                return 0
        return int(row[0]) if row else 0

    def drop(self) -> None:
        with psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (self.name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}"')


def workers(
    folder: Path, n: int, nats: Nats, dsn: str, durable: str, subject: str = "edged.>"
) -> list[subprocess.Popen[bytes]]:
    config = {
        "nats": {
            "servers": [nats.url],
            "durable": durable,
            "subject": subject,
            "reconnect_wait_s": 0.2,
        },
        "postgres": {"dsn": dsn, "reconnect_s": 0.2},
    }
    path = folder / f"{durable}.yaml"
    path.write_text(yaml.safe_dump(config))
    cmd = [sys.executable, "-m", "edged", "--log-level", "WARNING", "store", str(path)]
    return [subprocess.Popen(cmd) for _ in range(n)]


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(30)


def crossings(n: int, start: int, frame_ts: float | None = None) -> list[Event]:
    return [
        Event(
            kind="line_crossing",
            camera="cam1",
            topic="cam1/lines/door",
            payload={"line": "door", "direction": "in", "track_id": i, "label": "person"},
            frame_ts=time.time() if frame_ts is None else frame_ts,
        )
        for i in range(start, start + n)
    ]


def publisher(folder: Path, name: str, nats: Nats) -> tuple[Journal, JetStreamPublisher]:
    journal = Journal(JournalConfig(path=folder / f"{name}.db", max_backlog=1_000_000), ("nats",))
    config = NatsConfig(servers=[nats.url], reconnect_wait_s=0.2)
    return journal, JetStreamPublisher(config, name, journal)


def publish(folder: Path, nats: Nats, n: int) -> dict[str, Any]:
    """Live (the publisher running while events are appended), then a backlog (appended with
    the publisher stopped, then started): the publisher's own rate."""
    journal, pub = publisher(folder, "live", nats)
    pub.start()
    wait(lambda: pub.connected, 20, "the publisher's connection")
    start = time.monotonic()
    for i in range(0, n, BATCH):
        journal.append(crossings(BATCH, i))
    appended = time.monotonic()
    done = wait(lambda: journal.backlog() == 0, 300, "the stream to take every event")
    pub.stop()
    journal.close()
    journal, pub = publisher(folder, "backlog", nats)
    for i in range(0, n, BATCH):
        journal.append(crossings(BATCH, i))
    pub.start()
    started = time.monotonic()
    drained = wait(lambda: journal.backlog() == 0, 300, "the stream to take the backlog")
    pub.stop()
    journal.close()
    return {
        "events": n,
        "live_append_s": round(appended - start, 3),
        "live_acked_s": round(done - start, 3),
        "backlog_events_per_s": round(n / (drained - started)),
        "p50_ack_ms": (pub.ack_latency.summary() or {}).get("p50_ms"),
    }


def store(folder: Path, nats: Nats, n: int, count: int) -> dict[str, Any]:
    db = Database()
    try:
        procs = workers(folder, count, nats, db.dsn, f"bench-{count}")
        first = wait(lambda: db.count() > 0, 60, "the first row")
        last = wait(lambda: db.count() >= 2 * n, 600, f"{2 * n} rows", every=0.05)
        stop(procs)
        return {
            "workers": count,
            "events_per_s": round(n / (last - first)),
            "s": round(last - first, 2),
        }
    finally:
        db.drop()


def latency(folder: Path, nats: Nats, seconds: float) -> dict[str, Any]:
    db = Database()
    journal, pub = publisher(folder, "latency", nats)
    procs = workers(folder, 2, nats, db.dsn, "latency", "edged.latency.>")
    try:
        pub.start()
        wait(lambda: pub.connected, 20, "the publisher's connection")
        # the workers are up and consuming once a first event is stored; it is not counted
        journal.append(crossings(1, 0))
        wait(lambda: db.count() >= 1, 60, "the first row")
        sent = 1
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            journal.append(crossings(1, sent))
            sent += 1
            time.sleep(0.02)
        wait(lambda: db.count() >= sent, 60, "every row")
        with psycopg.connect(db.dsn) as conn:
            rows = conn.execute(
                "SELECT extract(epoch FROM stored_at - frame_ts) FROM events"
                " WHERE device = 'latency' AND seq > 1"
            ).fetchall()
        ms = np.array([float(r[0]) * 1000 for r in rows])
        return {
            "events": len(ms),
            "rate_per_s": 50,
            "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
        }
    finally:
        pub.stop()
        journal.close()
        stop(procs)
        db.drop()


def outage(folder: Path, nats: Nats, seconds: float) -> dict[str, Any]:
    db = Database()
    journal, pub = publisher(folder, "outage", nats)
    procs = workers(folder, 2, nats, db.dsn, "outage", "edged.outage.>")
    try:
        pub.start()
        wait(lambda: pub.connected, 20, "the publisher's connection")
        nats.stop()
        sent = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            journal.append(crossings(BATCH, sent))
            sent += BATCH
            time.sleep(BATCH / 50)
        backlog = journal.backlog()
        before = db.count()
        nats.start()
        back = time.monotonic()
        in_stream = wait(lambda: journal.backlog() == 0, 120, "the backlog in the stream")
        in_db = wait(lambda: db.count() >= before + backlog, 120, "the backlog in the database")
        return {
            "outage_s": seconds,
            "backlog": backlog,
            "to_stream_s": round(in_stream - back, 2),
            "to_database_s": round(in_db - back, 2),
            "drain_events_per_s": round(backlog / (in_db - back)),
        }
    finally:
        pub.stop()
        journal.close()
        stop(procs)
        db.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--outage-s", type=float, default=30.0)
    parser.add_argument("--latency-s", type=float, default=10.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        nats = Nats(folder)
        nats.start()
        try:
            results: dict[str, Any] = {
                "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "publish": publish(folder, nats, args.events),
                "store": [store(folder, nats, args.events, n) for n in (1, 2, 4)],
                "latency": latency(folder, nats, args.latency_s),
                "outage": outage(folder, nats, args.outage_s),
            }
        finally:
            nats.stop()
    if args.json:
        print(json.dumps(results, indent=2))
        return
    p = results["publish"]
    print(
        f"journal → JetStream acked: live, {p['events']} appended in {p['live_append_s']} s,"
        f" all acked {p['live_acked_s']} s; a backlog at {p['backlog_events_per_s']} events/s"
    )
    for s in results["store"]:
        print(f"stream → PostgreSQL, {s['workers']} worker(s): {s['events_per_s']} events/s")
    lat = results["latency"]
    print(
        f"frame → database row: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms"
        f" ({lat['events']} events)"
    )
    o = results["outage"]
    print(
        f"after a {o['outage_s']:.0f} s outage: {o['backlog']} events in the stream after"
        f" {o['to_stream_s']} s, in the database after {o['to_database_s']} s"
        f" ({o['drain_events_per_s']} events/s)"
    )


if __name__ == "__main__":
    main()
