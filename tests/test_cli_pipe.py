"""A reader that closes edged's stdout early (``edged models | head``) ends it quietly with
141, as a closed pipe ends any Unix tool, without a BrokenPipeError traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.paths import DEMO

# far more than a pipe holds (64 KiB on Linux), so edged is still writing when the pipe closes
MANY = 3000


def first_line_then_close(*args: str) -> tuple[int, str]:
    """Run ``edged ARGS``, read one line of its stdout, close the pipe; (exit code, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edged", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline(), "edged printed nothing"
    proc.stdout.close()
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


def test_models_into_a_closed_pipe(tmp_path: Path) -> None:
    for i in range(MANY):
        (tmp_path / f"model-without-a-manifest-{i:05d}.onnx").touch()
    code, err = first_line_then_close("models", str(tmp_path))
    assert code == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_run_print_events_into_a_closed_pipe(tmp_path: Path) -> None:
    """The daemon stops in order (as on SIGTERM) and exits 141."""
    code, err = first_line_then_close(
        "run",
        str(DEMO),
        "--dry-run",
        "--set",
        "cameras.walkway.source.realtime=false",
        # events keep coming, whenever the pipe closes
        "--set",
        "cameras.walkway.source.loop=true",
    )
    assert code == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert "the events' output was closed, stopping" in err
