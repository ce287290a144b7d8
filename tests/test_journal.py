"""The SQLite event journal: seq, order, pruning, the backlog bound, atomic batches."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from edged.config.events import JournalConfig
from edged.core.event import Event
from edged.outputs.journal import Journal, JournalError

# the least backlog bound a config may set
BOUND = 100


def journal_at(path: Path, **bounds: object) -> Journal:
    return Journal(JournalConfig.model_validate({"path": path, **bounds}))


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
    j = journal_at(tmp_path / "sub" / "dir" / "events.db")
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
    j = journal_at(path)
    stored = j.append(make_events(4))
    j.mark_delivered(e.seq for e in stored)
    assert j.backlog() == 0
    j.close()

    j = journal_at(path)
    assert j.last_seq() == 4
    assert [e.seq for e in j.append(make_events(2))] == [5, 6]
    j.close()


def test_undelivered_events_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    j = journal_at(path)
    stored = j.append(make_events(3))
    j.mark_delivered([stored[0].seq])
    j.close()

    j = journal_at(path)
    assert j.backlog() == 2
    assert j.pending() == stored[1:]
    j.close()


def for_run(path: Path, destination: str) -> Journal:
    return Journal(JournalConfig(path=path), () if destination == "none" else ("mqtt",), claim=True)


@pytest.mark.parametrize(("first", "then"), [("none", "broker"), ("broker", "none")])
def test_a_backlog_written_for_one_kind_of_run_is_refused_by_the_other(
    tmp_path: Path, first: str, then: str
) -> None:
    path = tmp_path / "events.db"
    j = for_run(path, first)
    j.append(make_events(3))
    j.close()
    with pytest.raises(JournalError, match="its 3 undelivered events were written by a run"):
        for_run(path, then)
    # nothing was lost, and the run it was written for still takes it
    j = for_run(path, first)
    assert j.backlog() == 3
    j.close()


def test_an_empty_journal_changes_hands_and_an_unmarked_one_is_taken(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    j = for_run(path, "broker")
    j.mark_delivered([e.seq for e in j.append(make_events(2))])
    j.close()
    j = for_run(path, "none")  # nothing undelivered: nothing to mix up
    j.close()
    j = for_run(path, "broker")
    j.append(make_events(1))
    j.close()
    with pytest.raises(JournalError, match="written by a run with outputs mqtt"):
        for_run(path, "none")
    # a journal of an earlier release, with no mark, is the run's that opens it
    old = tmp_path / "old.db"
    j = journal_at(old)
    j.append(make_events(2))
    j.close()
    j = for_run(old, "broker")
    assert j.backlog() == 2
    j.close()


def overflows(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind == "overflow"]


def test_backlog_bound_drops_oldest_counts_warns_and_reports(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    j = journal_at(tmp_path / "events.db", max_backlog=BOUND, max_age_s=None, overflow_every_s=0)
    stored = j.append(make_events(BOUND - 1))
    assert j.dropped == 0 and not overflows(stored)
    with caplog.at_level(logging.WARNING, logger="edged.outputs.journal"):
        batch = j.append(make_events(3, start=BOUND - 1))
    # BOUND - 1 + 3 new + 1 overflow event in a bound of BOUND: the 3 oldest go
    assert j.dropped == 3
    assert j.backlog() == BOUND
    (report,) = overflows(batch)
    assert report.seq == batch[-1].seq and report.camera is None and report.topic == "overflow"
    assert report.payload == {
        "policy": "drop_oldest",
        "reason": ["count"],
        "dropped": 3,
        "dropped_total": 3,
        "refused": 0,
        "refused_total": 0,
        "first_seq": 1,
        "last_seq": 3,
        "backlog": BOUND,
        "max_backlog": BOUND,
        "max_age_s": None,
    }
    assert [e.seq for e in j.pending()] == list(range(4, BOUND + 4))
    assert any("3 oldest events dropped" in r.getMessage() for r in caplog.records)

    # A batch larger than the bound keeps only its newest events (and the report).
    stored = j.append(make_events(BOUND + 3, start=BOUND + 2))
    assert j.dropped == 3 + BOUND + 4
    assert [e.seq for e in j.pending()] == [e.seq for e in stored[-BOUND:]]
    assert stored[-1].payload["dropped"] == BOUND + 4
    assert stored[-1].payload["dropped_total"] == BOUND + 7
    j.close()


def test_overflow_reports_are_spaced_and_sum_the_losses_between(tmp_path: Path) -> None:
    j = journal_at(tmp_path / "events.db", max_backlog=BOUND, overflow_every_s=3600)
    first = j.append(make_events(BOUND + 1))
    assert [e.payload["dropped"] for e in overflows(first)] == [2]
    # Within the interval: dropped and counted, no second report yet.
    later = j.append(make_events(3, start=BOUND + 1))
    assert not overflows(later)
    assert j.dropped == 5
    assert j.backlog() == BOUND
    j.close()

    # Reopened, the 3 drops not yet reported are still known, and reported at once.
    j = journal_at(tmp_path / "events.db", max_backlog=BOUND, overflow_every_s=3600)
    assert j.dropped == 3 and j.backlog() == BOUND
    j.mark_delivered([e.seq for e in j.pending(limit=2)])  # room for one and the report
    (report,) = overflows(j.append(make_events(1, start=BOUND + 4)))
    assert report.payload["dropped"] == 3
    j.close()


def test_age_bound_drops_old_events_on_append_and_on_expire(tmp_path: Path) -> None:
    j = journal_at(tmp_path / "events.db", max_age_s=60, overflow_every_s=0)
    now = time.time()
    old = [replace(e, ts=now - 120) for e in make_events(3)]
    fresh = make_events(2, start=3)
    stored = j.append(old + fresh)
    (report,) = overflows(stored)
    assert report.payload["reason"] == ["age"] and report.payload["dropped"] == 3
    assert [e.payload.get("i") for e in j.pending()] == [3, 4, None]

    # expire() applies the bound without an append (the publisher calls it on connect): here
    # to events stored under a looser bound by an earlier run.
    j.mark_delivered(e.seq for e in j.pending())
    j.close()
    loose = journal_at(tmp_path / "events.db", max_age_s=3600)
    loose.append([replace(e, ts=now - 120) for e in make_events(2, start=5)])
    loose.close()
    j = journal_at(tmp_path / "events.db", max_age_s=60, overflow_every_s=0)
    assert j.backlog() == 2
    (report,) = j.expire()
    assert report.payload["dropped"] == 2 and j.backlog() == 1
    assert j.expire() == []
    j.close()


def test_pause_refuses_at_the_bound_and_reports_once_there_is_room(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    j = journal_at(tmp_path / "events.db", max_backlog=BOUND, on_full="pause", overflow_every_s=0)
    stored = j.append(make_events(BOUND))
    with caplog.at_level(logging.WARNING, logger="edged.outputs.journal"):
        assert j.append(make_events(2, start=BOUND)) == []
    assert j.refused == 2 and j.dropped == 0
    assert [e.seq for e in j.pending()] == [e.seq for e in stored]  # nothing lost
    assert any("refusing new events" in r.getMessage() for r in caplog.records)

    j.mark_delivered([stored[0].seq, stored[1].seq])
    accepted = j.append(make_events(1, start=BOUND + 2))
    assert [e.kind for e in accepted] == ["new", "overflow"]
    assert accepted[1].payload["refused"] == 2 and accepted[1].payload["policy"] == "pause"
    assert j.backlog() == BOUND
    j.close()


def test_pause_refuses_while_the_oldest_event_is_too_old(tmp_path: Path) -> None:
    j = journal_at(tmp_path / "events.db", max_age_s=60, on_full="pause")
    (old,) = j.append([replace(make_events(1)[0], ts=time.time() - 120)])
    assert j.append(make_events(1)) == []
    assert j.refused == 1
    j.mark_delivered([old.seq])
    assert [e.kind for e in j.append(make_events(1))] == ["new", "overflow"]
    j.close()


def test_pause_blocks_a_producer_until_the_publisher_makes_room(tmp_path: Path) -> None:
    j = journal_at(tmp_path / "events.db", max_backlog=BOUND, on_full="pause", pause_wait_s=5)
    stored = j.append(make_events(BOUND))
    result: list[Event] = []
    t = threading.Thread(target=lambda: result.extend(j.append(make_events(1, start=BOUND))))
    t.start()
    t.join(0.3)
    assert t.is_alive(), "the append did not wait for room"
    j.mark_delivered([stored[0].seq])
    t.join(5)
    assert not t.is_alive()
    assert [e.payload["i"] for e in result] == [BOUND]
    assert j.refused == 0
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
    # refused whole, counted, and the caller (a camera's analytics thread) goes on
    assert journal.append(batch) == []
    assert journal.backlog() == 1
    assert len(journal.pending()) == 1
    assert journal.last_seq() == 1
    assert journal.error is not None and "poisoned" in journal.error
    assert journal.refused == 4


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


def test_each_output_has_its_own_cursor_and_a_row_goes_when_the_last_has_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.db"
    j = Journal(JournalConfig(path=path), ("mqtt", "nats"), claim=True)
    mqtt, nats = j.reader("mqtt"), j.reader("nats")
    stored = j.append(make_events(5))
    # nats takes everything while mqtt is down: nothing is pruned, mqtt still has it all
    nats.mark_delivered([e.seq for e in stored])
    assert nats.pending() == [] and nats.backlog() == 0
    assert mqtt.pending() == stored and mqtt.backlog() == 5
    assert j.backlog() == 5
    # mqtt takes two: those two are gone from the file, the rest wait for mqtt alone
    mqtt.mark_delivered([stored[0].seq, stored[3].seq])
    assert j.backlog() == 3 and j.backlogs() == {"mqtt": 3, "nats": 0}
    j.close()
    j = Journal(JournalConfig(path=path), ("mqtt", "nats"), claim=True)
    assert j.backlogs() == {"mqtt": 3, "nats": 0}
    assert [e.seq for e in j.pending(output="mqtt")] == [2, 3, 5]
    assert j.pending(output="nats") == []
    j.close()


def test_every_reader_is_woken_by_an_append(tmp_path: Path) -> None:
    j = Journal(JournalConfig(path=tmp_path / "events.db"), ("mqtt", "nats"))
    a, b = j.reader("mqtt"), j.reader("nats")
    assert not a.wait_appended(0) and not b.wait_appended(0)
    j.append(make_events(1))
    assert a.wait_appended(0) and b.wait_appended(0)
    b.wake()
    assert b.wait_appended(0) and not a.wait_appended(0)
    with pytest.raises(ValueError, match="'redis' is not one of its outputs"):
        j.reader("redis")
    j.close()


def test_the_bound_counts_rows_and_drops_them_for_every_output(tmp_path: Path) -> None:
    j = Journal(
        JournalConfig(path=tmp_path / "events.db", max_backlog=BOUND, overflow_every_s=0),
        ("mqtt", "nats"),
    )
    first = j.append(make_events(BOUND - 1))
    j.mark_delivered([e.seq for e in first[:10]], "nats")
    stored = j.append(make_events(5))
    assert j.dropped == 5  # four over the bound and room for the overflow event
    assert j.backlog() == BOUND
    # the dropped seqs 1-5 were nats's already: it waits for 11-104 and the overflow event
    assert j.backlogs() == {"mqtt": BOUND, "nats": BOUND - 5}
    assert stored[-1].kind == "overflow"
    j.close()


def test_an_output_removed_from_the_config_stops_holding_rows_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.db"
    j = Journal(JournalConfig(path=path), ("mqtt", "nats"), claim=True)
    stored = j.append(make_events(4))
    j.mark_delivered([e.seq for e in stored[:3]], "mqtt")
    j.close()
    with caplog.at_level(logging.WARNING, logger="edged.outputs.journal"):
        j = Journal(JournalConfig(path=path), ("mqtt",), claim=True)
    assert "output nats is no longer configured; the 4 event(s)" in caplog.text
    assert j.backlog() == 1 and [e.seq for e in j.pending()] == [4]
    j.close()
    # a new output starts with the next event
    j = Journal(JournalConfig(path=path), ("mqtt", "nats"), claim=True)
    assert j.backlogs() == {"mqtt": 1, "nats": 0}
    new = j.append(make_events(1))
    assert j.pending(output="nats") == new
    j.close()


def test_a_journal_of_the_single_output_release_is_mqtts(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL,
            kind TEXT NOT NULL, camera TEXT, topic TEXT NOT NULL, retain INTEGER NOT NULL,
            ts REAL NOT NULL, frame_ts REAL, v INTEGER NOT NULL, payload TEXT NOT NULL);
        INSERT INTO events (id, kind, camera, topic, retain, ts, frame_ts, v, payload)
            VALUES ('a', 'new', 'cam1', 'cam1/events', 0, 1.0, NULL, 1, '{}');
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('destination', 'broker');
        """
    )
    conn.commit()
    conn.close()
    j = Journal(JournalConfig(path=path), ("mqtt", "nats"), claim=True)
    assert j.backlogs() == {"mqtt": 1, "nats": 0}
    assert [e.id for e in j.pending(output="mqtt")] == ["a"]
    j.close()
    with pytest.raises(JournalError, match="written by a run with outputs mqtt, nats"):
        Journal(JournalConfig(path=path), (), claim=True)
