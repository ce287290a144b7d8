"""The durable event journal: every event is written here before it is published.

One SQLite database in WAL mode. A row lives from ``append`` until the publisher has the
broker's acknowledgement (``mark_delivered`` deletes it), so the table *is* the backlog.
``seq`` comes from an AUTOINCREMENT key, which SQLite never reuses, so it stays monotonic
across restarts even after every row has been pruned.

The backlog is bounded by count and by age. At the bound the journal either drops the oldest
rows (``drop_oldest``) or refuses new events (``pause``, after waiting up to ``pause_wait_s``
for room). Either way it is counted, logged and reported to subscribers by an ``overflow``
event, written in the same transaction as the batch that carries it. Losses not yet reported
are kept in a one-row table, so a restart reports them too.

A journal that cannot be written (a full disk, a read-only or failing device) is treated like
a bound: the events are refused and counted, the error is logged once and shown on ``stats``
and ``/healthz``, the cameras keep running, and once a write succeeds again the next
``overflow`` event (reason ``write_error``) says how many were lost. A damaged file is moved
aside and what it still holds carried into a fresh one (``journal_recovery``), at open or when
a read or write finds the damage; a ``journal_recovered`` event says how many were lost.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edged.config.events import JournalConfig
from edged.core import topics
from edged.core.event import Event
from edged.outputs import journal_recovery
from edged.outputs.journal_recovery import Row, is_damage

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
    payload  TEXT    NOT NULL,
    pending  INTEGER NOT NULL DEFAULT 1
)
"""
# ``pending``: one bit per output that has not yet acknowledged the row (a row is deleted
# when the last one has); the bits are fixed, so a journal survives a change of outputs.
# Files of earlier releases had one output, MQTT: the column's default.
OUTPUT_BITS = {"mqtt": 1, "nats": 2, "redis": 4}
# the outputs the journal's undelivered events were written for (a JSON list)
_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
# a damaged file that could not be moved aside is tried again after this long
_RETRY_RECOVERY_S = 30.0
# the age bound deletes by ts on every append: without an index that scans the whole backlog
_INDEX = "CREATE INDEX IF NOT EXISTS events_ts ON events (ts)"
# losses not yet reported by an overflow event; one row at most
_LOSSES = """
CREATE TABLE IF NOT EXISTS losses (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    dropped   INTEGER NOT NULL,
    refused   INTEGER NOT NULL,
    first_seq INTEGER,
    last_seq  INTEGER,
    reasons   TEXT    NOT NULL
)
"""
_SAVE_LOSSES = "INSERT OR REPLACE INTO losses VALUES (1, ?, ?, ?, ?, ?)"
_COLUMNS = "seq, id, kind, camera, topic, retain, ts, frame_ts, v, payload, pending"
_INSERT = (
    "INSERT INTO events (id, kind, camera, topic, retain, ts, frame_ts, v, payload, pending)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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

    def row(self) -> tuple[int, int, int | None, int | None, str]:
        return (
            self.dropped,
            self.refused,
            self.first_seq,
            self.last_seq,
            json.dumps(sorted(self.reasons or ())),
        )


def _disk_hint(path: Path) -> str:
    """What the disk says when SQLite only says "unable to open database file"."""
    try:
        st = os.statvfs(path.parent)
    except OSError as exc:
        return f" ({exc.strerror})"
    if st.f_flag & os.ST_RDONLY:
        return " (the disk is mounted read-only)"
    if st.f_bavail == 0:
        return " (no space left on the disk)"
    return ""


def _read_rows(conn: sqlite3.Connection, lo: int, hi: int) -> list[Row]:
    query = "SELECT {} FROM events WHERE seq BETWEEN ? AND ? ORDER BY seq"
    try:
        return conn.execute(query.format(_COLUMNS), (lo, hi)).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such column" not in str(exc):
            raise
        # a damaged file of an earlier release: its rows were all for MQTT
        columns = _COLUMNS.replace("pending", str(OUTPUT_BITS["mqtt"]))
        return conn.execute(query.format(columns), (lo, hi)).fetchall()


def _mask(outputs: Iterable[str]) -> int:
    mask = 0
    for name in outputs:
        if name not in OUTPUT_BITS:
            raise ValueError(f"unknown output {name!r} (known: {', '.join(OUTPUT_BITS)})")
        mask |= OUTPUT_BITS[name]
    return mask


def _run_with(outputs: Sequence[str]) -> str:
    return "without a broker (no outputs)" if not outputs else "with outputs " + ", ".join(outputs)


class JournalError(RuntimeError):
    """The journal cannot be opened (a full disk or a read-only folder at start)."""


class Journal:
    """Thread-safe, durable FIFO of undelivered events with a bounded backlog.

    ``append`` is called from pipeline threads; each output (``outputs``: "mqtt", "nats")
    reads and acknowledges through its own ``reader``, from its own thread, with its own
    cursor: a row is pruned once every output has acknowledged it, so a slow or absent output
    never holds another back and never loses what the others have taken. One connection
    serves them all under a lock. Every ``append`` wakes every reader, so each can block in
    ``wait_appended`` instead of polling. ``dropped`` (oldest rows deleted at the bound) and
    ``refused`` (events not accepted while paused) count every loss since the journal was
    opened; the bound counts rows, whichever outputs they still wait for.

    ``config`` (the ``journal:`` section) names the file and bounds the backlog: ``max_age_s``
    is measured on the events' ``ts``; ``overflow_every_s`` spaces ``overflow`` events, and
    losses in between are summed into the next one.
    """

    def __init__(
        self, config: JournalConfig, outputs: Sequence[str] = ("mqtt",), claim: bool = False
    ) -> None:
        """``outputs``: who takes the events (none: a run without a broker keeps them only
        up to the bounds). ``claim``: refuse (JournalError) a journal whose undelivered events
        were written by a run with outputs when this one has none, or the other way round, so
        a run without a broker never leaves its events for the next run with one to publish,
        and never adds its own to a broker's backlog. Between runs with different outputs, an
        output no longer configured gives up what it had not taken (logged), and a new one
        starts with the next event."""
        self.config = config
        self.path = config.path
        self.outputs = tuple(outputs)
        self._mask = _mask(self.outputs)
        self._bits = {name: OUTPUT_BITS[name] for name in self.outputs}
        self.dropped = 0
        self.refused = 0
        self.appended = threading.Event()
        self._wakers = [self.appended]
        self._lock = threading.Lock()
        # Notified when rows are pruned: a paused append waits on it for room.
        self._room = threading.Condition(self._lock)
        self._unreported = _Unreported()
        self._last_report = -float("inf")
        self._last_refusal_log = -float("inf")
        # why the journal cannot be written now (None: it can), and events lost meanwhile
        self.error: str | None = None
        self._lost_in_error = 0
        self._read_error: str | None = None
        self.recoveries = 0  # damaged files moved aside since start
        self._recovery_failed_at = -float("inf")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._backlog = 0
        self._waiting: dict[str, int] = dict.fromkeys(self._bits, 0)
        self._last_seq = 0
        try:
            self._connect()
            damage = self._check()
        except sqlite3.Error as exc:
            if not is_damage(exc):
                hint = _disk_hint(self.path)
                raise JournalError(f"journal {self.path}: cannot open: {exc}{hint}") from exc
            damage = str(exc)
        if damage is not None:
            self._recover(damage)
        else:
            self._load_losses()
        if claim and self.error is None:
            self._claim()
        if self._backlog:
            log.info(
                "journal %s: %d undelivered events from a previous run", self.path, self._backlog
            )

    def _claim(self) -> None:
        self._conn.execute(_META)
        rows = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        if "outputs" in rows:
            written_for: list[str] | None = json.loads(rows["outputs"])
        elif "destination" in rows:  # a journal of the release before several outputs
            written_for = [] if rows["destination"] == "none" else ["mqtt"]
        else:
            written_for = None
        if written_for is not None and self._backlog and bool(written_for) != bool(self.outputs):
            self._conn.close()
            raise JournalError(
                f"journal {self.path}: its {self._backlog} undelivered events were written by a "
                f"run {_run_with(written_for)}, and this run is {_run_with(self.outputs)}: move"
                " the file aside (or delete it), set another journal.path, or use edged run"
                " --dry-run for a run that keeps its events apart"
            )
        if written_for and self.outputs:
            self._give_up(sorted(set(written_for) - set(self.outputs)))
        self._conn.execute("BEGIN IMMEDIATE")
        self._conn.execute("DELETE FROM meta WHERE key = 'destination'")
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('outputs', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (json.dumps(list(self.outputs)),),
        )
        self._conn.execute("COMMIT")
        self._count()

    def _give_up(self, removed: list[str]) -> None:
        """Outputs no longer configured stop holding rows back."""
        for name in removed:
            bit = OUTPUT_BITS.get(name, 0)
            self._conn.execute("BEGIN IMMEDIATE")
            n = self._conn.execute(
                "UPDATE events SET pending = pending & ~? WHERE pending & ?", (bit, bit)
            ).rowcount
            gone = self._conn.execute("DELETE FROM events WHERE pending = 0").rowcount
            self._conn.execute("COMMIT")
            self._backlog -= gone
            if n:
                log.warning(
                    "journal %s: output %s is no longer configured; the %d event(s) it had not"
                    " yet taken are not kept for it",
                    self.path,
                    name,
                    n,
                )

    def _connect(self) -> None:
        # isolation_level=None: transactions are opened explicitly, so a batch is exactly one.
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            log.warning("journal %s: WAL unavailable, running in %s mode", self.path, mode)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        columns = {r[1] for r in self._conn.execute("PRAGMA table_info(events)").fetchall()}
        if "pending" not in columns:  # a file of the release before several outputs
            self._conn.execute("ALTER TABLE events ADD COLUMN pending INTEGER NOT NULL DEFAULT 1")
        self._conn.execute(_INDEX)
        self._conn.execute(_LOSSES)
        self._count()
        row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        self._last_seq = row[0] if row else 0

    def _count(self) -> None:
        self._backlog = self._conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        for name, bit in self._bits.items():
            self._waiting[name] = self._conn.execute(
                "SELECT COUNT(*) FROM events WHERE pending & ?", (bit,)
            ).fetchone()[0]

    def _load_losses(self) -> None:
        """Losses a previous run counted but did not report: reported by the next overflow
        event, and counted in this run's totals."""
        row = self._conn.execute(
            "SELECT dropped, refused, first_seq, last_seq, reasons FROM losses"
        ).fetchone()
        if row is None:
            return
        dropped, refused, first, last, reasons = row
        self._unreported = _Unreported(dropped, refused, first, last, set(json.loads(reasons)))
        self.dropped, self.refused = dropped, refused
        log.info(
            "journal %s: %d dropped and %d refused events of a previous run not yet reported;"
            " the next overflow event reports them",
            self.path,
            dropped,
            refused,
        )

    def _check(self) -> str | None:
        """SQLite's quick integrity check (every page read once): the damage found, or None."""
        problems = [r[0] for r in self._conn.execute("PRAGMA quick_check(5)").fetchall()]
        return None if problems == ["ok"] else "; ".join(problems)

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
            self._wake_all()
        return out

    def expire(self) -> list[Event]:
        """Apply the age bound now (``drop_oldest`` only; appends do it as they go); returns the
        ``overflow`` event written, if any."""
        if self.config.max_age_s is None or self.config.on_full != "drop_oldest":
            return []
        with self._lock:
            out = self._write([], time.time())
        if out:
            self._wake_all()
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
                self._save_losses()
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

    def _write(self, events: Sequence[Event], now: float, retry: bool = True) -> list[Event]:
        """``_transaction``, with what a failing journal needs: a damaged file is recovered and
        the write tried once more; any other failure refuses the events (counted, reported
        once writing works again). ``_transaction`` has rolled back whatever raised."""
        try:
            out = self._transaction(events, now)
        except sqlite3.Error as exc:
            if retry and is_damage(exc) and self._recover(str(exc)):
                return self._write(events, now, retry=False)
            return self._write_failed(events, exc)
        if self.error is not None:
            log.warning(
                "journal %s: writable again; %d event(s) were lost while it was not (the"
                " overflow event with reason write_error reports them)",
                self.path,
                self._lost_in_error,
            )
            self.error, self._lost_in_error = None, 0
        return out

    def _rollback(self) -> None:
        # SQLite has often rolled back already (a full disk): a second ROLLBACK would raise
        # "no transaction is active" and hide the real error
        # (a connection a failed recovery left closed has nothing to roll back)
        with contextlib.suppress(sqlite3.ProgrammingError):
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")

    def _write_failed(self, events: Sequence[Event], exc: sqlite3.Error) -> list[Event]:
        n = len(events)
        self.refused += n
        self._lost_in_error += n
        self._unreported.add_refused(n, "write_error")
        if self.error is None:
            log.error(
                "journal %s: cannot write (%s): new events are lost until it can; the cameras"
                " keep running",
                self.path,
                exc,
            )
            self.error = str(exc)
        return []

    def _save_losses(self) -> None:
        """Keep the unreported losses across a restart (outside a batch: pause refusals)."""
        try:
            self._conn.execute(_SAVE_LOSSES, self._unreported.row())
        except sqlite3.Error as exc:
            # a full disk: they stay in memory and go out with the next overflow event
            log.debug("journal %s: losses not saved: %s", self.path, exc)

    def _transaction(self, events: Sequence[Event], now: float) -> list[Event]:
        """Insert, enforce the bounds (drop_oldest), add an overflow report when one is due."""
        out: list[Event] = []
        backlog = self._backlog
        waiting = dict(self._waiting)
        unreported = replace(self._unreported)
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for ev in events:
                out.append(replace(ev, seq=self._insert(ev)))
            backlog += len(out)
            self._add(waiting, len(out))
            if self.config.on_full == "drop_oldest":
                if self.config.max_age_s is not None:
                    expired = self._delete(
                        "SELECT seq FROM events WHERE ts < ?",
                        (now - self.config.max_age_s,),
                        waiting,
                    )
                    backlog -= len(expired)
                    unreported.add_dropped(expired, "age")
                report_due = now - self._last_report >= self.config.overflow_every_s
                excess = backlog - self.config.max_backlog
                if report_due and (unreported or excess > 0):
                    excess += 1  # room for the overflow event itself
                if excess > 0:
                    oldest = self._delete(
                        "SELECT seq FROM events ORDER BY seq LIMIT ?", (excess,), waiting
                    )
                    backlog -= len(oldest)
                    unreported.add_dropped(oldest, "count")
            report_due = now - self._last_report >= self.config.overflow_every_s
            report = None
            if unreported and report_due:
                report = self._overflow(unreported, backlog + 1, now)
                out.append(replace(report, seq=self._insert(report)))
                backlog += 1
                self._add(waiting, 1)
                self._conn.execute("DELETE FROM losses")
            elif unreported.dropped != self._unreported.dropped:
                self._conn.execute(_SAVE_LOSSES, unreported.row())
            self._conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self.dropped += unreported.dropped - self._unreported.dropped
        self._backlog = backlog
        self._waiting = waiting
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
                self._mask,
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid

    def _add(self, waiting: dict[str, int], n: int) -> None:
        """``n`` new rows, each waiting for every output."""
        for name in waiting:
            waiting[name] += n

    def _delete(
        self, select: str, params: tuple[float | int, ...], waiting: dict[str, int]
    ) -> list[int]:
        rows = self._conn.execute(
            f"DELETE FROM events WHERE seq IN ({select}) RETURNING seq, pending", params
        ).fetchall()
        for name, bit in self._bits.items():
            waiting[name] -= sum(1 for _, pending in rows if pending & bit)
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

    def reader(self, output: str) -> JournalReader:
        """The view of one output: its undelivered events, acknowledged on its own."""
        if output not in self._bits:
            raise ValueError(
                f"journal {self.path}: {output!r} is not one of its outputs"
                f" ({', '.join(self.outputs) or 'none'})"
            )
        return JournalReader(self, output)

    def _output(self, output: str | None) -> tuple[str, int]:
        if output is None:
            if len(self.outputs) != 1:
                raise ValueError(f"journal {self.path}: name the output ({self.outputs})")
            output = self.outputs[0]
        return output, self._bits[output]

    def pending(
        self, after_seq: int = 0, limit: int = 500, output: str | None = None
    ) -> list[Event]:
        """Events with ``seq > after_seq`` that ``output`` (None: the only one) has not
        acknowledged, oldest first. A damaged file is recovered and read again; a read that
        fails otherwise gives nothing this time."""
        _, bit = self._output(output)
        query = f"SELECT {_COLUMNS} FROM events WHERE seq > ? AND pending & ? ORDER BY seq LIMIT ?"
        with self._lock:
            try:
                try:
                    rows = self._conn.execute(query, (after_seq, bit, limit)).fetchall()
                except sqlite3.DatabaseError as exc:
                    if not (is_damage(exc) and self._recover(str(exc))):
                        raise
                    rows = self._conn.execute(query, (after_seq, bit, limit)).fetchall()
            except sqlite3.Error as exc:
                return self._read_failed(exc)
            self._read_error = None
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
            for seq, id_, kind, camera, topic, retain, ts, frame_ts, v, payload, _ in rows
        ]

    def mark_delivered(self, seqs: Iterable[int], output: str | None = None) -> None:
        """``output`` (None: the only one) has these events; each is pruned once every
        output has it. Unknown, already acknowledged or pruned seqs are ignored."""
        name, bit = self._output(output)
        params = [(bit, s, bit) for s in seqs]
        if not params:
            return
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                taken = self._conn.executemany(
                    "UPDATE events SET pending = pending & ~? WHERE seq = ? AND pending & ?",
                    params,
                ).rowcount
                gone = self._conn.executemany(
                    "DELETE FROM events WHERE seq = ? AND pending = 0", [p[1:2] for p in params]
                ).rowcount
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                if is_damage(exc):
                    self._recover(str(exc))
                elif self.error is None:
                    # kept: they go out again after a restart (duplicates, never a loss)
                    log.error("journal %s: cannot prune delivered events: %s", self.path, exc)
                return
            except BaseException:
                self._rollback()
                raise
            self._waiting[name] -= taken
            self._backlog -= gone
            self._room.notify_all()

    def _read_failed(self, exc: sqlite3.Error) -> list[Event]:
        if self._read_error != str(exc):
            log.error("journal %s: cannot read the backlog: %s", self.path, exc)
        self._read_error = str(exc)
        return []

    def _recover(self, damage: str) -> bool:
        """Move the damaged file aside, carry what it holds into a fresh one (same seqs, so
        what is in flight is acknowledged as usual), and journal a ``journal_recovered``.
        False when that is not possible now (a read-only folder, a full disk): the journal is
        then in error, and recovery is tried again at most every ``_RETRY_RECOVERY_S``."""
        if time.monotonic() - self._recovery_failed_at < _RETRY_RECOVERY_S:
            return False
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        try:
            found = journal_recovery.salvage(self.path, damage, _read_rows)
        except OSError as exc:
            return self._recovery_failed(damage, f"it cannot be moved aside: {exc}")
        try:
            self._connect()
            seq = self._carry(found)
        except sqlite3.Error as exc:
            return self._recovery_failed(damage, f"a fresh journal cannot be written: {exc}")
        self.recoveries += 1
        self.error = None
        log.error(
            "journal %s was damaged (%s): moved to %s; %d undelivered event(s) carried into a"
            " fresh journal, %s lost (journal_recovered event seq=%d)",
            self.path,
            damage,
            found.moved_to,
            len(found.rows),
            "an unknown number" if found.lost is None else found.lost,
            seq,
        )
        self._wake_all()
        return True

    def _carry(self, found: journal_recovery.Salvage) -> int:
        """Write the salvaged rows and the ``journal_recovered`` event; returns its seq."""
        event = Event(
            kind="journal_recovered",
            camera=None,
            topic=topics.OVERFLOW,
            payload={
                "damage": found.reason,
                "moved_to": str(found.moved_to),
                "salvaged": len(found.rows),
                "lost": found.lost,
                "last_seq": found.last_seq,
            },
        )
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany(
                f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join('?' * 11)})",
                found.rows,
            )
            # seqs go on from the damaged file's, never below what it handed out
            self._conn.execute("DELETE FROM sqlite_sequence WHERE name = 'events'")
            self._conn.execute(
                "INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (found.last_seq,)
            )
            seq = self._insert(event)
            self._conn.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._count()
        self._last_seq = seq
        return seq

    def _recovery_failed(self, damage: str, why: str) -> bool:
        self._recovery_failed_at = time.monotonic()
        error = f"damaged ({damage}) and {why}"
        if self.error != error:
            log.error("journal %s is %s; new events are lost until it can be", self.path, error)
        self.error = error
        # whatever is at the path now (the damaged file, or a fresh one): reads and writes
        # fail with a clear error rather than on a closed connection
        with contextlib.suppress(sqlite3.Error):
            self._connect()
        return False

    def state(self) -> dict[str, Any]:
        """For ``stats`` and ``/healthz``: whether events can be kept now."""
        return {
            "state": "error" if self.error is not None else "ok",
            "error": self.error,
            "recoveries": self.recoveries,
        }

    def backlog(self, output: str | None = None) -> int:
        """How many events are stored and not yet delivered (to every output; to ``output``)."""
        with self._lock:
            return self._backlog if output is None else self._waiting[output]

    def backlogs(self) -> dict[str, int]:
        """Per output, how many events it has not yet acknowledged."""
        with self._lock:
            return dict(self._waiting)

    def last_seq(self) -> int:
        """The highest seq ever assigned by this journal file (0 if none)."""
        with self._lock:
            return self._last_seq

    def wait_appended(self, timeout: float | None = None) -> bool:
        """Block until ``append`` (or ``wake``) has happened since the last call; for one
        consumer (each reader has its own). Returns False on timeout."""
        return _wait(self.appended, timeout)

    def wake(self) -> None:
        """Wake every consumer blocked in ``wait_appended`` without appending anything."""
        self._wake_all()

    def _wake_all(self) -> None:
        for waker in self._wakers:
            waker.set()

    def close(self) -> None:
        """Close the database; the journal must not be used afterwards."""
        with self._lock:
            self._conn.close()


def _wait(flag: threading.Event, timeout: float | None) -> bool:
    fired = flag.wait(timeout)
    # Clearing after waking is safe: the consumer reads the table after this, and every
    # append commits before it sets the flag.
    flag.clear()
    return fired


class JournalReader:
    """One output's side of the journal: ``pending`` from its cursor, ``mark_delivered`` when
    its engine has acknowledged, ``wait_appended`` on its own wakeup."""

    def __init__(self, journal: Journal, output: str) -> None:
        self.journal = journal
        self.output = output
        self._appended = threading.Event()
        journal._wakers.append(self._appended)

    def pending(self, after_seq: int = 0, limit: int = 500) -> list[Event]:
        return self.journal.pending(after_seq, limit, self.output)

    def mark_delivered(self, seqs: Iterable[int]) -> None:
        self.journal.mark_delivered(seqs, self.output)

    def backlog(self) -> int:
        return self.journal.backlog(self.output)

    def expire(self) -> list[Event]:
        return self.journal.expire()

    def wait_appended(self, timeout: float | None = None) -> bool:
        return _wait(self._appended, timeout)

    def wake(self) -> None:
        """Wake this reader only."""
        self._appended.set()
