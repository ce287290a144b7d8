"""``edged store``'s database side on a real PostgreSQL: the schema, idempotent batches and the
intervals they feed."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest

from edged.store import database
from edged.store.database import BadEvent, parse
from tests.paths import ROOT

README = ROOT / "README.md"

T0 = 1_800_000_000.0  # a bucket boundary for 300 s buckets


def event(seq: int, kind: str, device: str = "d1", camera: str | None = "cam", **payload: Any):
    return {
        "v": 1,
        "seq": seq,
        "id": str(uuid.uuid4()),
        "ts": T0 + seq,
        "frame_ts": T0 + seq - 0.05,
        "device": device,
        "camera": camera,
        "kind": kind,
        **payload,
    }


def crossing(seq: int, direction: str, label: str = "person", line: str = "door", **kw: Any):
    return event(
        seq, "line_crossing", line=line, direction=direction, track_id=seq, label=label, **kw
    )


def test_migrations_run_once_even_with_workers_starting_together(pg_dsn: str) -> None:
    results: list[list[str]] = []

    def start() -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            results.append(database.migrate(conn))

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(map(len, results)) == [0, 0, 1]
    with psycopg.connect(pg_dsn) as conn:
        versions = conn.execute("SELECT version, name FROM edged_schema").fetchall()
    assert versions == [(1, "0001_events.sql")]


def test_a_batch_is_stored_once_and_feeds_the_intervals_once(pg_dsn: str) -> None:
    events = [
        crossing(1, "in"),
        crossing(2, "in"),
        crossing(3, "out"),
        crossing(4, "in", label="car"),
        crossing(400, "in"),  # the next 300 s interval
        event(5, "zone_occupancy", zone="queue", counts={"person": 2}, total=2),
        event(6, "zone_occupancy", zone="queue", counts={"person": 5}, total=5),
        event(7, "zone_occupancy", zone="queue", counts={"person": 1}, total=1),
        event(8, "camera_status", status="online", state="streaming", reason=None),
        event(9, "camera_status", status="reconnecting", state="backoff", reason="eof"),
        event(10, "stats", camera=None, cameras={}),
    ]
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        database.migrate(conn)
        assert database.write(conn, events, 300) == len(events)
        # the same batch again (a redelivery), and half of it in another: nothing changes
        assert database.write(conn, events, 300) == 0
        assert database.write(conn, [*events[:5], crossing(11, "out")], 300) == 1
        counts = conn.execute(
            "SELECT extract(epoch FROM bucket)::bigint, label, crossed_in, crossed_out"
            " FROM line_counts ORDER BY 1, 2"
        ).fetchall()
        assert counts == [
            (int(T0), "car", 1, 0),
            (int(T0), "person", 2, 2),
            (int(T0) + 300, "person", 1, 0),
        ]
        occupancy = conn.execute(
            "SELECT zone, reports, total_sum, total_max, last_total FROM zone_occupancy"
        ).fetchall()
        assert occupancy == [("queue", 3, 8, 5, 1)]
        status = conn.execute("SELECT camera, status, reason FROM camera_status").fetchall()
        assert status == [("cam", "reconnecting", "eof")]
        # an older status that arrives late does not overwrite the newer one
        database.write(conn, [event(3, "camera_status", status="online", state="x")], 300)
        status = conn.execute("SELECT status FROM camera_status").fetchall()
        assert status == [("reconnecting",)]
        stored = conn.execute("SELECT count(*), count(DISTINCT id) FROM events").fetchone()
        # the batch, the crossing of the third write and the late status
        assert stored == (len(events) + 2, len(events) + 2)
        body = conn.execute("SELECT body FROM events WHERE seq = 10").fetchone()
        assert body is not None and body[0]["kind"] == "stats" and body[0]["camera"] is None


SQL = re.findall(r"^```sql\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)


def test_the_readmes_queries_answer_on_stored_events(pg_dsn: str) -> None:
    now = time.time()
    events = [
        {**crossing(i, "in" if i % 3 else "out"), "ts": now - i, "frame_ts": now - i}
        for i in range(1, 30)
    ]
    events += [
        {**event(40 + i, "zone_occupancy", zone="queue", total=i), "ts": now, "frame_ts": now}
        for i in range(4)
    ]
    events.append({**event(50, "camera_status", status="offline", state="x"), "ts": now})
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        database.migrate(conn)
        database.write(conn, events, 300)
        answers = [conn.execute(query).fetchall() for query in SQL]
    assert len(SQL) >= 5
    crossings_per_hour, occupancy, offline, in_order, gaps = answers[:5]
    assert sum(r[4] + r[5] for r in crossings_per_hour) == 29
    assert [(r[3], r[4], r[5]) for r in occupancy] == [("queue", 3, 1.5)]
    assert [(r[1], r[2]) for r in offline] == [("cam", "offline")]
    assert in_order == []  # another device's name: the query runs, nothing of ours
    # seqs 1-29, 40-43 and 50: two gaps
    assert gaps == [("d1", 30, 39), ("d1", 44, 49)]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"online", "not JSON"),
        (b"[1]", "not a JSON object"),
        (json.dumps({"id": "x", "device": "d", "seq": 1, "kind": "k", "ts": 1}).encode(), "UUID"),
        (json.dumps({"device": "d", "seq": 1, "kind": "k"}).encode(), "no id, ts"),
        (
            json.dumps(
                {"id": str(uuid.uuid4()), "device": "d", "seq": "1", "kind": "k", "ts": 1}
            ).encode(),
            "seq '1' has the wrong type",
        ),
    ],
)
def test_what_is_not_an_event_is_named(data: bytes, problem: str) -> None:
    with pytest.raises(BadEvent, match=problem):
        parse(data)


def test_a_store_config_with_a_mistake_is_refused_with_its_place(tmp_path) -> None:
    import subprocess
    import sys

    path = tmp_path / "store.yaml"
    path.write_text("nats:\n  durable: edged store\npostgres:\n  dsn: host=x\nbucket_s: 5\n")
    out = subprocess.run(
        [sys.executable, "-m", "edged", "store", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert f"{path}:2:3: nats.durable: String should match pattern" in out.stderr, out.stderr
    assert f"{path}:5:1: bucket_s: Input should be greater than or equal to 60" in out.stderr
    path.write_text("postgres:\n  dsn: host=x\n")
    out = subprocess.run(
        [sys.executable, "-m", "edged", "store", str(path)], capture_output=True, text=True
    )
    assert out.returncode == 2 and "give one source: nats (JetStream) or mqtt" in out.stderr
