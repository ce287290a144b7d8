"""The journal when its disk fails it: full, read-only, or its file damaged; and losses that
must survive a restart. Each against a real SQLite file, on a real tmpfs where the test can
mount one (tests run as root on CI)."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edged.core.event import Event
from edged.outputs.journal import JournalError
from tests.daemon import Daemon
from tests.mqtt_helpers import BrokerFactory, Subscriber, free_port
from tests.paths import CLIP, DEMO, MODEL
from tests.test_event_faults import FAST, WAIT
from tests.test_journal import BOUND, journal_at, make_events
from tests.test_observability import get

PAGE = 4096  # SQLite's default page size


def big_events(n: int, start: int = 0) -> list[Event]:
    """Events of about 2 KB each, so a small disk fills in a few hundred."""
    return [
        Event(
            kind="new",
            camera="cam1",
            topic="cam1/events",
            payload={"i": start + i, "pad": "x" * 2000},
        )
        for i in range(n)
    ]


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs of its own: a disk that can be filled and made read-only."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(folder: Path, leave: int) -> Path:
    """A file that takes all of ``folder``'s disk but ``leave`` bytes."""
    st = os.statvfs(folder)
    filler = folder / "filler"
    filler.write_bytes(b"\0" * max(0, st.f_bavail * st.f_frsize - leave))
    return filler


def overflows(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind == "overflow"]


def test_a_full_disk_refuses_counts_logs_once_and_resumes(
    disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = journal_at(disk / "events.db")
    journal.append(big_events(5))
    filler = fill(disk, leave=64 * 1024)
    caplog.set_level(logging.WARNING, "edged.outputs.journal")
    kept, refused = 5, 0
    for i in range(200):
        out = journal.append(big_events(5, start=100 + 5 * i))
        if not out:
            refused += 5
            if refused >= 20:
                break
        else:
            assert refused == 0, "once full, nothing is kept until space returns"
            kept += len(out)
    assert refused >= 20, "the disk never filled"
    assert journal.error is not None and "full" in journal.error
    assert journal.state() == {"state": "error", "error": journal.error, "recoveries": 0}
    assert journal.refused == refused
    errors = [r for r in caplog.records if "cannot write" in r.getMessage()]
    assert len(errors) == 1, "logged once, not once per batch"
    assert "no transaction is active" not in caplog.text
    # what was kept before the disk filled is still there, in order
    assert [e.payload["i"] for e in journal.pending(limit=10_000)][:5] == [0, 1, 2, 3, 4]

    filler.unlink()
    out = journal.append(big_events(1, start=9999))
    assert journal.error is None and journal.state()["state"] == "ok"
    report = overflows(out)
    assert len(report) == 1
    assert report[0].payload["refused"] == refused
    assert "write_error" in report[0].payload["reason"]
    assert "writable again" in caplog.text
    assert out[0].payload["i"] == 9999
    journal.close()


def test_a_read_only_disk_at_start_is_one_clear_error(disk: Path) -> None:
    journal = journal_at(disk / "events.db")
    journal.append(make_events(3))
    journal.close()
    # a disk that went read-only (ext4 errors=remount-ro does this on a failing card)
    subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    with pytest.raises(JournalError, match=r"events\.db: cannot open: .*mounted read-only"):
        journal_at(disk / "events.db")
    subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    again = journal_at(disk / "events.db")
    assert [e.payload["i"] for e in again.pending()] == [0, 1, 2], "nothing was lost"
    again.close()


def test_opening_on_a_full_disk_is_one_clear_error(disk: Path) -> None:
    fill(disk, leave=0)
    with pytest.raises(JournalError, match=r"events\.db: cannot open: .*full"):
        journal_at(disk / "events.db")


def moved_aside(folder: Path) -> list[Path]:
    """The damaged journals moved aside in ``folder`` (not their -wal/-shm files)."""
    found = folder.glob("events.db.corrupt-*")
    return [p for p in found if not p.name.endswith(("-wal", "-shm"))]


def damaged_journal(path: Path, n: int, pages: list[int]) -> list[Event]:
    """A journal of ``n`` events whose ``pages`` (1-based) are overwritten with garbage."""
    journal = journal_at(path, max_backlog=max(BOUND, n))
    stored = journal.append(big_events(n))
    journal.close()
    assert not path.with_name(path.name + "-wal").exists(), "checkpointed at close"
    with open(path, "r+b") as f:
        for page in pages:
            f.seek((page - 1) * PAGE)
            f.write(os.urandom(PAGE))
    return stored


def test_damaged_pages_are_moved_aside_and_the_rest_salvaged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "events.db"
    stored = damaged_journal(path, 300, pages=[20, 40, 41])
    with sqlite3.connect(path) as db, pytest.raises(sqlite3.DatabaseError, match="malformed"):
        db.execute("SELECT payload FROM events").fetchall()

    journal = journal_at(path)
    moved = moved_aside(tmp_path)
    assert len(moved) == 1
    pending = journal.pending(limit=10_000)
    recovered = pending[-1]
    assert recovered.kind == "journal_recovered"
    salvaged = pending[:-1]
    lost = recovered.payload["lost"]
    assert lost > 0 and len(salvaged) > 200
    assert len(salvaged) + lost == len(stored), "every row is either carried over or counted"
    assert recovered.payload["salvaged"] == len(salvaged)
    assert recovered.payload["moved_to"] == str(moved[0])
    by_seq = {e.seq: e for e in stored}
    for e in salvaged:
        assert e == by_seq[e.seq], "salvaged rows are the rows, with their seqs"
    # seqs go on after the damaged file's
    assert recovered.seq == stored[-1].seq + 1
    assert journal.append(make_events(1))[0].seq == recovered.seq + 1
    assert "was damaged" in caplog.text
    journal.close()
    # the fresh journal is sound, and opening it again recovers nothing
    again = journal_at(path)
    assert again.recoveries == 0 and again.backlog() == len(salvaged) + 2
    again.close()


def test_a_wholly_garbage_file_is_moved_aside_and_a_fresh_journal_started(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    garbage = os.urandom(10 * PAGE)
    path.write_bytes(garbage)
    journal = journal_at(path)
    (moved,) = moved_aside(tmp_path)
    assert moved.read_bytes() == garbage, "nothing is deleted"
    (recovered,) = journal.pending()
    assert recovered.kind == "journal_recovered"
    assert recovered.payload["salvaged"] == 0 and recovered.payload["lost"] is None
    assert journal.append(make_events(2))[0].payload["i"] == 0
    journal.close()


def test_damage_found_while_running_is_recovered_and_delivery_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    journal = journal_at(path, max_backlog=1000)
    stored = journal.append(big_events(300))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    # pages of the table overwritten under the open journal (a failing card)
    with open(path, "r+b") as f:
        f.seek(30 * PAGE)
        f.write(os.urandom(3 * PAGE))
    # a write by another connection makes the journal's connection drop its page cache
    other.execute("PRAGMA user_version = 7")
    other.close()
    pending = journal.pending(limit=10_000)
    assert journal.recoveries == 1
    assert pending[-1].kind == "journal_recovered"
    assert len(pending) - 1 + pending[-1].payload["lost"] == len(stored)
    journal.mark_delivered(e.seq for e in pending)
    assert journal.backlog() == 0
    out = journal.append(make_events(1))
    assert out[0].seq == pending[-1].seq + 1 and journal.pending() == out
    journal.close()


def test_pause_refusals_are_reported_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    bounds = {"max_backlog": BOUND, "on_full": "pause", "pause_wait_s": 0.0}
    journal = journal_at(path, **bounds)
    journal.append(make_events(BOUND))
    for i in range(7):
        assert journal.append(make_events(3, start=1000 + 3 * i)) == []
    assert journal.refused == 21
    journal.close()  # a restart before any overflow event could go out

    again = journal_at(path, **bounds)
    again.mark_delivered(range(1, 51))
    out = again.append(make_events(1, start=5000))
    (report,) = overflows(out)
    assert report.payload["refused"] == 21
    again.close()
    # reported once: a further restart reports nothing more
    third = journal_at(path, **bounds)
    assert overflows(third.append(make_events(1, start=6000))) == []
    third.close()


# -- the daemon with a failing journal, against a real broker -----------------------------


def delivered(sub: Subscriber) -> list[dict]:
    """The events that reached the broker (not availability, not pictures)."""
    return [json.loads(m.payload) for m in sub.messages if m.payload.startswith(b"{")]


def test_the_daemon_recovers_a_damaged_journal_and_delivers_what_it_salvaged(
    mqtt_broker_factory: BrokerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = mqtt_broker_factory(start=False)
    monkeypatch.setenv("EDGED_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("EDGED_MQTT_HOST", "127.0.0.1")
    monkeypatch.setenv("EDGED_MQTT_PORT", str(broker.port))
    # the broker is down: the whole clip's events wait in the journal
    first = Daemon(DEMO, *FAST)
    assert first.finish(WAIT) == 0, first.stderr
    made = {e["id"]: e for e in first.events}
    path = tmp_path / "events.db"
    # one page of the events table, found by an event's id in the middle of the clip
    raw = path.read_bytes()
    middle = list(made)[len(made) // 2].encode()
    page = raw.index(middle) // PAGE
    with open(path, "r+b") as f:
        f.seek(page * PAGE)
        f.write(os.urandom(PAGE))

    broker.start()
    with Subscriber(broker.host, broker.port, "edged/demo/#") as sub:
        second = Daemon(DEMO, *FAST)
        assert second.finish(WAIT) == 0, second.stderr
        live = {e["id"] for e in second.events}
        assert sub.wait_for(lambda: live <= {m["id"] for m in delivered(sub)}, 10), second.stderr
        got = delivered(sub)
    (recovered,) = [m for m in got if m["kind"] == "journal_recovered"]
    lost = recovered["lost"]
    salvaged = {m["id"] for m in got} & made.keys()
    assert lost >= 1 and salvaged, recovered
    assert len(salvaged) + lost == len(made), "each event delivered or counted lost"
    assert recovered["salvaged"] == len(salvaged)
    assert "was damaged" in second.stderr and "Traceback" not in second.stderr
    assert len(moved_aside(tmp_path)) == 1
    broker.stop()


def test_the_daemon_keeps_running_on_a_full_disk_and_reports_the_loss(
    disk: Path, tmp_path: Path
) -> None:
    port = free_port()
    demo = yaml.safe_load(DEMO.read_text())
    demo["journal"]["path"] = str(disk / "events.db")
    demo["metrics"] = {"host": "127.0.0.1", "port": port}
    demo["models"]["coco"]["path"] = str(MODEL)
    demo["cameras"]["walkway"]["source"]["uri"] = str(CLIP)
    config = tmp_path / "edged.yaml"
    config.write_text(yaml.safe_dump(demo))
    filler = fill(disk, leave=256 * 1024)
    daemon = Daemon(config, "--set", "mqtt=null")
    try:
        assert daemon.logged("cannot write", WAIT), daemon.stderr
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        health = json.loads(body)
        assert status == 503 and health["journal"]["state"] == "error", health
        assert any(r.startswith("journal: cannot write") for r in health["reasons"])
        # the camera goes on while nothing can be kept
        assert health["cameras"]["walkway"]["state"] == "streaming", health
        filler.unlink()
        assert daemon.wait_for(lambda ev: any(e["kind"] == "overflow" for e in ev), WAIT)
        (report,) = daemon.kinds("overflow")
        assert "write_error" in report["reason"]
        assert report["refused"] >= 1
        assert daemon.proc.wait(WAIT) == 0, daemon.stderr
    finally:
        daemon.kill()
    assert "writable again" in daemon.stderr and "Traceback" not in daemon.stderr
