"""Faults against the real daemon, and what became of every event it made.

Each scenario runs ``edged run`` on the demo clip (or an RTSP camera) against its own
Mosquitto, with a persistent QoS 1 subscriber as the witness, and breaks something: the
broker, the daemon, the link, the disk, the journal file, the config, the camera. Afterwards
every event the daemon journaled (``--print-events`` prints an event only once it is
committed) must be delivered, still in the journal, or reported lost by an ``overflow`` or
``journal_recovered`` event; what is none of these is an unexplained loss. Events refused
while the disk was full were never journaled: they are reported (``refused``), not missing.

    python -m benchmarks.faults [--only broker-kill,…] [--json]

Needs mosquitto; ``full-disk`` needs root (it mounts a tmpfs), ``rtsp-kill-loop``
GStreamer's RTSP server (``make system-deps``). Takes about 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.daemon import Daemon
from tests.mqtt_helpers import Broker, Relay, Subscriber, find_mosquitto, free_port
from tests.paths import CLIP, DEMO, MODEL

PAGE = 4096
WAIT = 90.0


@dataclass
class Outcome:
    scenario: str
    journaled: int = 0
    delivered: int = 0
    duplicates: int = 0
    in_journal: int = 0
    dropped: int = 0  # journaled, then dropped at a bound or lost with damaged pages: reported
    refused: int = 0  # never journaled (full disk, pause): reported
    unexplained: int = 0
    daemon: str = ""
    notes: list[str] = field(default_factory=list)


class Run:
    """One scenario's broker, witness, config and daemons."""

    def __init__(self, work: Path, name: str, *, relay: bool = False) -> None:
        self.work = work / name
        self.work.mkdir(parents=True)
        self.name = name
        self.broker = Broker(find_mosquitto(), self.work, free_port(), persistence=True)
        self.broker.start()
        self.relay = Relay(self.broker.host, self.broker.port) if relay else None
        self.witness = Subscriber(
            self.broker.host,
            self.broker.port,
            "edged/#",
            persistent=True,
            client_id=f"witness-{name}",
        )
        self.journal = self.work / "state" / "events.db"
        self.daemons: list[Daemon] = []
        config = yaml.safe_load(DEMO.read_text())
        config["mqtt"]["host"] = "127.0.0.1"
        config["mqtt"]["port"] = self.relay.port if self.relay else self.broker.port
        config["mqtt"]["reconnect_max_s"] = 2
        config["journal"]["path"] = str(self.journal)
        config["models"]["coco"]["path"] = str(MODEL)
        config["cameras"]["walkway"]["source"]["uri"] = str(CLIP)
        self.config_data = config
        self.config = self.work / "edged.yaml"
        self.write_config()

    def write_config(self) -> None:
        self.config.write_text(yaml.safe_dump(self.config_data))

    def daemon(self, *args: str) -> Daemon:
        d = Daemon(self.config, *args)
        self.daemons.append(d)
        return d

    def account(self, outcome: Outcome) -> Outcome:
        """Count journaled against delivered, kept and reported, once delivery has settled."""
        journaled = {e["id"] for d in self.daemons for e in d.events}
        outcome.journaled = len(journaled)
        kept = set()
        if self.journal.exists():
            with sqlite3.connect(self.journal) as db:
                kept = {row[0] for row in db.execute("SELECT id FROM events")}
        # the witness may still be taking the last of the backlog
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            got = self._delivered()
            if journaled - {m["id"] for m in got} - kept == set() or self._settled(got):
                break
            time.sleep(0.5)
        got = self._delivered()
        ids = [m["id"] for m in got]
        delivered = set(ids)
        outcome.delivered = len(delivered & journaled)
        outcome.duplicates = len(ids) - len(delivered)
        outcome.in_journal = len(kept & journaled - delivered)
        # a journal_recovered event is journaled at open, before anything prints: the broker
        # has it
        reports = {e["id"]: e for d in self.daemons for e in d.events}
        reports.update((m["id"], m) for m in got)
        for e in reports.values():
            if e["kind"] == "overflow":
                outcome.dropped += e["dropped"]
                outcome.refused += e["refused"]
            elif e["kind"] == "journal_recovered":
                outcome.dropped += e["lost"] or 0
        missing = journaled - delivered - kept
        outcome.unexplained = max(0, len(missing) - outcome.dropped)
        return outcome

    def _delivered(self) -> list[dict[str, Any]]:
        out = []
        for m in self.witness.messages:
            if m.payload.startswith(b"{"):
                body = json.loads(m.payload)
                if "id" in body:
                    out.append(body)
        return out

    def _settled(self, got: list[dict[str, Any]]) -> bool:
        time.sleep(1.0)
        return len(self._delivered()) == len(got)

    def close(self) -> None:
        for d in self.daemons:
            d.kill()
        self.witness.close()
        if self.relay is not None:
            self.relay.close()
        self.broker.stop()


def grown(d: Daemon, more: int) -> bool:
    """Wait until ``d`` has journaled ``more`` events than now."""
    n = len(d.events)
    return d.wait_for(lambda ev: len(ev) >= n + more, WAIT)


def ended(d: Daemon) -> str:
    rc = d.proc.wait(WAIT)
    return f"ran to the end, exit {rc}"


def stopped(d: Daemon) -> str:
    if d.proc.poll() is not None:
        return f"EXITED on its own, exit {d.proc.returncode}"
    d.terminate(within=10)
    return f"kept running; SIGTERM: exit {d.proc.returncode}"


def broker_kill(run: Run, out: Outcome) -> None:
    d = run.daemon()
    for _ in range(2):
        grown(d, 10)
        run.broker.stop()
        time.sleep(3)
        run.broker.start()
    out.daemon = ended(d)
    out.notes.append("broker stopped and restarted twice while the clip ran")


def daemon_sigkill(run: Run, out: Outcome) -> None:
    first = run.daemon("--set", "cameras.walkway.source.realtime=false")
    first.wait_for(lambda ev: len(ev) >= 40, WAIT)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    second = run.daemon("--set", "cameras.walkway.source.realtime=false")
    out.daemon = f"SIGKILLed mid-clip; restarted: {ended(second)}"


def link_flaps(run: Run, out: Outcome) -> None:
    assert run.relay is not None
    d = run.daemon()
    flaps = 0
    while d.proc.poll() is None and flaps < 15:
        time.sleep(1.2)
        run.relay.cut()
        flaps += 1
    out.daemon = ended(d)
    out.notes.append(f"the link to the broker cut {flaps} times")


def full_disk(run: Run, out: Outcome) -> None:
    disk = run.work / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True
    )
    if done.returncode != 0:
        out.daemon = "skipped: cannot mount a tmpfs (needs root)"
        return
    try:
        run.journal = disk / "events.db"
        run.config_data["journal"]["path"] = str(run.journal)
        run.write_config()
        run.broker.stop()  # the backlog grows until the disk is full
        st = os.statvfs(disk)
        filler = disk / "filler"
        filler.write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 200 * 1024))
        d = run.daemon()
        d.logged("cannot write", WAIT)
        time.sleep(3)
        filler.unlink()
        run.broker.start()
        out.daemon = ended(d)
        out.notes.append("journal disk full for 3 s with the broker down, then freed")
        run.account(out)
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def corrupt_journal(run: Run, out: Outcome) -> None:
    run.broker.stop()
    first = run.daemon("--set", "cameras.walkway.source.realtime=false")
    first.proc.wait(WAIT)
    raw = run.journal.read_bytes()
    middle = first.events[len(first.events) // 2]["id"].encode()
    page = raw.index(middle) // PAGE
    with open(run.journal, "r+b") as f:
        f.seek(page * PAGE)
        f.write(os.urandom(PAGE))
    run.broker.start()
    second = run.daemon("--set", "cameras.walkway.source.realtime=false")
    out.daemon = f"journal page {page} overwritten; restarted: {ended(second)}"


def reload_failures(run: Run, out: Outcome) -> None:
    blocker = run.work / "a-file"
    blocker.write_text("")
    broken = run.work / "model"
    broken.mkdir()
    shutil.copy(MODEL.with_suffix(".yaml"), broken / MODEL.with_suffix(".yaml").name)
    (broken / MODEL.name).write_bytes(MODEL.read_bytes()[:5000])
    d = run.daemon()
    good = json.loads(json.dumps(run.config_data))
    bad = [
        (
            "snapshot folder under a file",
            ["cameras", "walkway", "snapshots"],
            {"dir": str(blocker / "s")},
        ),
        ("truncated model", ["models", "coco", "path"], str(broken / MODEL.name)),
        ("unknown key", ["cameras", "walkway", "bogus"], 1),
    ]
    grown(d, 3)
    answered = []
    for _ in range(3):
        for why, keys, value in bad:
            data = json.loads(json.dumps(good))
            node = data
            for k in keys[:-1]:
                node = node[k]
            node[keys[-1]] = value
            run.config_data = data
            run.write_config()
            n = len(d.kinds("config_reload"))
            d.reload()
            d.wait_for(lambda ev, n=n: sum(e["kind"] == "config_reload" for e in ev) > n, WAIT)
            reply = d.kinds("config_reload")[-1]
            answered.append(f"{why}: {reply['status']}")
    out.notes.append("9 bad reloads, each answered: " + "; ".join(sorted(set(answered))))
    out.daemon = ended(d)


def rtsp_kill_loop(run: Run, out: Outcome) -> None:
    from tests.rtsp import RtspServer, gst_rtsp_available

    why = gst_rtsp_available()
    if why is not None:
        out.daemon = f"skipped: {why}"
        return
    server = RtspServer(CLIP, run.work / "rtsp")
    (run.work / "rtsp").mkdir()
    server.start()
    try:
        run.config_data["cameras"]["walkway"]["source"] = {
            "uri": server.url,
            "reconnect": {"floor_s": 0.2, "ceiling_s": 1.0},
        }
        run.write_config()
        d = run.daemon()
        kills = 0
        for _ in range(5):
            grown(d, 5)
            server.kill()
            kills += 1
            time.sleep(1.0)
            server.start()
        grown(d, 5)
        online = sum(
            1 for e in d.events if e["kind"] == "camera_status" and e["status"] == "online"
        )
        out.notes.append(
            f"RTSP server SIGKILLed {kills} times; camera back online {online - 1} times"
        )
        out.daemon = stopped(d)
    finally:
        server.stop()


SCENARIOS: dict[str, tuple[Callable[[Run, Outcome], None], bool]] = {
    "broker-kill": (broker_kill, False),
    "daemon-sigkill": (daemon_sigkill, False),
    "link-flaps": (link_flaps, True),
    "full-disk": (full_disk, False),
    "corrupt-journal": (corrupt_journal, False),
    "reload-failures": (reload_failures, False),
    "rtsp-kill-loop": (rtsp_kill_loop, False),
}


def run_scenario(work: Path, name: str) -> Outcome:
    scenario, relay = SCENARIOS[name]
    out = Outcome(name)
    run = Run(work, name, relay=relay)
    try:
        scenario(run, out)
        if not out.daemon.startswith("skipped") and not out.journaled:
            run.account(out)
        if any("Traceback" in d.stderr for d in run.daemons):
            out.notes.append("a traceback in the daemon's log")
    finally:
        run.close()
    return out


def table(outcomes: list[Outcome]) -> str:
    head = [
        "scenario",
        "journaled",
        "delivered",
        "dup",
        "in journal",
        "reported lost",
        "unexplained",
        "daemon",
    ]
    rows = [
        [
            o.scenario,
            str(o.journaled),
            str(o.delivered),
            str(o.duplicates),
            str(o.in_journal),
            f"{o.dropped} dropped + {o.refused} refused",
            str(o.unexplained),
            o.daemon,
        ]
        for o in outcomes
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for o in outcomes:
        for note in o.notes:
            lines.append(f"  {o.scenario}: {note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated scenarios: " + ", ".join(SCENARIOS))
    parser.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="edged-faults-") as tmp:
        for name in names:
            start = time.monotonic()
            outcome = run_scenario(Path(tmp), name)
            outcome.notes.append(f"took {time.monotonic() - start:.0f} s")
            outcomes.append(outcome)
            print(f"{name}: done", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps([asdict(o) for o in outcomes], indent=2))
    else:
        print(table(outcomes))
    bad = [o for o in outcomes if o.unexplained or "EXITED" in o.daemon]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
