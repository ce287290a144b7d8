"""Signals at the edges of the daemon's life: while its config and models are still being
checked, and while it prints events to a pipe."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.daemon import camera_config
from tests.paths import CLIP


def start(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edged",
            "--log-level",
            "DEBUG",
            "run",
            str(config),
            "--print-events",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_until(stream: object, text: str, timeout: float = 30) -> str:
    """Lines of ``stream`` until one holds ``text``."""
    seen = ""
    deadline = time.monotonic() + timeout
    while text not in seen:
        assert time.monotonic() < deadline, f"no {text!r} in:\n{seen}"
        line = stream.readline()  # type: ignore[attr-defined]
        assert line, f"the daemon ended before {text!r}:\n{seen}"
        seen += line
    return seen


def test_a_sighup_while_the_config_is_checked_does_not_kill_the_daemon(tmp_path: Path) -> None:
    config = camera_config(tmp_path, {"uri": str(CLIP), "loop": True})
    proc = start(config)
    try:
        assert proc.stderr is not None and proc.stdout is not None
        read_until(proc.stderr, "signal handlers installed")
        proc.send_signal(signal.SIGHUP)  # the model is being opened and checked now
        read_until(proc.stderr, "received SIGHUP")
        # it goes on to start its camera and detect
        assert json.loads(proc.stdout.readline())["kind"] == "camera_status"
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_sigterm_while_the_config_is_checked_ends_the_daemon_cleanly(tmp_path: Path) -> None:
    config = camera_config(tmp_path, {"uri": str(CLIP), "loop": True})
    proc = start(config)
    try:
        assert proc.stderr is not None
        read_until(proc.stderr, "signal handlers installed")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("after_lines", [5, 80])
def test_printed_events_end_with_a_whole_line_when_the_daemon_is_stopped(
    tmp_path: Path, after_lines: int
) -> None:
    """SIGTERM while events pour out onto a pipe (a clip read as fast as possible): every
    line read, the last included, is one whole JSON event."""
    config = camera_config(tmp_path, {"uri": str(CLIP), "loop": True, "realtime": False})
    proc = start(config)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    data = b""
    try:
        deadline = time.monotonic() + 60
        while data.count(b"\n") < after_lines:
            assert time.monotonic() < deadline, data[-500:]
            if select.select([fd], [], [], 1.0)[0]:
                data += os.read(fd, 1 << 16)
        proc.send_signal(signal.SIGTERM)
        while chunk := os.read(fd, 1 << 16):  # blocks until the daemon closes its end
            data += chunk
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert data.endswith(b"\n")
    events = [json.loads(line) for line in data.decode().splitlines()]
    assert len(events) >= after_lines and all("kind" in e for e in events)
