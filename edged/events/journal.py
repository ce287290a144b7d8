"""The durable event journal: every event is written here before it is published.

One SQLite database in WAL mode. A row lives from ``append`` until the publisher has the
broker's acknowledgement (``mark_delivered`` deletes it), so the table *is* the backlog.
``seq`` comes from an AUTOINCREMENT key, which SQLite never reuses, so it stays monotonic
across restarts even after every row has been pruned.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from edged.events.event import Event

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    id       TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    camera   TEXT,
    topic    TEXT    NOT NULL,
    retain   INTEGER NOT NULL,
    ts       REAL    NOT NULL,
    frame_ts REAL,
    v        INTEGER NOT NULL,
    payload  TEXT    NOT NULL
)
"""
_COLUMNS = "seq, id, kind, camera, topic, retain, ts, frame_ts, v, payload"
_INSERT = (
    "INSERT INTO events (id, kind, camera, topic, retain, ts, frame_ts, v, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class Journal:
    """Thread-safe, durable FIFO of undelivered events with a bounded backlog.

    ``append`` is called from pipeline threads, ``pending``/``mark_delivered`` from the
    publisher thread; one connection serves them all under a lock. ``appended`` is set by every
    ``append`` so a single consumer can block in ``wait_appended`` instead of polling.
    """

    def __init__(self, path: str | Path, max_backlog: int = 100_000) -> None:
        if max_backlog < 1:
            raise ValueError(f"max_backlog must be >= 1, got {max_backlog}")
        self.path = Path(path)
        self.max_backlog = max_backlog
        self.dropped = 0
        self.appended = threading.Event()
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are opened explicitly, so a batch is exactly one.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            log.warning("journal %s: WAL unavailable, running in %s mode", self.path, mode)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        self._backlog: int = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        self._last_seq: int = row[0] if row else 0
        if self._backlog:
            log.info(
                "journal %s: %d undelivered events from a previous run", self.path, self._backlog
            )

    def append(self, events: Sequence[Event]) -> list[Event]:
        """Make a batch durable in one transaction; return the events with ``seq`` assigned.

        Either the whole batch is stored or none of it (the exception propagates). When the
        backlog would exceed ``max_backlog`` the oldest undelivered rows are deleted, counted in
        ``dropped`` and logged.
        """
        if not events:
            return []
        out: list[Event] = []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for ev in events:
                    cur = self._conn.execute(
                        _INSERT,
                        (
                            ev.id,
                            ev.kind,
                            ev.camera,
                            ev.topic,
                            int(ev.retain),
                            ev.ts,
                            ev.frame_ts,
                            ev.v,
                            json.dumps(ev.payload, separators=(",", ":")),
                        ),
                    )
                    out.append(replace(ev, seq=cur.lastrowid))
                excess = self._backlog + len(out) - self.max_backlog
                if excess > 0:
                    self._conn.execute(
                        "DELETE FROM events WHERE seq IN"
                        " (SELECT seq FROM events ORDER BY seq LIMIT ?)",
                        (excess,),
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            excess = max(excess, 0)
            self._backlog += len(out) - excess
            self._last_seq = out[-1].seq
            self.dropped += excess
        if excess:
            log.warning(
                "journal %s: backlog above %d, dropped the %d oldest undelivered events"
                " (%d dropped in total)",
                self.path,
                self.max_backlog,
                excess,
                self.dropped,
            )
        self.appended.set()
        return out

    def pending(self, after_seq: int = 0, limit: int = 500) -> list[Event]:
        """Undelivered events with ``seq > after_seq``, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [
            Event(
                kind=kind,
                camera=camera,
                topic=topic,
                payload=json.loads(payload),
                frame_ts=frame_ts,
                retain=bool(retain),
                id=id_,
                ts=ts,
                seq=seq,
                v=v,
            )
            for seq, id_, kind, camera, topic, retain, ts, frame_ts, v, payload in rows
        ]

    def mark_delivered(self, seqs: Iterable[int]) -> None:
        """Prune delivered events. Unknown or already pruned seqs are ignored."""
        params = [(s,) for s in seqs]
        if not params:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self._conn.executemany("DELETE FROM events WHERE seq = ?", params)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._backlog -= cur.rowcount

    def backlog(self) -> int:
        """How many events are stored and not yet delivered."""
        with self._lock:
            return self._backlog

    def last_seq(self) -> int:
        """The highest seq ever assigned by this journal file (0 if none)."""
        with self._lock:
            return self._last_seq

    def wait_appended(self, timeout: float | None = None) -> bool:
        """Block until ``append`` (or ``wake``) has happened since the last call; meant for one
        consumer. Returns False on timeout."""
        fired = self.appended.wait(timeout)
        # Clearing after waking is safe: the consumer reads the table after this, and every
        # append commits before it sets the flag.
        self.appended.clear()
        return fired

    def wake(self) -> None:
        """Wake a consumer blocked in ``wait_appended`` without appending anything."""
        self.appended.set()

    def close(self) -> None:
        """Close the database; the journal must not be used afterwards."""
        with self._lock:
            self._conn.close()
