"""A damaged journal file: moved aside, and what can still be read carried into a fresh one.

SQLite reports damage as ``database disk image is malformed`` (pages overwritten) or ``file
is not a database`` (a header that is not SQLite's); left in place, every read of the backlog
fails and nothing is delivered again, new events included. The file (with its ``-wal`` and
``-shm``) is renamed ``<name>.corrupt-<unix time>`` and its rows are read back by ``seq``:
ranges that read cleanly are kept whole, a range that fails is halved until the rows that
cannot be read are single ones, which are counted as lost.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

Row = tuple[object, ...]
# the columns of the events table, seq first
Reader = Callable[[sqlite3.Connection, int, int], list[Row]]

# what SQLite says when the file itself is damaged (not a full disk or a locked file)
_DAMAGE = ("malformed", "not a database", "file is encrypted", "database corrupt")
# rows read at once while the file reads cleanly
_CHUNK = 4096


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether ``exc`` says the file is damaged (so retrying cannot help)."""
    return isinstance(exc, sqlite3.DatabaseError) and any(m in str(exc).lower() for m in _DAMAGE)


@dataclass(frozen=True, slots=True)
class Salvage:
    moved_to: Path
    rows: list[Row]  # readable rows, by seq
    lost: int | None  # rows that could not be read; None: nothing could be read at all
    last_seq: int  # the highest seq known to have been assigned (0 if unknown)
    reason: str


def move_aside(path: Path) -> Path:
    """Rename the database and its WAL/shared-memory files; returns the new database path."""
    stamp = int(time.time())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    path.rename(target)
    return target


def salvage(path: Path, reason: str, read: Reader) -> Salvage:
    """Move ``path`` aside and read back what it holds; never raises for damage."""
    moved = move_aside(path)
    rows: list[Row] = []
    lost: int | None = None
    last_seq: int | None = 0
    try:
        conn = sqlite3.connect(f"file:{moved}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        log.error("journal %s: cannot open the damaged copy: %s", moved, exc)
        return Salvage(moved, rows, lost, 0, reason)
    try:
        last_seq, top = _last_seq(conn), _max_seq(conn)
        if last_seq is not None or top is not None:
            rows, lost = _read_range(conn, 1, max(last_seq or 0, top or 0), read)
    finally:
        conn.close()
    top_read = max((int(str(r[0])) for r in rows), default=0)
    return Salvage(moved, rows, lost, max(last_seq or 0, top_read), reason)


def _last_seq(conn: sqlite3.Connection) -> int | None:
    """The AUTOINCREMENT counter; None when it cannot be read."""
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    except sqlite3.DatabaseError:
        return None
    return int(row[0]) if row else 0


def _max_seq(conn: sqlite3.Connection) -> int | None:
    try:
        row = conn.execute("SELECT MAX(seq) FROM events").fetchone()
    except sqlite3.DatabaseError:
        return None
    return int(row[0]) if row and row[0] is not None else 0


def _read_range(conn: sqlite3.Connection, lo: int, hi: int, read: Reader) -> tuple[list[Row], int]:
    """Rows with lo ≤ seq ≤ hi, and how many single seqs could not be read."""
    rows: list[Row] = []
    lost = 0
    pending = [(lo, hi)]
    while pending:
        a, b = pending.pop()
        if b - a + 1 > _CHUNK:
            mid = (a + b) // 2
            pending += [(mid + 1, b), (a, mid)]
            continue
        try:
            rows += read(conn, a, b)
        except sqlite3.DatabaseError:
            if a == b:
                lost += _existed(conn, a)
            else:
                mid = (a + b) // 2
                pending += [(mid + 1, b), (a, mid)]
    rows.sort(key=lambda r: int(str(r[0])))
    return rows, lost


def _existed(conn: sqlite3.Connection, seq: int) -> int:
    """1 when a row of this seq is there but unreadable; 0 when the index says there is none
    (a gap left by delivery), as far as the damaged file can tell."""
    try:
        row = conn.execute("SELECT 1 FROM events WHERE seq = ?", (seq,)).fetchone()
    except sqlite3.DatabaseError:
        return 1
    return 0 if row is None else 1
