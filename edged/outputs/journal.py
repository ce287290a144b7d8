"""The durable event journal: every event is written here before it is published.

One SQLite database in WAL mode. A row lives from ``append`` until the publisher has the
broker's acknowledgement (``mark_delivered`` deletes it), so the table *is* the backlog.
``seq`` comes from an AUTOINCREMENT key, which SQLite never reuses, so it stays monotonic
across restarts even after every row has been pruned.

The backlog is bounded by count and by age. At the bound the journal either drops the oldest
rows (``drop_oldest``) or refuses new events (``pause``, after waiting up to ``pause_wait_s``
for room). Either way it is counted, logged and reported to subscribers by an ``overflow``
event, written in the same transaction as the batch that carries it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from edged.config.events import JournalConfig
from edged.core import topics
from edged.core.event import Event

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
# the age bound deletes by ts on every append: without an index that scans the whole backlog
_INDEX = "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)"
_COLUMNS = "seq, id, kind, camera, topic, retain, ts, frame_ts, v, payload"
_INSERT = (
    "INSERT INTO events (id, kind, camera, topic, retain, ts, frame_ts, v, payload)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(slots=True)
class _Unreported:
    """Losses not yet carried by an ``overflow`` event."""

    dropped: int = 0
    refused: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    reasons: set[str] | None = None

    def add_dropped(self, seqs: list[int], reason: str) -> None:
        if not seqs:
            return
        self.dropped += len(seqs)
        self.first_seq = min(seqs) if self.first_seq is None else min(self.first_seq, *seqs)
        self.last_seq = max(seqs) if self.last_seq is None else max(self.last_seq, *seqs)
        self.reasons = {*(self.reasons or ()), reason}

    def add_refused(self, n: int, reason: str) -> None:
        self.refused += n
        self.reasons = {*(self.reasons or ()), reason}

    def __bool__(self) -> bool:
        return bool(self.dropped or self.refused)


class Journal:
    """Thread-safe, durable FIFO of undelivered events with a bounded backlog.

    ``append`` is called from pipeline threads, ``pending``/``mark_delivered`` from the
    publisher thread; one connection serves them all under a lock. ``appended`` is set by every
    ``append`` so a single consumer can block in ``wait_appended`` instead of polling.
    ``dropped`` (oldest rows deleted at the bound) and ``refused`` (events not accepted while
    paused) count every loss since the journal was opened.

    ``config`` (the ``journal:`` section) names the file and bounds the backlog: ``max_age_s``
    is measured on the events' ``ts``; ``overflow_every_s`` spaces ``overflow`` events, and
    losses in between are summed into the next one.
    """

    def __init__(self, config: JournalConfig) -> None:
        self.config = config
        self.path = config.path
        self.dropped = 0
        self.refused = 0
        self.appended = threading.Event()
        self._lock = threading.Lock()
        # Notified when rows are pruned: a paused append waits on it for room.
        self._room = threading.Condition(self._lock)
        self._unreported = _Unreported()
        self._last_report = -float("inf")
        self._last_refusal_log = -float("inf")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are opened explicitly, so a batch is exactly one.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            log.warning("journal %s: WAL unavailable, running in %s mode", self.path, mode)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        self._conn.execute(_INDEX)
        self._backlog: int = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        self._last_seq: int = row[0] if row else 0
        if self._backlog:
            log.info(
                "journal %s: %d undelivered events from a previous run", self.path, self._backlog
            )

    def append(self, events: Sequence[Event]) -> list[Event]:
        """Make a batch durable in one transaction; return the events with ``seq`` assigned.

        Either the whole batch is stored or none of it (an exception propagates). At the bound,
        ``drop_oldest`` deletes the oldest rows to make room; ``pause`` waits up to
        ``pause_wait_s`` for the publisher to make room and then refuses the batch (returns
        ``[]``). An ``overflow`` event reporting losses may be appended after the batch and is
        part of the returned list.
        """
        if not events:
            return []
        with self._lock:
            now = time.time()
            if self.config.on_full == "pause" and not self._wait_for_room(len(events), now):
                return []
            out = self._write(events, now)
        if out:
            self.appended.set()
        return out

    def expire(self) -> list[Event]:
        """Apply the age bound now (``drop_oldest`` only; appends do it as they go); returns the
        ``overflow`` event written, if any."""
        if self.config.max_age_s is None or self.config.on_full != "drop_oldest":
            return []
        with self._lock:
            out = self._write([], time.time())
        if out:
            self.appended.set()
        return out

    # -- under the lock ---------------------------------------------------------------------

    def _wait_for_room(self, n: int, now: float) -> bool:
        """Pause policy: True once ``n`` more events fit within the bounds."""
        deadline = time.monotonic() + self.config.pause_wait_s
        while True:
            reason = self._full(n, now)
            if reason is None:
                return True
            left = deadline - time.monotonic()
            if left <= 0 or n > self.config.max_backlog:
                self.refused += n
                self._unreported.add_refused(n, reason)
                if time.monotonic() - self._last_refusal_log >= self.config.overflow_every_s:
                    self._last_refusal_log = time.monotonic()
                    log.warning(
                        "journal %s: backlog at its %s bound (%d events); refusing new events"
                        " until the broker takes some (%d refused in total)",
                        self.path,
                        reason,
                        self._backlog,
                        self.refused,
                    )
                return False
            self._room.wait(left)
            now = time.time()

    def _full(self, n: int, now: float) -> str | None:
        # room for the overflow event that the next append will carry, too
        if self._backlog + n + bool(self._unreported) > self.config.max_backlog:
            return "count"
        if self.config.max_age_s is None:
            return None
        oldest = self._oldest_ts()
        return "age" if oldest is not None and oldest < now - self.config.max_age_s else None

    def _oldest_ts(self) -> float | None:
        if not self._backlog:
            return None
        row = self._conn.execute("SELECT ts FROM events ORDER BY seq LIMIT 1").fetchone()
        return None if row is None else float(row[0])

    def _write(self, events: Sequence[Event], now: float) -> list[Event]:
        """Insert, enforce the bounds (drop_oldest), add an overflow report when one is due."""
        out: list[Event] = []
        backlog = self._backlog
        unreported = replace(self._unreported)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for ev in events:
                out.append(replace(ev, seq=self._insert(ev)))
            backlog += len(out)
            if self.config.on_full == "drop_oldest":
                if self.config.max_age_s is not None:
                    expired = self._delete(
                        "SELECT seq FROM events WHERE ts < ?", (now - self.config.max_age_s,)
                    )
                    backlog -= len(expired)
                    unreported.add_dropped(expired, "age")
                report_due = now - self._last_report >= self.config.overflow_every_s
                excess = backlog - self.config.max_backlog
                if report_due and (unreported or excess > 0):
                    excess += 1  # room for the overflow event itself
                if excess > 0:
                    oldest = self._delete("SELECT seq FROM events ORDER BY seq LIMIT ?", (excess,))
                    backlog -= len(oldest)
                    unreported.add_dropped(oldest, "count")
            report_due = now - self._last_report >= self.config.overflow_every_s
            report = None
            if unreported and report_due:
                report = self._overflow(unreported, backlog + 1, now)
                out.append(replace(report, seq=self._insert(report)))
                backlog += 1
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self.dropped += unreported.dropped - self._unreported.dropped
        self._backlog = backlog
        if out:
            self._last_seq = out[-1].seq
        if report is not None:
            self._unreported = _Unreported()
            self._last_report = now
            log.warning(
                "journal %s: backlog bound (%s) reached: %d oldest events dropped and %d refused"
                " since the last report (%d dropped, %d refused in total); overflow event seq=%d",
                self.path,
                ", ".join(report.payload["reason"]),
                report.payload["dropped"],
                report.payload["refused"],
                self.dropped,
                self.refused,
                out[-1].seq,
            )
        else:
            self._unreported = unreported
        return out

    def _insert(self, ev: Event) -> int:
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
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _delete(self, select: str, params: tuple[float | int, ...]) -> list[int]:
        rows = self._conn.execute(
            f"DELETE FROM events WHERE seq IN ({select}) RETURNING seq", params
        ).fetchall()
        return [r[0] for r in rows]

    def _overflow(self, u: _Unreported, backlog: int, now: float) -> Event:
        return Event(
            kind="overflow",
            camera=None,
            topic=topics.OVERFLOW,
            payload={
                "policy": self.config.on_full,
                "reason": sorted(u.reasons or ()),
                "dropped": u.dropped,
                "dropped_total": self.dropped + u.dropped - self._unreported.dropped,
                "refused": u.refused,
                "refused_total": self.refused,
                "first_seq": u.first_seq,
                "last_seq": u.last_seq,
                "backlog": backlog,
                "max_backlog": self.config.max_backlog,
                "max_age_s": self.config.max_age_s,
            },
            ts=now,
        )

    # -- the publisher's side ---------------------------------------------------------------

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
            self._room.notify_all()

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
