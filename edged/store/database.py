"""PostgreSQL: the schema's migrations, and a batch of events written in one transaction.

A batch is one statement: the events go in with ``ON CONFLICT (id) DO NOTHING``, and only
the rows that went in feed the line counts, the zone occupancy and the camera status, in
the same statement, so a replayed event (a redelivery after a crash, a lost ack) changes
nothing anywhere. The caller acknowledges its messages only once the statement has
returned (committed).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from importlib import resources
from typing import Any

import psycopg

log = logging.getLogger(__name__)

# one number for every store process: they take it before migrating, one at a time
_MIGRATION_LOCK = 0x65646765  # "edge"
_BOOK = """
CREATE TABLE IF NOT EXISTS edged_schema (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

_WRITE = """
WITH new AS (
    INSERT INTO events (id, device, seq, camera, kind, ts, frame_ts, body)
    SELECT id, device, seq, camera, kind, to_timestamp(ts), to_timestamp(frame_ts), body
    FROM unnest(
        %(id)s::uuid[], %(device)s::text[], %(seq)s::bigint[], %(camera)s::text[],
        %(kind)s::text[], %(ts)s::float8[], %(frame_ts)s::float8[], %(body)s::jsonb[]
    ) AS u (id, device, seq, camera, kind, ts, frame_ts, body)
    ON CONFLICT (id) DO NOTHING
    RETURNING device, camera, kind, ts, frame_ts, body
), crossings AS (
    INSERT INTO line_counts AS c (device, camera, line, bucket, label, crossed_in, crossed_out)
    SELECT device, camera, body->>'line',
           to_timestamp(floor(extract(epoch FROM coalesce(frame_ts, ts)) / %(bucket)s)
                        * %(bucket)s),
           body->>'label',
           count(*) FILTER (WHERE body->>'direction' = 'in'),
           count(*) FILTER (WHERE body->>'direction' = 'out')
    FROM new WHERE kind = 'line_crossing' AND camera IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5
    ON CONFLICT (device, camera, line, bucket, label) DO UPDATE
    SET crossed_in = c.crossed_in + excluded.crossed_in,
        crossed_out = c.crossed_out + excluded.crossed_out
    RETURNING 1
), occupancy AS (
    INSERT INTO zone_occupancy AS z
        (device, camera, zone, bucket, reports, total_sum, total_max, last_total, last_ts)
    SELECT device, camera, zone, bucket, count(*), sum(total), max(total),
           (array_agg(total ORDER BY at DESC))[1], max(at)
    FROM (
        SELECT device, camera, body->>'zone' AS zone, (body->>'total')::integer AS total,
               coalesce(frame_ts, ts) AS at,
               to_timestamp(floor(extract(epoch FROM coalesce(frame_ts, ts)) / %(bucket)s)
                            * %(bucket)s) AS bucket
        FROM new WHERE kind = 'zone_occupancy' AND camera IS NOT NULL
    ) AS o
    GROUP BY 1, 2, 3, 4
    ON CONFLICT (device, camera, zone, bucket) DO UPDATE
    SET reports = z.reports + excluded.reports,
        total_sum = z.total_sum + excluded.total_sum,
        total_max = greatest(z.total_max, excluded.total_max),
        last_total = CASE WHEN excluded.last_ts >= z.last_ts
                          THEN excluded.last_total ELSE z.last_total END,
        last_ts = greatest(z.last_ts, excluded.last_ts)
    RETURNING 1
), status AS (
    INSERT INTO camera_status AS s (device, camera, status, state, reason, ts)
    SELECT DISTINCT ON (device, camera)
           device, camera, body->>'status', body->>'state', body->>'reason', ts
    FROM new WHERE kind = 'camera_status' AND camera IS NOT NULL
    ORDER BY device, camera, ts DESC
    ON CONFLICT (device, camera) DO UPDATE
    SET status = excluded.status, state = excluded.state, reason = excluded.reason,
        ts = excluded.ts
    WHERE excluded.ts >= s.ts
    RETURNING 1
)
SELECT (SELECT count(*) FROM new)
"""

_FIELDS = ("id", "device", "seq", "camera", "kind", "ts", "frame_ts")


class BadEvent(ValueError):
    """A message that is not an edged event (it can never be stored)."""


def parse(data: bytes) -> dict[str, Any]:
    """An event message as published; raises ``BadEvent`` naming what is wrong."""
    try:
        body = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadEvent(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadEvent("not a JSON object")
    missing = [f for f in ("id", "device", "seq", "kind", "ts") if body.get(f) is None]
    if missing:
        raise BadEvent(f"no {', '.join(missing)}")
    try:
        uuid.UUID(str(body["id"]))
    except ValueError:
        raise BadEvent(f"id {body['id']!r} is not a UUID") from None
    numbers = (int, float)
    wanted: dict[str, tuple[type, ...]] = {
        "seq": (int,),
        "ts": numbers,
        "device": (str,),
        "kind": (str,),
        "camera": (str, type(None)),
        "frame_ts": (*numbers, type(None)),
    }
    for field, types in wanted.items():
        value = body.get(field)
        if not isinstance(value, types) or isinstance(value, bool):
            raise BadEvent(f"{field} {value!r} has the wrong type")
    return body


def migrate(conn: psycopg.Connection[Any]) -> list[str]:
    """Apply the package's migrations not yet in ``edged_schema``, in order, each in its own
    transaction under an advisory lock (several workers may start at once); returns the
    names applied."""
    files = sorted(
        (f for f in resources.files("edged.store.migrations").iterdir() if f.name.endswith(".sql")),
        key=lambda f: f.name,
    )
    applied = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(_BOOK)
        done = {row[0] for row in conn.execute("SELECT version FROM edged_schema").fetchall()}
        for f in files:
            version = int(f.name.split("_", 1)[0])
            if version in done:
                continue
            conn.execute(f.read_text())
            conn.execute(
                "INSERT INTO edged_schema (version, name) VALUES (%s, %s)", (version, f.name)
            )
            applied.append(f.name)
    for name in applied:
        log.info("database: applied migration %s", name)
    return applied


def write(conn: psycopg.Connection[Any], events: Sequence[dict[str, Any]], bucket_s: int) -> int:
    """Store ``events`` (parsed messages) in one statement, atomic on its own; ``conn`` is in
    autocommit mode. Returns how many were new."""
    if not events:
        return 0
    columns: dict[str, list[Any]] = {f: [] for f in (*_FIELDS, "body")}
    for ev in events:
        for f in _FIELDS:
            columns[f].append(ev.get(f))
        columns["body"].append(json.dumps(ev, separators=(",", ":")))
    # one statement on an autocommit connection is its own transaction, committed by the
    # server when the statement ends: a worker that freezes or dies cannot hold the interval
    # rows locked (with BEGIN … COMMIT, a worker stopped between the two kept every other
    # worker waiting on those rows for as long as it was stopped)
    row = conn.execute(_WRITE, {**columns, "bucket": bucket_s}).fetchone()
    assert row is not None
    return int(row[0])
