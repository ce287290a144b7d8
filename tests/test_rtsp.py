"""RTSP cameras that drop and come back, against GStreamer's RTSP server started here."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edged.config.camera import SourceConfig
from edged.sources.base import SourceState, StateChange
from edged.sources.factory import make_source
from edged.sources.slot import FrameSlot
from tests.conftest import Broker
from tests.daemon import Daemon, camera_config
from tests.mqtt_helpers import Subscriber
from tests.paths import CLIP
from tests.rtsp import RtspServer, gst_rtsp_available

FAST_RETRY = {"floor_s": 0.2, "ceiling_s": 1.0, "jitter": 0.2}


@pytest.fixture
def rtsp_server(tmp_path: Path) -> Iterator[RtspServer]:
    reason = gst_rtsp_available()
    assert reason is None, f"GStreamer's RTSP server is needed: {reason}"
    server = RtspServer(CLIP, tmp_path)
    server.start()
    yield server
    server.stop()


def processed(events: list[dict]) -> int:
    stats = [e for e in events if e["kind"] == "stats"]
    return stats[-1]["cameras"]["cam"]["processed"] if stats else 0


def status_after(daemon: Daemon, since: int, status: str, timeout: float = 15) -> bool:
    return daemon.wait_for(
        lambda ev: any(s["status"] == status for s in daemon.statuses()[since:]), timeout
    )


def test_daemon_reports_reconnecting_then_online_after_server_restarts(
    rtsp_server: RtspServer, mqtt_broker: Broker, tmp_path: Path
) -> None:
    source = {
        "uri": rtsp_server.url,
        "read_timeout_s": 2.0,
        "open_timeout_s": 2.0,
        "stall_timeout_s": 3.0,
        "reconnect": FAST_RETRY,
    }
    mqtt = {"host": mqtt_broker.host, "port": mqtt_broker.port}
    config = camera_config(tmp_path, source, mqtt=mqtt, stats_interval_s=0.5)
    with Subscriber(mqtt_broker.host, mqtt_broker.port, "edged/test/cam/status") as sub:
        daemon = Daemon(config)
        try:
            assert daemon.wait_for(lambda ev: processed(ev) > 10, 30), daemon.stderr
            recoveries = []
            for cycle in range(3):
                rtsp_server.kill()
                assert status_after(daemon, len(daemon.statuses()), "reconnecting"), (
                    f"cycle {cycle}: no reconnecting status\n{daemon.stderr}"
                )
                rtsp_server.start()
                back = time.monotonic()
                assert status_after(daemon, len(daemon.statuses()), "online"), (
                    f"cycle {cycle}: not online again\n{daemon.stderr}"
                )
                recoveries.append(time.monotonic() - back)
                before = processed(daemon.events)
                assert daemon.wait_for(lambda ev, n=before: processed(ev) > n + 5, 10), (
                    f"cycle {cycle}: frames do not flow again"
                )
            # backoff tops out at 1 s (+20 % jitter), an open takes about half a second
            assert max(recoveries) < 4.0, recoveries
            assert daemon.terminate(within=5.0) < 5.0
        finally:
            daemon.kill()
        published = [m for m in sub.json()]
        assert [m["status"] for m in published].count("online") >= 4
        reconnecting = [m for m in published if m["status"] == "reconnecting"]
        assert reconnecting and all(m["attempt"] >= 1 and m["reason"] for m in reconnecting)
        assert published[-1]["status"] == "offline"
    print(f"recovery after the server returned: {[round(r, 2) for r in recoveries]} s")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_repeated_outages_leak_no_threads_or_descriptors(rtsp_server: RtspServer) -> None:
    wake = threading.Condition()
    slot = FrameSlot(wake, block=False)
    changes: list[StateChange] = []
    changed = threading.Condition()

    def record(change: StateChange) -> None:
        with changed:
            changes.append(change)
            changed.notify_all()

    config = SourceConfig(
        uri=rtsp_server.url, read_timeout_s=2.0, open_timeout_s=2.0, reconnect=FAST_RETRY
    )
    source = make_source("cam", config, slot, record)

    def frames_flow(count: int = 5) -> None:
        got = 0
        with wake:
            while got < count:
                if slot.take() is not None:
                    got += 1
                else:
                    assert wake.wait(15), f"no frames: {changes[-3:]}"

    source.start()
    try:
        frames_flow()
        baseline = (threading.active_count(), open_fds())
        samples = []
        for _ in range(4):
            seen = len(changes)
            rtsp_server.kill()
            with changed:
                assert changed.wait_for(
                    lambda n=seen: any(c.state is SourceState.RECONNECTING for c in changes[n:]),
                    15,
                ), "the outage was not noticed"
            rtsp_server.start()
            frames_flow()
            samples.append((threading.active_count(), open_fds()))
    finally:
        source.stop()
        assert source.join(5)
    assert all(threads <= baseline[0] for threads, _ in samples), (baseline, samples)
    assert all(fds <= baseline[1] + 2 for _, fds in samples), (baseline, samples)
    assert samples[-1][1] <= samples[0][1], samples
