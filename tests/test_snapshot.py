"""``edged snapshot CONFIG CAMERA``: one JPEG of the camera's source, optionally with the
coordinate grid and the camera's zones and lines drawn on it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.analytics.lines import in_side
from tests.paths import CLIP, DEMO
from tests.rtsp import HOST, RtspServer, free_port, gst_rtsp_available

WIDTH, HEIGHT = 768, 576  # the shipped clip's picture


def snapshot(cwd: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "edged", "snapshot", str(DEMO), "walkway", *args],
        cwd=cwd,
        capture_output=True,
        timeout=timeout,
    )


def picture(data: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return image


def test_writes_the_cameras_picture_as_camera_jpg(tmp_path: Path) -> None:
    proc = snapshot(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"{WIDTH}x{HEIGHT}" in proc.stdout.decode()
    image = picture((tmp_path / "walkway.jpg").read_bytes())
    assert image.shape == (HEIGHT, WIDTH, 3)


def test_dash_writes_the_jpeg_to_stdout(tmp_path: Path) -> None:
    proc = snapshot(tmp_path, "-o", "-")
    assert proc.returncode == 0, proc.stderr
    assert picture(proc.stdout).shape == (HEIGHT, WIDTH, 3)
    assert f"{WIDTH}x{HEIGHT}" in proc.stderr.decode()  # the picture has stdout
    assert not list(tmp_path.iterdir())


def test_grid_is_drawn_along_the_half_lines(tmp_path: Path) -> None:
    plain = snapshot(tmp_path, "-o", "plain.jpg")
    grid = snapshot(tmp_path, "-o", "grid.jpg", "--grid")
    assert plain.returncode == grid.returncode == 0, plain.stderr + grid.stderr
    a = picture((tmp_path / "plain.jpg").read_bytes()).astype(np.int16)
    b = picture((tmp_path / "grid.jpg").read_bytes()).astype(np.int16)
    assert a.shape == b.shape == (HEIGHT, WIDTH, 3)

    def change(region: np.ndarray) -> float:
        return float(np.abs(region).mean())

    diff = b - a
    # the 0.5 lines across the whole picture, against a column and a row between grid lines
    # that no zone, line or label touches (JPEG noise only)
    assert change(diff[:, WIDTH // 2]) > 40
    assert change(diff[HEIGHT // 2, :]) > 40
    assert change(diff[40:, round(0.25 * WIDTH)]) < 6
    assert change(diff[round(0.85 * HEIGHT), 40:]) < 6


def test_in_side_points_where_in_moves() -> None:
    """The arrow --grid draws: for a flat line counting bottom_to_top, up (−y)."""
    flat = np.array([[0.0, 100.0], [200.0, 100.0]])
    assert in_side(flat, "bottom_to_top") == pytest.approx([0.0, -1.0])
    assert in_side(flat[::-1], "bottom_to_top") == pytest.approx([0.0, -1.0])
    assert in_side(np.array([[50.0, 0.0], [50.0, 90.0]]), "right_to_left") == pytest.approx(
        [-1.0, 0.0]
    )
    with pytest.raises(ValueError, match="parallel"):
        in_side(flat, "left_to_right")


def test_an_unknown_camera_is_a_config_error(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edged", "snapshot", str(DEMO), "gate"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "no camera 'gate'" in proc.stderr and "walkway" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    missing = tmp_path / "gone.mp4"
    proc = snapshot(tmp_path, "--set", f"cameras.walkway.source.uri={missing}")
    assert proc.returncode == 1
    assert f"camera walkway: file not found: {missing}" in proc.stderr.decode()


def test_a_refused_stream_says_why(tmp_path: Path) -> None:
    uri = f"rtsp://{HOST}:{free_port()}/cam"
    proc = snapshot(tmp_path, "--set", f"cameras.walkway.source.uri={uri}")
    assert proc.returncode == 1
    assert "camera walkway: cannot open" in proc.stderr.decode(), proc.stderr


def test_a_silent_stream_fails_within_the_timeout(tmp_path: Path) -> None:
    """A server that takes the connection and never answers: the source's own open timeout
    (10 s) is not waited for."""
    with socket.socket() as server:
        server.bind((HOST, 0))
        server.listen()  # connections complete in the kernel; none is ever answered
        uri = f"rtsp://{HOST}:{server.getsockname()[1]}/cam"
        start = time.monotonic()
        proc = snapshot(tmp_path, "--timeout", "1", "--set", f"cameras.walkway.source.uri={uri}")
        took = time.monotonic() - start
    assert proc.returncode == 1
    assert "camera walkway: no frame from" in proc.stderr.decode() and "within 1 s" in (
        proc.stderr.decode()
    )
    assert took < 9, took  # the interpreter's start and imports, plus the 1 s


def test_a_live_rtsp_camera(tmp_path: Path) -> None:
    reason = gst_rtsp_available()
    assert reason is None, f"GStreamer's RTSP server is needed: {reason}"
    server = RtspServer(CLIP, tmp_path)
    server.start()
    try:
        proc = snapshot(tmp_path, "--grid", "--set", f"cameras.walkway.source.uri={server.url}")
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr
    assert picture((tmp_path / "walkway.jpg").read_bytes()).shape == (HEIGHT, WIDTH, 3)
