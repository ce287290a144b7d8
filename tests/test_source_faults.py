"""Camera faults that must never stall the daemon: each is reported clearly, retried with a
growing delay, and SIGTERM still ends the daemon within 5 s."""

from __future__ import annotations

import re
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edged.config.camera import SourceConfig, UsbConfig
from edged.sources.capture import SourceError
from edged.sources.factory import make_source
from edged.sources.opencv import V4L2Capture
from edged.sources.slot import FrameSlot
from tests.conftest import free_port
from tests.daemon import Daemon, camera_config
from tests.paths import CLIP


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung camera)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conns.append(server.accept()[0])
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for c in conns:
        c.close()
    server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def retried_then_terminated(daemon: Daemon, reason: str, attempts: int = 2) -> list[dict]:
    def retried(events: list[dict]) -> bool:
        tries = [
            e for e in events if e["kind"] == "camera_status" and e["status"] == "reconnecting"
        ]
        return len(tries) >= attempts

    try:
        assert daemon.wait_for(retried, 30), daemon.stderr
        tries = [s for s in daemon.statuses() if s["status"] == "reconnecting"]
        assert reason in tries[0]["reason"], tries[0]
        assert [t["attempt"] for t in tries[:attempts]] == list(range(1, attempts + 1))
        delays = [t["retry_in_s"] for t in tries[:attempts]]
        assert delays == sorted(delays) and delays[-1] > delays[0]
        assert daemon.logged(reason), daemon.stderr  # the log line says it too
        assert daemon.terminate(within=5.0) < 5.0
        assert daemon.proc.returncode == 0, daemon.stderr
        assert daemon.statuses()[-1]["status"] == "offline"
        return tries
    finally:
        daemon.kill()


def test_refused_connection(tmp_path: Path) -> None:
    url = f"rtsp://user:secret@127.0.0.1:{closed_port()}/cam"
    daemon = Daemon(camera_config(tmp_path, {"uri": url}))
    tries = retried_then_terminated(daemon, "Connection refused")
    assert "secret" not in daemon.stderr and all("secret" not in str(t) for t in tries)
    assert tries[0]["source"].startswith("rtsp://***@127.0.0.1")


def test_host_that_never_answers_times_out(tmp_path: Path, silent_server: int) -> None:
    source = {"uri": f"rtsp://127.0.0.1:{silent_server}/cam", "open_timeout_s": 1.0}
    daemon = Daemon(camera_config(tmp_path, source))
    retried_then_terminated(daemon, "timed out")


def test_sigterm_while_blocked_in_a_long_open(tmp_path: Path, silent_server: int) -> None:
    source = {"uri": f"rtsp://127.0.0.1:{silent_server}/cam", "open_timeout_s": 30.0}
    daemon = Daemon(camera_config(tmp_path, source))
    try:
        assert daemon.logged("running 1 camera", 30)
        assert daemon.terminate(within=5.0) < 5.0
        assert daemon.proc.returncode == 0, daemon.stderr
    finally:
        daemon.kill()


def test_a_corrupt_file_is_refused_at_start(tmp_path: Path) -> None:
    # a file source is checked at start, as edged check does, instead of being retried
    # forever; one that breaks while running is retried (test_sources)
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(5000))
    daemon = Daemon(camera_config(tmp_path, {"uri": str(bad)}))
    assert daemon.finish(30) == 2
    assert daemon.logged(f"cameras.cam.source.uri: cannot open {bad}"), daemon.stderr


def test_missing_usb_device_mocked_hardware_edge(tmp_path: Path) -> None:
    # no USB camera exists here: a device path that is absent is the fault under test
    daemon = Daemon(camera_config(tmp_path, {"uri": "/dev/video99"}))
    retried_then_terminated(daemon, "/dev/video99 not found")


def test_usb_mode_with_a_frame_rate_reaches_the_device_mocked_hardware_edge(
    tmp_path: Path,
) -> None:
    # a file that is no capture device stands in for the camera: the open must get as far as
    # the device with the mode asked for (a float fps once failed in OpenCV's argument parsing)
    not_a_camera = tmp_path / "video7"
    not_a_camera.write_bytes(b"")
    wanted = UsbConfig(width=640, height=480, fps=30, fourcc="MJPG")
    with pytest.raises(SourceError, match="busy or not a capture device"):
        V4L2Capture(str(not_a_camera), wanted, read_timeout_s=1.0)


def test_latency_stays_bounded_when_inference_is_slower_than_the_camera() -> None:
    """A live (paced) source and a consumer 3× slower than its frame rate: each frame taken is
    at most about one frame interval old, and the ones it could not take are counted."""
    wake = threading.Condition()
    slot = FrameSlot(wake, block=False)
    source = make_source(
        "cam", SourceConfig(uri=str(CLIP), realtime=True), slot, lambda change: None
    )
    interval = 1 / 7
    ages = []
    source.start()
    try:
        with wake:
            while len(ages) < 8:
                frame = slot.take()
                if frame is None:
                    assert wake.wait(5)
                    continue
                ages.append(time.monotonic() - frame.mono_ts)
                wake.release()
                try:
                    time.sleep(3 * interval)  # the "inference" of this frame
                finally:
                    wake.acquire()
    finally:
        source.stop()
        source.join(5)
    # Unbounded latency would grow by 2 intervals per frame taken; the slack is for a
    # loaded machine's scheduling, not for queued frames.
    assert max(ages) < interval + 0.1, ages
    assert slot.dropped >= 8, slot.dropped


def test_a_broken_camera_does_not_stop_the_others(tmp_path: Path) -> None:
    """Two cameras: one cannot connect, the other plays the clip to its end; the metrics
    endpoint reports both."""
    port = free_port()
    config = camera_config(
        tmp_path,
        {"uri": str(CLIP), "realtime": False},
        metrics={"host": "127.0.0.1", "port": port},
        stats_interval_s=0.3,
    )
    data = yaml.safe_load(config.read_text())
    data["cameras"]["broken"] = {
        "source": {"uri": f"rtsp://127.0.0.1:{closed_port()}/x", "reconnect": {"floor_s": 0.2}},
        "detect": {"model": "coco"},
    }
    config.write_text(yaml.safe_dump(data))
    daemon = Daemon(config)
    try:
        assert daemon.wait_for(
            lambda ev: any(
                e["kind"] == "stats" and e["cameras"]["cam"]["processed"] == 150 for e in ev
            ),
            60,
        ), daemon.stderr
        statuses = {(s["camera"], s["status"]) for s in daemon.statuses()}
        assert ("broken", "reconnecting") in statuses and ("cam", "online") in statuses
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
        assert 'edged_frames_processed_total{camera="cam"} 150.0' in text
        assert 'edged_frames_dropped_total{camera="cam"} 0.0' in text
        assert 'edged_source_up{camera="broken"} 0.0' in text
        reconnects = re.search(r'edged_source_reconnects_total\{camera="broken"\} (\d+)', text)
        assert reconnects and int(reconnects.group(1)) >= 1
        # the daemon keeps running for the camera that may still come back
        assert daemon.proc.poll() is None
        assert daemon.terminate(within=5.0) < 5.0
    finally:
        daemon.kill()


def test_the_reconnect_backoff_doubles_up_to_its_ceiling_however_long_the_outage() -> None:
    config = SourceConfig(uri=str(CLIP), reconnect={"floor_s": 1, "ceiling_s": 30, "jitter": 0})
    source = make_source("cam", config, FrameSlot(threading.Condition()), lambda change: None)
    delays = [source.backoff(n) for n in (1, 2, 3, 5, 6, 100, 5000)]
    # a night of attempts once overflowed 2 ** (attempt - 1)
    assert delays == [1, 2, 4, 16, 30, 30, 30]
