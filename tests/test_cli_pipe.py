"""A reader that closes edged's stdout early (``edged models | head``) ends it quietly with
141, as a closed pipe ends any Unix tool, without a BrokenPipeError traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.paths import DEMO

# lines enough for many writes (200 kB, 64 KiB a pipe): edged still writes after the pipe closed
MANY = 3000


def read_then_close(*args: str) -> tuple[int, str]:
    """Run ``edged ARGS``, read the first bytes of its stdout (one read), close the pipe;
    (exit code, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "edged", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,  # unbuffered: the read takes one byte, never the pipe's whole content
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(1), "edged printed nothing"
    proc.stdout.close()
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err.decode(errors="replace")


def test_models_into_a_closed_pipe(tmp_path: Path) -> None:
    for i in range(MANY):
        (tmp_path / f"model-without-a-manifest-{i:05d}.onnx").touch()
    code, err = read_then_close("models", str(tmp_path))
    assert code == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_run_print_events_into_a_closed_pipe(tmp_path: Path) -> None:
    """The daemon stops in order (as on SIGTERM) and exits 141."""
    code, err = read_then_close(
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


def into_a_closed_pipe(*args: str) -> tuple[int, str]:
    """Run ``edged ARGS`` with stdout a pipe that nobody reads: its read end is closed before
    edged starts; (exit code, stderr)."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "edged", *args],
            stdout=write,
            capture_output=False,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    finally:
        os.close(write)
    return proc.returncode, proc.stderr.decode(errors="replace")


def test_snapshot_to_stdout_into_a_closed_pipe() -> None:
    """``-o -``: the JPEG is one write, which a pipe already closed refuses."""
    code, err = into_a_closed_pipe("snapshot", str(DEMO), "walkway", "-o", "-")
    assert code == 141, err
    assert "Traceback" not in err and "Broken pipe" not in err, err
