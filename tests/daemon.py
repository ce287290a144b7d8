"""Run ``edged run`` as a real process and watch the events it prints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from tests.paths import MODEL


def camera_config(
    tmp_path: Path, source: dict[str, Any], mqtt: dict[str, Any] | None = None, **extra: Any
) -> Path:
    """A one-camera config around ``source``; fast retries so tests see several."""
    config: dict[str, Any] = {
        "device_id": "test",
        "journal": {"path": str(tmp_path / "events.db")},
        "models": {"coco": {"path": str(MODEL), "backend": "cpu"}},
        "cameras": {
            "cam": {
                "source": {"reconnect": {"floor_s": 0.2, "ceiling_s": 1.0}, **source},
                "detect": {"model": "coco", "classes": ["person"]},
            }
        },
        **extra,
    }
    if mqtt is not None:
        config["mqtt"] = mqtt
    path = tmp_path / "edged.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Daemon:
    """``edged run CONFIG --print-events``; events are parsed from stdout as they come."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edged", "run", str(config), "--print-events", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=None if env is None else {**os.environ, **env},
        )
        self.events: list[dict[str, Any]] = []
        self.stderr = ""
        self._cond = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read_events, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read_events(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.events.append(json.loads(line))
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.stderr += line
                self._cond.notify_all()

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self.events), timeout)

    def logged(self, text: str, timeout: float = 10.0) -> bool:
        """Wait until ``text`` shows in stderr (it is read on its own thread, so a line logged
        before an event can arrive after it)."""
        with self._cond:
            return self._cond.wait_for(lambda: text in self.stderr, timeout)

    def statuses(self) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self.events if e["kind"] == "camera_status"]

    def reload(self) -> None:
        """SIGHUP: re-read the config file."""
        self.proc.send_signal(signal.SIGHUP)

    def kinds(self, kind: str, camera: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [
                e
                for e in self.events
                if e["kind"] == kind and (camera is None or e["camera"] == camera)
            ]

    def terminate(self, within: float = 5.0) -> float:
        """SIGTERM; returns how long the process took to exit (fails past ``within``)."""
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"edged did not exit within {within} s of SIGTERM") from None
        for t in self._readers:
            t.join(2)
        return time.monotonic() - start

    def finish(self, timeout: float) -> int:
        """Wait for the daemon to end on its own; its exit code (killed past ``timeout``)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"edged did not end within {timeout} s:\n{self.stderr}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_clip(config: Path, camera: str, journal: Path, *overrides: str) -> list[dict[str, Any]]:
    """Run ``config`` through its camera's clip as fast as possible, without a broker, and
    return the events it printed (the daemon must exit 0)."""
    sets = ["mqtt=null", f"cameras.{camera}.source.realtime=false", f"journal.path={journal}"]
    args = [a for s in (*sets, *overrides) for a in ("--set", s)]
    proc = subprocess.run(
        [sys.executable, "-m", "edged", "run", str(config), "--print-events", *args],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]
