"""SIGHUP reloads and SIGTERM drains, on a real daemon process with a real broker and source:
a reload applies what changed without touching the rest, a bad config changes nothing."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from tests.daemon import Daemon
from tests.mqtt_helpers import Broker, Subscriber
from tests.paths import CLIP, MODEL

WHOLE_PICTURE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


def camera() -> dict[str, Any]:
    # a looping clip at its own 7 fps: a camera that never ends
    return {
        "source": {"uri": str(CLIP), "loop": True, "realtime": True},
        "detect": {"model": "coco", "classes": ["person"]},
    }


def two_cameras(tmp_path: Path, broker: Broker) -> dict[str, Any]:
    return {
        "device_id": "test",
        "mqtt": {"host": broker.host, "port": broker.port},
        "journal": {"path": str(tmp_path / "events.db")},
        "stats_interval_s": 0.3,
        "models": {"coco": {"path": str(MODEL), "backend": "cpu", "threads": 1}},
        "cameras": {"a": camera(), "b": camera()},
    }


def write(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "edged.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def processed(events: list[dict[str, Any]], cam: str) -> int:
    """The camera's frame counter in the latest stats (-1 before it appears)."""
    for e in reversed(events):
        if e["kind"] == "stats" and cam in e["cameras"]:
            return int(e["cameras"][cam]["processed"])
    return -1


def counters(daemon: Daemon, cam: str) -> list[int]:
    return [s["cameras"][cam]["processed"] for s in daemon.kinds("stats") if cam in s["cameras"]]


def reloaded(daemon: Daemon, n: int) -> dict[str, Any]:
    """Wait for the ``n``-th config_reload event and return it."""
    assert daemon.wait_for(lambda ev: sum(e["kind"] == "config_reload" for e in ev) >= n, 60), (
        daemon.stderr
    )
    return daemon.kinds("config_reload")[n - 1]


def running(daemon: Daemon, *cams: str, more_than: int = 5) -> None:
    assert daemon.wait_for(lambda ev: all(processed(ev, c) > more_than for c in cams), 60), (
        daemon.stderr
    )


def test_sighup_applies_a_zone_change_and_leaves_the_other_camera_running(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    config = two_cameras(tmp_path, mqtt_broker)
    path = write(tmp_path, config)
    with Subscriber(mqtt_broker.host, mqtt_broker.port, "edged/test/#") as sub:
        daemon = Daemon(path)
        try:
            running(daemon, "a", "b")
            assert not daemon.kinds("zone_enter")
            statuses = len(daemon.statuses())
            b_before = processed(daemon.events, "b")
            config["cameras"]["a"]["zones"] = {"hall": {"polygon": WHOLE_PICTURE}}
            write(tmp_path, config)
            daemon.reload()
            event = reloaded(daemon, 1)
            assert event["status"] == "ok"
            assert (event["updated"], event["restarted"], event["added"], event["removed"]) == (
                ["a"],
                [],
                [],
                [],
            )
            # the new zone counts people on the running camera, live and on the broker
            assert daemon.wait_for(
                lambda ev: any(e["kind"] == "zone_enter" and e["zone"] == "hall" for e in ev), 30
            ), daemon.stderr
            assert sub.wait_for(
                lambda: any(m.topic == "edged/test/a/zones/hall" for m in sub.messages), 10
            )
            assert any(m.topic == "edged/test/config" for m in sub.messages)
            # b went on counting from where it was: never restarted, no gap
            running(daemon, "b", more_than=b_before + 10)
            b = counters(daemon, "b")
            assert b == sorted(b) and b[0] <= b_before
            # neither source was stopped or reconnected (a looping clip says "online" again
            # at each pass; a restart would say "offline" first)
            assert all(s["status"] == "online" for s in daemon.statuses()[statuses:])
            assert daemon.logged("reload: updated a"), daemon.stderr
            assert daemon.terminate(within=5.0) < 5.0
            assert daemon.proc.returncode == 0, daemon.stderr
        finally:
            daemon.kill()


def test_a_bad_reload_is_rejected_logged_and_the_old_config_kept(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    config = two_cameras(tmp_path, mqtt_broker)
    config["cameras"]["a"]["zones"] = {"hall": {"polygon": WHOLE_PICTURE}}
    path = write(tmp_path, config)
    daemon = Daemon(path)
    try:
        running(daemon, "a", "b")
        # a schema error: the place is file:line:col of the key, as `edged check` prints it
        config["cameras"]["a"]["zones"]["hall"]["polygon"] = [[0.1, 0.1], [0.9, 0.9]]
        write(tmp_path, config)
        daemon.reload()
        event = reloaded(daemon, 1)
        assert event["status"] == "rejected"
        [error] = event["errors"]
        m = re.fullmatch(
            re.escape(str(path)) + r":(\d+):\d+: cameras\.a\.zones\.hall\.polygon: "
            r"a polygon needs at least 3 points, got 2",
            error,
        )
        assert m, error
        assert "polygon:" in path.read_text().splitlines()[int(m.group(1)) - 1]
        assert daemon.logged(f"error: {error}"), daemon.stderr
        # an error only the loaded model can find (a label it does not have)
        config["cameras"]["a"]["zones"]["hall"]["polygon"] = WHOLE_PICTURE
        config["cameras"]["b"]["detect"]["classes"] = ["unicorn"]
        write(tmp_path, config)
        daemon.reload()
        event = reloaded(daemon, 2)
        assert event["status"] == "rejected"
        assert "cameras.b.detect.classes" in event["errors"][0]
        assert "unicorn" in event["errors"][0]
        # still running on the first config: both cameras process, the zone still counts
        a, b = processed(daemon.events, "a"), processed(daemon.events, "b")
        running(daemon, "a", "b", more_than=max(a, b) + 10)
        enters = len(daemon.kinds("zone_enter", "a"))
        assert daemon.wait_for(
            lambda ev: sum(e["kind"] == "zone_enter" and e["camera"] == "a" for e in ev) > enters,
            30,
        )
        assert daemon.kinds("camera_status", "b")[-1]["status"] == "online"
        assert daemon.proc.poll() is None
        assert daemon.terminate(within=5.0) < 5.0
    finally:
        daemon.kill()


def test_reload_adds_and_removes_cameras_then_sigterm_drains(
    tmp_path: Path, mqtt_broker: Broker
) -> None:
    config = two_cameras(tmp_path, mqtt_broker)
    path = write(tmp_path, config)
    with Subscriber(mqtt_broker.host, mqtt_broker.port, "edged/test/#") as sub:
        daemon = Daemon(path)
        try:
            running(daemon, "a", "b")
            a_statuses = len(daemon.kinds("camera_status", "a"))
            del config["cameras"]["b"]
            config["cameras"]["c"] = camera()
            write(tmp_path, config)
            daemon.reload()
            event = reloaded(daemon, 1)
            assert (event["status"], event["added"], event["removed"]) == ("ok", ["c"], ["b"])
            assert daemon.kinds("camera_status", "b")[-1]["status"] == "offline"
            running(daemon, "c", more_than=10)
            assert "b" not in daemon.kinds("stats")[-1]["cameras"]
            assert all(
                s["status"] == "online" for s in daemon.kinds("camera_status", "a")[a_statuses:]
            )
            assert sub.wait_for(
                lambda: any(m.topic == "edged/test/c/status" for m in sub.messages), 10
            )
            # SIGTERM: frames in flight finish, every event is delivered, then offline
            assert daemon.terminate(within=5.0) < 5.0
            assert daemon.proc.returncode == 0, daemon.stderr
            assert "received SIGTERM" in daemon.stderr
            assert daemon.kinds("camera_status", "a")[-1]["status"] == "offline"
            # every object seen was ended: by the removal (b), by the stop (a, c)
            for cam in ("a", "b", "c"):
                objects = daemon.kinds("object", cam)
                new = {e["after"]["track_id"] for e in objects if e["type"] == "new"}
                ended = {e["after"]["track_id"] for e in objects if e["type"] == "end"}
                assert new and new == ended, cam
            assert sub.wait_for(
                lambda: (
                    sub.messages[-1].topic == "edged/test/availability"
                    and sub.messages[-1].payload == b"offline"
                ),
                5,
            )
        finally:
            daemon.kill()
    with sqlite3.connect(tmp_path / "events.db") as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0
