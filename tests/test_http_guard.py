"""The daemon's HTTP server guards itself: slow and idle clients are cut off, connections are
capped, a non-loopback bind needs auth, and the debug view blurs what the privacy setting
says. Against the real server on real sockets, and a real daemon."""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from edged.config import ConfigError, load
from edged.config.http import HttpConfig
from edged.web.server import Request, WebServer
from tests.daemon import Daemon, camera_config
from tests.mqtt_helpers import free_port
from tests.paths import CLIP
from tests.test_observability import get
from tests.waiting import poll


def hello(req: Request, path: str) -> bool:
    req.send(200, "text/plain; charset=utf-8", b"hello\n")
    return True


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[WebServer] = []

    def make(**access: object) -> WebServer:
        server = WebServer(
            "127.0.0.1", free_port(), [hello], HttpConfig.model_validate(access or {})
        )
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.close()


def url(server: WebServer, path: str = "/") -> str:
    return f"http://127.0.0.1:{server.server_address[1]}{path}"


def closed_within(sock: socket.socket, timeout: float) -> float | None:
    """Seconds until the server closed ``sock`` (recv gives b"" or a reset), or None."""
    start = time.monotonic()
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return time.monotonic() - start
    except (ConnectionResetError, BrokenPipeError):
        return time.monotonic() - start
    except TimeoutError:
        return None


def test_a_client_sending_a_byte_at_a_time_is_cut_off(serve) -> None:
    server = serve(read_timeout_s=1.0)
    sock = socket.create_connection(server.server_address)
    stop = threading.Event()

    def trickle() -> None:
        # a header that never ends, one byte every 0.2 s: each read is quick, the whole is not
        sock.sendall(b"GET / HTTP/1.1\r\nX-Slow: ")
        while not stop.wait(0.2):
            try:
                sock.sendall(b"a")
            except OSError:
                return

    t = threading.Thread(target=trickle, daemon=True)
    t.start()
    try:
        took = closed_within(sock, 5.0)
    finally:
        stop.set()
        t.join(2)
        sock.close()
    assert took is not None and took < 2.5, took
    assert server.expired == 1
    assert get(url(server))[0] == 200


def test_idle_connections_are_capped_and_expire(serve) -> None:
    server = serve(read_timeout_s=1.0, max_connections=8)
    threads_before = threading.active_count()
    idle = [socket.create_connection(server.server_address) for _ in range(8)]
    try:
        # the cap is reached by connections that send nothing; the next one is told at once
        poll(lambda: threading.active_count() >= threads_before + 8, 5)
        extra = socket.create_connection(server.server_address)
        extra.settimeout(2)
        answer = extra.recv(4096)
        extra.close()
        assert answer.startswith(b"HTTP/1.1 503") and b"too many connections" in answer
        assert server.busy == 1
        assert threading.active_count() <= threads_before + 8
        # the idle ones are closed by the deadline, and the server answers again
        for sock in idle:
            took = closed_within(sock, 5.0)
            assert took is not None and took < 2.5
        assert get(url(server))[0] == 200
    finally:
        for sock in idle:
            sock.close()


def test_the_listen_backlog_is_128(serve) -> None:
    server = serve()
    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed")
    port = server.server_address[1]
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True
    ).stdout.split()
    # ss shows a listening socket's backlog as Send-Q
    assert out[2] == "128", out


def test_a_token_or_a_login_is_required_when_configured(serve) -> None:
    server = serve(token="s3cret-token", username="admin", password="pw")
    status, _ = get(url(server))
    assert status == 401

    def with_header(value: str) -> int:
        req = urllib.request.Request(url(server), headers={"Authorization": value})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return r.status
        except urllib.error.HTTPError as exc:
            return exc.code

    assert with_header("Bearer s3cret-token") == 200
    assert with_header("Bearer wrong") == 401
    assert get(url(server, "/?token=s3cret-token"))[0] == 200
    assert with_header("Basic " + base64.b64encode(b"admin:pw").decode()) == 200
    assert with_header("Basic " + base64.b64encode(b"admin:nope").decode()) == 401
    assert with_header("Basic !!!") == 401
    assert server.denied == 4


def test_a_non_loopback_bind_without_auth_is_a_config_error(tmp_path: Path) -> None:
    config = camera_config(tmp_path, {"uri": str(CLIP)}, metrics={"host": "0.0.0.0"})
    with pytest.raises(ConfigError) as err:
        load(config)
    (problem,) = err.value.problems
    assert "metrics" in problem and "can be reached from other machines" in problem
    assert "token" in problem and "insecure: true" in problem
    # said out loud, it is allowed, and the daemon warns at start
    port = free_port()
    config = camera_config(
        tmp_path, {"uri": str(CLIP)}, metrics={"host": "0.0.0.0", "port": port, "insecure": True}
    )
    daemon = Daemon(config)
    try:
        assert daemon.logged("without auth (insecure: true)", 60), daemon.stderr
    finally:
        daemon.kill()


def test_shared_metrics_and_debug_view_must_agree_on_access(tmp_path: Path) -> None:
    config = camera_config(
        tmp_path,
        {"uri": str(CLIP)},
        metrics={"port": 9300, "token": "a"},
        debug_view={"port": 9300},
    )
    with pytest.raises(ConfigError, match="must be the same as metrics'"):
        load(config)


def still_clip(path: Path) -> np.ndarray:
    """A 2 s video of the sample clip's first frame: every frame the same, so the debug view's
    picture can be compared with the raw frame."""
    cap = cv2.VideoCapture(str(CLIP))
    ok, frame = cap.read()
    cap.release()
    assert ok
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 7, frame.shape[1::-1])
    for _ in range(14):
        writer.write(frame)
    writer.release()
    # what a decoder gives back (the clip is lossy)
    cap = cv2.VideoCapture(str(path))
    ok, decoded = cap.read()
    cap.release()
    assert ok
    return decoded


def sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def test_the_debug_view_blurs_people_as_the_privacy_setting_says(tmp_path: Path) -> None:
    clip = tmp_path / "still.mp4"
    raw = still_clip(clip)
    port = free_port()
    source = {"uri": str(clip), "loop": True}
    config = camera_config(tmp_path, source, debug_view={"port": port})
    data = yaml.safe_load(config.read_text())
    data["cameras"]["open"] = data["cameras"].pop("cam")
    data["cameras"]["private"] = {
        **data["cameras"]["open"],
        "snapshots": {"publish": False, "privacy": {"blur": "boxes"}, "dir": str(tmp_path / "s")},
    }
    config.write_text(yaml.safe_dump(data))
    daemon = Daemon(config, "--set", "mqtt=null")
    try:
        assert daemon.wait_for(
            lambda ev: {e["camera"] for e in ev if e["kind"] == "object"} == {"open", "private"},
            60,
        ), daemon.stderr
        pictures = {}
        for cam in ("open", "private"):
            status, jpeg = get(f"http://127.0.0.1:{port}/cameras/{cam}/latest.jpg")
            assert status == 200
            pictures[cam] = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        boxes = [e["after"]["box"] for e in daemon.kinds("object", "open")]
    finally:
        daemon.kill()
    assert boxes
    blurred = 0
    for x1, y1, x2, y2 in boxes[:5]:
        # the middle of the box, clear of the drawn outline and label
        w, h = x2 - x1, y2 - y1
        if w < 12 or h < 24:
            continue
        cx1, cy1, cx2, cy2 = (int(v) for v in (x1 + w / 4, y1 + h / 4, x2 - w / 4, y2 - h / 4))
        open_, private, truth = (
            img[cy1:cy2, cx1:cx2] for img in (pictures["open"], pictures["private"], raw)
        )
        # unblurred, the open camera shows the person as the frame has it
        assert abs(sharpness(open_) - sharpness(truth)) < 0.5 * sharpness(truth) + 5
        assert sharpness(private) < 0.25 * sharpness(truth), (x1, y1, x2, y2)
        blurred += 1
    assert blurred >= 1
    # away from people the private camera's picture is the frame itself
    assert np.abs(pictures["private"][-60:, :200].astype(int) - raw[-60:, :200]).mean() < 6


def test_the_check_command_refuses_an_open_bind(tmp_path: Path) -> None:
    config = camera_config(tmp_path, {"uri": str(CLIP)}, debug_view={"host": "0.0.0.0"})
    done = subprocess.run(
        [sys.executable, "-m", "edged", "check", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "debug_view" in done.stderr and "can be reached from other machines" in done.stderr
    assert "Traceback" not in done.stderr
