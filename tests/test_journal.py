"""The SQLite event journal: seq, order, pruning, the backlog bound, atomic batches."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from edged.events.event import Event
from edged.events.journal import Journal


def make_events(n: int, camera: str = "cam1", start: int = 0) -> list[Event]:
    return [
        Event(
            kind="new",
            camera=camera,
            topic=f"{camera}/events",
            payload={"i": start + i, "box": [1.5, 2, 3, 4]},
            frame_ts=1000.0 + i,
        )
        for i in range(n)
    ]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "sub" / "dir" / "events.db")
    yield j
    j.close()


def test_append_assigns_consecutive_seqs_and_round_trips(journal: Journal) -> None:
    events = [
        *make_events(3),
        Event(kind="stats", camera=None, topic="stats", payload={"fps": 9.5}, retain=True),
    ]
    stored = journal.append(events)
    assert [e.seq for e in stored] == [1, 2, 3, 4]
    # Only seq differs from what was appended; everything else survives the database.
    assert stored == [replace(e, seq=s) for e, s in zip(events, [1, 2, 3, 4], strict=True)]
    assert journal.pending() == stored
    assert journal.last_seq() == 4
    assert journal.backlog() == 4
    assert journal.pending()[3].camera is None and journal.pending()[3].retain is True


def test_pending_is_in_seq_order_and_respects_after_and_limit(journal: Journal) -> None:
    stored = journal.append(make_events(5)) + journal.append(make_events(5, "cam2"))
    seqs = [e.seq for e in stored]
    assert [e.seq for e in journal.pending()] == seqs
    assert [e.seq for e in journal.pending(after_seq=seqs[3])] == seqs[4:]
    assert [e.seq for e in journal.pending(after_seq=seqs[3], limit=2)] == seqs[4:6]
    assert journal.pending(after_seq=seqs[-1]) == []


def test_mark_delivered_prunes_and_ignores_unknown_seqs(journal: Journal) -> None:
    stored = journal.append(make_events(5))
    journal.mark_delivered([stored[1].seq, stored[3].seq])
    assert [e.seq for e in journal.pending()] == [stored[0].seq, stored[2].seq, stored[4].seq]
    assert journal.backlog() == 3
    # A duplicate PUBACK (republished after a reconnect) or a row already dropped is harmless.
    journal.mark_delivered([stored[1].seq, 999])
    assert journal.backlog() == 3
    journal.mark_delivered(e.seq for e in stored)
    assert journal.backlog() == 0 and journal.pending() == []


def test_seq_stays_monotonic_across_reopen_after_everything_was_pruned(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    j = Journal(path)
    stored = j.append(make_events(4))
    j.mark_delivered(e.seq for e in stored)
    assert j.backlog() == 0
    j.close()

    j = Journal(path)
    assert j.last_seq() == 4
    assert [e.seq for e in j.append(make_events(2))] == [5, 6]
    j.close()


def test_undelivered_events_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    j = Journal(path)
    stored = j.append(make_events(3))
    j.mark_delivered([stored[0].seq])
    j.close()

    j = Journal(path)
    assert j.backlog() == 2
    assert j.pending() == stored[1:]
    j.close()


def test_backlog_bound_drops_oldest_counts_and_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    j = Journal(tmp_path / "events.db", max_backlog=5)
    stored = j.append(make_events(4))
    assert j.dropped == 0
    with caplog.at_level(logging.WARNING, logger="edged.events.journal"):
        stored += j.append(make_events(3, start=4))
    assert j.dropped == 2
    assert j.backlog() == 5
    assert [e.seq for e in j.pending()] == [e.seq for e in stored[2:]]
    assert any("dropped the 2 oldest" in r.getMessage() for r in caplog.records)

    # A batch larger than the bound keeps only its newest events.
    stored = j.append(make_events(8, start=7))
    assert j.dropped == 2 + 5 + 3
    assert [e.seq for e in j.pending()] == [e.seq for e in stored[3:]]
    j.close()


def test_batch_is_atomic_when_an_event_cannot_be_stored(journal: Journal) -> None:
    journal.append(make_events(2))
    bad = make_events(3, start=2)
    bad.insert(
        2, Event(kind="new", camera="cam1", topic="cam1/events", payload={"image": object()})
    )
    journal.appended.clear()
    with pytest.raises(TypeError):
        journal.append(bad)
    # The two rows inserted before the failure were rolled back, and their seqs with them.
    assert journal.backlog() == 2
    assert journal.last_seq() == 2
    assert [e.payload["i"] for e in journal.pending()] == [0, 1]
    assert not journal.appended.is_set()
    # The journal is still usable and seq continues without a gap.
    assert [e.seq for e in journal.append(make_events(1))] == [3]


def test_batch_is_atomic_when_the_database_fails(journal: Journal) -> None:
    journal.append(make_events(1))
    # A trigger makes the fourth insert of the batch fail inside SQLite itself.
    with sqlite3.connect(journal.path) as other:
        other.execute(
            "CREATE TRIGGER fail_on_poison BEFORE INSERT ON events"
            " WHEN NEW.kind = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned'); END"
        )
    other.close()
    batch = [*make_events(3), Event(kind="poison", camera="cam1", topic="cam1/events", payload={})]
    with pytest.raises(sqlite3.IntegrityError, match="poisoned"):
        journal.append(batch)
    assert journal.backlog() == 1
    assert len(journal.pending()) == 1
    assert journal.last_seq() == 1


def test_wait_appended_wakes_on_append_from_another_thread(journal: Journal) -> None:
    assert journal.wait_appended(0) is False
    t = threading.Thread(target=journal.append, args=(make_events(1),))
    t.start()
    assert journal.wait_appended(5) is True
    t.join()
    # The flag was consumed.
    assert journal.wait_appended(0) is False


def test_concurrent_appends_and_deliveries_stay_consistent(journal: Journal) -> None:
    def producer(cam: str) -> None:
        for k in range(20):
            journal.append(make_events(5, cam, start=5 * k))

    threads = [threading.Thread(target=producer, args=(f"cam{c}",)) for c in range(4)]
    for t in threads:
        t.start()
    delivered: list[int] = []
    while any(t.is_alive() for t in threads) or journal.backlog():
        batch = journal.pending(after_seq=delivered[-1] if delivered else 0, limit=50)
        if batch:
            journal.mark_delivered(e.seq for e in batch)
            delivered += [e.seq for e in batch]
        else:
            journal.wait_appended(0.05)
    for t in threads:
        t.join()
    assert delivered == list(range(1, 401))
    assert journal.backlog() == 0
