"""On a terminal the live status line and the log lines never run into each other: a log
line clears the status first and the status is drawn again below it."""

from __future__ import annotations

import io
import logging
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

from edged.service.terminal import StatusArea, StatusAwareHandler
from tests.paths import ROOT

CLEAR = "\r\x1b[2K"
LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?:DEBUG|INFO|WARNING|ERROR) ")


def test_a_log_line_goes_above_the_status_line() -> None:
    out = io.StringIO()
    area = StatusArea(out)
    handler = StatusAwareHandler(area)
    handler.setFormatter(logging.Formatter("%(message)s"))
    record = logging.LogRecord("edged", logging.INFO, __file__, 1, "camera ended", None, None)
    handler.emit(record)  # no status yet: the line as it is
    area.show("cam 5.0 fps")
    handler.emit(record)
    area.close()
    assert out.getvalue() == (
        "camera ended\n" + CLEAR + "cam 5.0 fps" + CLEAR + "camera ended\n" + "cam 5.0 fps\n"
    )


def test_the_daemon_on_a_terminal_keeps_logs_and_status_apart(tmp_path: Path) -> None:
    leader, follower = pty.openpty()
    env = {**os.environ, "EDGED_STATE_DIR": str(tmp_path / "state"), "TMPDIR": str(tmp_path)}
    config = ROOT / "configs" / "traffic.yaml"
    args = ["--dry-run", "--set", "cameras.street.source.realtime=false"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edged", "run", str(config), *args],
        stdout=subprocess.DEVNULL,
        stderr=follower,
        env=env,
    )
    os.close(follower)
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1.0)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closes with the daemon
            break
        if not chunk:
            break
        seen += chunk
    assert proc.wait(30) == 0
    os.close(leader)
    text = seen.decode(errors="replace").replace("\r\n", "\n")
    assert "fps" in text and "backlog" in text, text[-2000:]
    starts = [m.start() for m in LOG_LINE.finditer(text)]
    assert len(starts) >= 3, text[-2000:]
    for at in starts:
        # each log line begins a line, or follows the clearing of the status line
        assert at == 0 or text[at - 1] == "\n" or text[:at].endswith(CLEAR), text[at - 200 : at]
    # and the status was drawn after the first log lines (it shared the terminal)
    assert text.rfind("backlog") > starts[0]
