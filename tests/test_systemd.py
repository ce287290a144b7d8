"""systemd integration: the unit file, sd_notify over a real datagram socket, the watchdog
that stops when the pipeline stalls, journal log priorities."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from edged.config import load
from edged.config.loader import load_model
from edged.config.store import StoreConfig
from edged.service.logs import JournalFormatter, to_journal
from edged.service.progress import CameraProgress, ProgressMonitor
from edged.service.systemd import Notifier, watchdog_interval
from tests.daemon import Daemon, camera_config
from tests.paths import CLIP, ROOT
from tests.test_source_faults import closed_port

UNIT = ROOT / "systemd" / "edged.service"


class NotifySocket:
    """A bound Unix datagram socket, as systemd's, recording what the daemon sends."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines())
            with self._cond:
                self.messages.append((time.monotonic(), fields))
                self._cond.notify_all()

    def wait_for(self, key: str, value: str, after: int = 0, timeout: float = 60) -> int:
        """Index of the first message from ``after`` on with ``key=value``; fails on timeout."""

        def find() -> int | None:
            for i, (_, m) in enumerate(self.messages[after:], after):
                if m.get(key) == value:
                    return i
            return None

        with self._cond:
            assert self._cond.wait_for(lambda: find() is not None, timeout), self.messages
            found = find()
            assert found is not None
            return found

    def pings(self) -> list[float]:
        with self._cond:
            return [t for t, m in self.messages if m.get("WATCHDOG") == "1"]

    def wait_gap(self, gap: float, timeout: float) -> bool:
        """Wait until no WATCHDOG=1 has come for ``gap`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while time.monotonic() < deadline:
                pings = self.pings()
                last = pings[-1] if pings else 0.0
                quiet = time.monotonic() - last
                if quiet >= gap:
                    return True
                self._cond.wait(gap - quiet)
            return False

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, NotifySocket]]:
    path = tmp_path / "notify.sock"
    sock = NotifySocket(str(path))
    yield str(path), sock
    sock.close()


# ---- the unit file


def test_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    text = UNIT.read_text()
    for needed in (
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=",
        "Restart=on-failure",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "StateDirectory=edged",
        "CacheDirectory=edged",
        "DeviceAllow=char-video4linux rw",
        "DeviceAllow=char-nvidia-frontend rw",
        "NoNewPrivileges=yes",
        "EnvironmentFile=-/etc/edged/edged.env",
    ):
        assert re.search(rf"^{re.escape(needed)}", text, re.MULTILINE), needed
    # verify checks that ExecStart's binary exists: point it at one that does (the install
    # path /opt/edged is not on a build machine)
    copy = tmp_path / "edged.service"
    copy.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable}", text, flags=re.M))
    out = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert out.returncode == 0 and not out.stdout + out.stderr, out.stdout + out.stderr
    # verify reports a directive it does not know only as a warning: make sure it would
    bad = tmp_path / "bad.service"
    bad.write_text(copy.read_text().replace("WatchdogSec=", "WatchdogSecs="))
    out = subprocess.run([analyze, "verify", str(bad)], capture_output=True, text=True)
    assert "Unknown key 'WatchdogSecs'" in out.stderr


def test_the_store_unit_passes_verify_and_its_example_config_loads(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    text = (ROOT / "systemd" / "edged-store@.service").read_text()
    for needed in ("Type=notify", "Restart=always", "EnvironmentFile=-/etc/edged/store.env"):
        assert re.search(rf"^{re.escape(needed)}", text, re.MULTILINE), needed
    copy = tmp_path / "edged-store@.service"
    copy.write_text(re.sub(r"^ExecStart=\S+", f"ExecStart={sys.executable}", text, flags=re.M))
    out = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert out.returncode == 0 and not out.stdout + out.stderr, out.stdout + out.stderr
    config = load_model(StoreConfig, ROOT / "configs" / "store.example.yaml", env={})
    assert config.nats is not None and config.nats.durable == "edged-store"
    assert "password=" in config.postgres.dsn.get_secret_value()
    # the MQTT variant of the same file: the worker's id comes from the unit's instance
    mqtt = (ROOT / "configs" / "store.example.yaml").read_text()
    mqtt = re.sub(r"^nats:\n(  .*\n)+", "", mqtt, flags=re.M).replace("# mqtt:", "mqtt:")
    mqtt = re.sub(r"^#   ", "  ", mqtt, flags=re.M)
    (tmp_path / "store.yaml").write_text(mqtt)
    config = load_model(StoreConfig, tmp_path / "store.yaml", env={"EDGED_STORE_WORKER": "2"})
    assert config.mqtt is not None and config.mqtt.client_id == "edged-store-2"


def test_the_example_service_config_checks_with_its_environment_file(tmp_path: Path) -> None:
    """configs/edged.example.yaml as the install steps place it: paths pointed at the
    checkout, secrets from an environment file such as /etc/edged/edged.env, state under
    the state directory."""
    example = (ROOT / "configs" / "edged.example.yaml").read_text()
    placed = tmp_path / "edged.yaml"
    placed.write_text(example.replace("../", f"{ROOT}/"))
    env_file = tmp_path / "edged.env"
    env_file.write_text("CAM_PASS=s3cret\nMQTT_PASSWORD=broker-pass\nCAM_HOST=10.0.0.7\n")
    state = tmp_path / "state"
    script = f"set -a; . {env_file}; exec {sys.executable} -m edged check {placed}"
    out = subprocess.run(
        ["sh", "-c", script],
        capture_output=True,
        text=True,
        env={**os.environ, "EDGED_STATE_DIR": str(state)},
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "OK (1 camera(s), 1 model(s))" in out.stdout
    # the journal and snapshots go to the state directory, the only place the unit can write
    config = load(placed, env={"EDGED_STATE_DIR": str(state), "CAM_PASS": "s3cret"})
    assert config.journal.path.is_relative_to(state)
    snapshots = config.cameras["entrance"].snapshots
    assert snapshots is not None and snapshots.dir is not None
    assert snapshots.dir.is_relative_to(state)
    assert "s3cret@" in config.cameras["entrance"].source.uri


# ---- sd_notify


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_notifier_sends_datagrams_to_path_and_abstract_sockets(
    tmp_path: Path, abstract: bool
) -> None:
    name = f"edged-test-{uuid.uuid4().hex}"
    address = f"\0{name}" if abstract else str(tmp_path / "n.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(address)
    server.settimeout(5)
    notifier = Notifier({"NOTIFY_SOCKET": f"@{name}" if abstract else address})
    try:
        assert notifier.ready("ready: 1 camera(s)")
        assert server.recv(4096) == b"READY=1\nSTATUS=ready: 1 camera(s)"
        assert notifier.reloading()
        fields = server.recv(4096).decode().splitlines()
        assert fields[0] == "RELOADING=1"
        usec = int(fields[1].removeprefix("MONOTONIC_USEC="))
        assert abs(usec / 1e6 - time.clock_gettime(time.CLOCK_MONOTONIC)) < 5
        assert notifier.watchdog()
        assert server.recv(4096) == b"WATCHDOG=1"
    finally:
        notifier.close()
        server.close()


def test_notifier_without_socket_does_nothing() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.ready("x")


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "10000000"}) == 5.0
    pid = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None


# ---- progress: what keeps the watchdog fed


def test_progress_monitor_tells_a_stall_from_waiting() -> None:
    monitor = ProgressMonitor(stall_s=1.0)
    cams = {
        "busy": CameraProgress(processed=10, delivered=10, waiting=False),
        "reconnecting": CameraProgress(processed=3, delivered=3, waiting=False),
        "wedged": CameraProgress(processed=5, delivered=6, waiting=True),
    }
    assert monitor.update(0.0, cams) == []
    for t in (0.5, 1.0, 1.5, 2.0):
        cams["busy"] = CameraProgress(int(10 + 10 * t), int(10 + 10 * t), waiting=True)
        # a live source keeps replacing the frame nobody takes
        w = cams["wedged"]
        cams["wedged"] = CameraProgress(w.processed, w.delivered + 3, waiting=True)
        stalled = monitor.update(t, cams)
    assert stalled == ["wedged"]
    # it processes again: healthy at once
    cams["wedged"] = CameraProgress(6, cams["wedged"].delivered, waiting=False)
    assert monitor.update(2.5, cams) == []
    # restarted by a reload: its counters start again from zero, and so does its clock
    cams["busy"] = CameraProgress(40, 40, waiting=False)  # idle between frames
    cams["wedged"] = CameraProgress(0, 1, waiting=True)
    assert monitor.update(4.0, cams) == []
    assert monitor.update(4.5, cams) == []
    assert monitor.update(5.5, cams) == ["wedged"]
    # a camera removed by a reload is forgotten
    del cams["wedged"]
    assert monitor.update(6.0, cams) == []


# ---- journal logs


def test_journal_format_has_priorities_and_no_timestamp(tmp_path: Path) -> None:
    fmt = JournalFormatter()

    def line(level: int, msg: str) -> str:
        return fmt.format(logging.LogRecord("edged.x", level, __file__, 1, msg, None, None))

    assert line(logging.INFO, "running") == "<6>edged.x: running"
    assert line(logging.WARNING, "retry") == "<4>edged.x: retry"
    assert line(logging.ERROR, "a\nb") == "<3>edged.x: a\n<3>b"
    with open(tmp_path / "log", "w") as f:
        st = os.fstat(f.fileno())
        assert to_journal(f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not to_journal(f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not to_journal(f, {})


def test_daemon_logs_with_priorities_on_the_journal_stream(tmp_path: Path) -> None:
    config = camera_config(tmp_path, {"uri": f"rtsp://127.0.0.1:{closed_port()}/cam"})
    log = tmp_path / "stderr"
    with open(log, "w") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "edged", "run", str(config), "--print-events"],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            text=True,
        )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the camera's first retry: a warning has been logged
            if '"status":"reconnecting"' in line:
                break
        proc.terminate()
        assert proc.wait(5) == 0
    finally:
        proc.kill()
        proc.wait()
    lines = log.read_text().splitlines()
    assert "<6>edged.service.daemon: running 1 camera(s) on 1 model(s)" in lines
    assert any(
        re.fullmatch(r"<4>edged\.sources\.base: cam: .*Connection refused.*", ln) for ln in lines
    )
    assert all(re.match(r"<[0-7]>", ln) for ln in lines), lines


# ---- the daemon under a notify socket


def test_ready_after_first_frames_then_pings_stop_when_the_pipeline_stalls(
    tmp_path: Path, notify_socket: tuple[str, NotifySocket]
) -> None:
    """The stall: nobody reads the daemon's event output, so its analytics block writing
    events, the queues fill and frames wait unprocessed (a wedged worker, as seen from
    outside). The source keeps delivering; only progress is missing."""
    address, sock = notify_socket
    config = camera_config(tmp_path, {"uri": str(CLIP), "realtime": False, "loop": True})
    data = yaml.safe_load(config.read_text())
    # a zone over the whole picture: an occupancy event whenever the count changes
    data["cameras"]["cam"]["zones"] = {"all": {"polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}}
    config.write_text(yaml.safe_dump(data))
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "2000000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edged", "run", str(config), "--print-events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    # the smallest pipe (one page), so that unread output blocks the daemon within seconds
    fcntl.fcntl(proc.stdout.fileno(), fcntl.F_SETPIPE_SZ, 4096)
    stderr: list[bytes] = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stderr.append(line)

    threading.Thread(target=read_stderr, daemon=True).start()
    try:
        ready = sock.wait_for("READY", "1")
        assert sock.messages[ready][1]["STATUS"] == "ready: 1 camera(s) processing"
        sock.wait_for("WATCHDOG", "1")
        # stdout is not read: the pipe fills, then no frame is processed and pings stop
        assert sock.wait_gap(3.0, timeout=60), sock.pings()
        assert proc.poll() is None
        assert any(b"no progress: frames wait unprocessed on cam" in ln for ln in stderr)
        stalled = len(sock.messages)
        # the status says why
        assert any(m.get("STATUS", "").startswith("stalled: cam") for _, m in sock.messages)
        # read the output again: frames flow, pings resume
        out = proc.stdout
        assert out is not None
        threading.Thread(target=out.read, daemon=True).start()
        sock.wait_for("WATCHDOG", "1", after=stalled, timeout=30)
        proc.terminate()
        assert proc.wait(5) == 0
        sock.wait_for("STOPPING", "1", after=stalled, timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ready_after_the_timeout_names_the_camera_without_frames(
    tmp_path: Path, notify_socket: tuple[str, NotifySocket]
) -> None:
    address, sock = notify_socket
    config = camera_config(
        tmp_path,
        {"uri": f"rtsp://127.0.0.1:{closed_port()}/cam"},
        service={"ready_timeout_s": 1.0},
    )
    data = yaml.safe_load(config.read_text())
    data["cameras"]["good"] = {
        "source": {"uri": str(CLIP), "loop": True},
        "detect": {"model": "coco"},
    }
    config.write_text(yaml.safe_dump(data))
    daemon = Daemon(config, env={"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"})
    try:
        ready = sock.wait_for("READY", "1")
        assert sock.messages[ready][1]["STATUS"] == "ready; no frame yet from cam"
        # a camera that keeps reconnecting is waiting, not stalled: the pings go on
        first = sock.wait_for("WATCHDOG", "1", after=ready)
        sock.wait_for("WATCHDOG", "1", after=first + 1)
        assert daemon.logged("ready after 1 s without a first frame from: cam"), daemon.stderr
        assert daemon.terminate(within=5.0) < 5.0
    finally:
        daemon.kill()


def test_notifier_reports_a_missing_socket_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    with caplog.at_level(logging.WARNING, "edged.service.systemd"):
        assert not notifier.watchdog() and not notifier.watchdog()
    assert len(caplog.records) == 1 and "gone.sock" in caplog.records[0].getMessage()
    notifier.close()
