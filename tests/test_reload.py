"""A reload as a plan of actions (which cameras restart, which change in place), and a camera's
analytics taking new settings while keeping the state they do not touch."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edged.camera.analytics import CameraAnalytics
from edged.config import Config, load
from edged.config.events import JournalConfig
from edged.core.detections import Detections
from edged.core.frame import Frame
from edged.outputs.journal import Journal
from edged.outputs.sink import EventSink
from edged.pipeline import Pipeline
from edged.service.daemon import exit_code
from edged.service.reload import Outcome, apply, effective, plan
from tests.onnx_fixtures import model_beside
from tests.paths import CLIP, MODEL

TOP_LEFT = [[0.0, 0.0], [0.5, 0.0], [0.5, 0.5], [0.0, 0.5]]
BOTTOM = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]
WHOLE = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


def base() -> dict[str, Any]:
    cam = {"source": {"uri": str(CLIP)}, "detect": {"model": "coco"}}
    return {
        "device_id": "box",
        "mqtt": {"host": "127.0.0.1"},
        "models": {"coco": {"path": str(MODEL), "backend": "cpu"}},
        "cameras": {n: yaml.safe_load(yaml.safe_dump(cam)) for n in ("a", "b", "c")},
    }


def config(tmp_path: Path, data: dict[str, Any]) -> Config:
    path = tmp_path / "edged.yaml"
    path.write_text(yaml.safe_dump(data))
    return load(path)


def test_plan_puts_each_change_in_its_smallest_action(tmp_path: Path) -> None:
    old = base()
    new = base()
    new["cameras"]["a"]["zones"] = {"door": {"polygon": TOP_LEFT}}  # analytics only
    new["cameras"]["b"]["source"]["realtime"] = False  # its source
    del new["cameras"]["c"]
    new["cameras"]["d"] = base()["cameras"]["a"]
    new["mqtt"]["port"] = 1884
    new["outputs"] = {"nats": {"servers": ["nats://127.0.0.1:4222"]}}
    actions = plan(config(tmp_path, old), config(tmp_path, new))
    assert actions.updated == ["a"]
    assert actions.restarted == ["b"]
    assert (actions.added, actions.removed) == (["d"], ["c"])
    assert actions.needs_restart == ["mqtt", "outputs"] and actions.models == []
    assert actions.summary() == (
        "added d; removed c; restarted b; updated a; not applied until restart mqtt, outputs"
    )


def test_plan_restarts_the_cameras_of_a_changed_model(tmp_path: Path) -> None:
    old, new = base(), base()
    new["models"]["coco"]["threads"] = 1
    new["cameras"]["c"]["enabled"] = False
    actions = plan(config(tmp_path, old), config(tmp_path, new))
    assert actions.models == ["coco"]
    assert actions.restarted == ["a", "b"] and actions.removed == ["c"]
    assert actions.updated == []


def test_plan_of_an_equal_config_does_nothing(tmp_path: Path) -> None:
    old = base()
    new = base()
    # written differently, equal in value
    new["cameras"]["a"]["detect"]["nms_iou"] = 0.5
    actions = plan(config(tmp_path, old), config(tmp_path, new))
    assert actions.summary() == "no changes"


def test_sections_that_need_a_restart_keep_their_running_values(tmp_path: Path) -> None:
    old, new = base(), base()
    new["mqtt"]["port"] = 1884
    new["stats_interval_s"] = 5
    running, loaded = config(tmp_path, old), config(tmp_path, new)
    now = effective(running, loaded, plan(running, loaded))
    assert now.mqtt == running.mqtt
    assert now.stats_interval_s == 5


# ---- analytics taking new settings


def person_at(analytics: CameraAnalytics, t: float, x: float, y: float) -> list:
    """One frame (400×400) with one person whose bottom centre is at (x, y) pixels."""
    image = np.zeros((400, 400, 3), np.uint8)
    frame = Frame("cam", int(t * 10), t, 1000.0 + t, t, image)
    dets = Detections(
        xyxy=np.array([[x - 20, y - 80, x + 20, y]], np.float32),
        score=np.array([0.9], np.float32),
        class_id=np.array([0], np.int32),
    )
    return analytics.process(frame, dets)


def of(events: list, kind: str) -> list[str]:
    return [e.payload.get("zone") for e in events if e.kind == kind]


def camera(tmp_path: Path, zones: dict[str, Any], **extra: Any) -> Any:
    data = base()
    data["cameras"] = {"cam": {**base()["cameras"]["a"], "zones": zones, **extra}}
    return config(tmp_path, data).cameras["cam"]


def test_geometry_outside_the_picture_is_warned_of_at_the_first_frame(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    far = [[600.0, 600.0], [700.0, 600.0], [700.0, 700.0]]  # pixels, beyond the 400×400 frame
    cam = camera(
        tmp_path,
        {"far": {"polygon": far}, "near": {"polygon": TOP_LEFT}},
        lines={"off": {"points": [[500.0, 0.0], [500.0, 300.0]]}},
    )
    analytics = CameraAnalytics("cam", cam, ["person"])
    with caplog.at_level(logging.WARNING):
        person_at(analytics, 0.0, 100, 150)
        person_at(analytics, 0.1, 100, 150)
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [
        "cam: zone far lies wholly outside the 400x400 picture: it will never count",
        "cam: line off lies wholly outside the 400x400 picture: it will never count",
    ]


def test_new_zone_applies_in_place_keeping_tracks_and_unchanged_zones(tmp_path: Path) -> None:
    analytics = CameraAnalytics("cam", camera(tmp_path, {"a": {"polygon": TOP_LEFT}}), ["person"])
    entered = []
    for i in range(4):
        entered += person_at(analytics, i * 0.1, 100, 150)
    assert of(entered, "zone_enter") == ["a"]
    tracker, zone_a = analytics.tracker, analytics.zones[0]
    zones = {"a": {"polygon": TOP_LEFT}, "all": {"polygon": WHOLE}}
    assert analytics.reconfigure(camera(tmp_path, zones)) == []
    events = person_at(analytics, 0.4, 100, 150)
    # the same track enters the new zone only; zone a and the tracker kept their state
    assert of(events, "zone_enter") == ["all"]
    assert not [e for e in events if e.kind == "object" and e.payload["type"] == "new"]
    assert analytics.tracker is tracker and analytics.zones[0] is zone_a

    # zone a moves: its visitor exits the old shape at once, the new one starts empty
    zones["a"] = {"polygon": BOTTOM}
    events = analytics.reconfigure(camera(tmp_path, zones))
    assert of(events, "zone_exit") == ["a"]
    assert analytics.zones[0] is not zone_a and analytics.zones[1].inside
    assert of(person_at(analytics, 0.5, 100, 150), "zone_enter") == []

    # new tracker settings restart tracking: every object ends
    events = analytics.reconfigure(camera(tmp_path, zones, tracker={"min_hits": 3}))
    assert [e.payload["type"] for e in events if e.kind == "object"] == ["end"]
    assert analytics.tracker is not tracker and analytics.active_tracks == 0


# ---- the running pipeline


def short_clip(path: Path, frames: int = 3) -> Path:
    """A few frames of the sample clip, so a camera on it ends at once."""
    import av

    with av.open(str(CLIP)) as src, av.open(str(path), "w") as dst:
        stream = dst.add_stream("mpeg4", rate=7)
        stream.width, stream.height = 768, 576
        for i, frame in enumerate(src.decode(video=0)):
            if i == frames:
                break
            for packet in stream.encode(frame.reformat(format="yuv420p")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    return path


def pipeline_on(tmp_path: Path, data: dict[str, Any]) -> tuple[Pipeline, Journal, EventSink]:
    journal = Journal(JournalConfig(path=tmp_path / "events.db"))
    sink = EventSink(journal)
    return Pipeline(config(tmp_path, data), sink), journal, sink


def wait_processed(pipeline: Pipeline, name: str, n: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    cam = pipeline.cameras[name]
    while cam.processed < n:
        assert time.monotonic() < deadline, f"{name} processed {cam.processed} of {n}"
        cam.join(0.05)  # the analytics thread ends only with the camera: a bounded wait


def test_model_change_reloads_the_model_and_restarts_its_cameras(tmp_path: Path) -> None:
    data = base()
    del data["cameras"]["c"]
    for cam in data["cameras"].values():
        cam["source"].update(loop=True)
    pipeline, journal, _ = pipeline_on(tmp_path, data)
    pipeline.start()
    try:
        wait_processed(pipeline, "a", 2)
        old_worker, old_a = pipeline.workers["coco"], pipeline.cameras["a"]
        data["models"]["coco"]["threads"] = 1
        new = config(tmp_path, data)
        running = pipeline.config
        actions = plan(running, new)
        assert (actions.models, actions.restarted) == (["coco"], ["a", "b"])
        assert apply(actions, pipeline, running, new, stop_timeout=5) == Outcome()
        worker = pipeline.workers["coco"]
        assert worker is not old_worker and worker.detector is not old_worker.detector
        assert pipeline.cameras["a"] is not old_a and old_a.done
        assert old_worker.join(5)  # its cameras left: it ended
        wait_processed(pipeline, "a", 2)
        wait_processed(pipeline, "b", 2)
    finally:
        assert pipeline.stop(5)
        journal.close()


def test_a_camera_that_cannot_restart_keeps_running_on_its_old_settings(tmp_path: Path) -> None:
    """Its new snapshot folder cannot be made (a regular file is in the way): the camera
    that runs is not stopped for a replacement that cannot start."""
    data = base()
    del data["cameras"]["c"]
    for cam in data["cameras"].values():
        cam["source"].update(loop=True)
    pipeline, journal, _ = pipeline_on(tmp_path, data)
    pipeline.start()
    try:
        wait_processed(pipeline, "a", 2)
        old_a, old_b = pipeline.cameras["a"], pipeline.cameras["b"]
        (tmp_path / "in-the-way").write_text("")
        data["cameras"]["a"]["snapshots"] = {"dir": str(tmp_path / "in-the-way" / "snaps")}
        data["cameras"]["b"]["source"]["realtime"] = False  # b restarts fine
        running, new = pipeline.config, config(tmp_path, data)
        actions = plan(running, new)
        assert actions.restarted == ["a", "b"]
        outcome = apply(actions, pipeline, running, new, stop_timeout=5)
        assert list(outcome.cameras) == ["a"] and "in-the-way" in outcome.cameras["a"]
        assert pipeline.cameras["a"] is old_a and not old_a.done
        assert pipeline.cameras["b"] is not old_b and old_b.done
        # what runs is what the next reload compares with: a's old settings, b's new ones
        now = outcome.running(running, new)
        assert now.cameras["a"] == running.cameras["a"] and now.cameras["b"] == new.cameras["b"]
        before = old_a.processed
        wait_processed(pipeline, "a", before + 2)
    finally:
        assert pipeline.stop(5)
        journal.close()


def test_a_model_that_cannot_load_again_keeps_its_cameras_running(tmp_path: Path) -> None:
    data = base()
    del data["cameras"]["c"]
    for cam in data["cameras"].values():
        cam["source"].update(loop=True)
    pipeline, journal, _ = pipeline_on(tmp_path, data)
    pipeline.start()
    try:
        wait_processed(pipeline, "a", 2)
        old_worker, old_a = pipeline.workers["coco"], pipeline.cameras["a"]
        broken = model_beside(tmp_path, MODEL.read_bytes()[:100_000])
        data["models"]["coco"]["path"] = str(broken)
        running, new = pipeline.config, config(tmp_path, data)
        actions = plan(running, new)
        outcome = apply(actions, pipeline, running, new, stop_timeout=5)
        assert list(outcome.models) == ["coco"]
        assert "cannot load the model" in outcome.models["coco"]
        assert sorted(outcome.cameras) == ["a", "b"]
        assert pipeline.workers["coco"] is old_worker and pipeline.cameras["a"] is old_a
        assert outcome.running(running, new).models["coco"] == running.models["coco"]
        wait_processed(pipeline, "a", old_a.processed + 2)
    finally:
        assert pipeline.stop(5)
        journal.close()


def test_the_daemon_fails_when_a_camera_of_its_config_never_ran(tmp_path: Path) -> None:
    """As when a reload added a camera that could not start and the others then ended: the
    exit code says so, unless a signal stopped the daemon."""
    data = base()
    data["cameras"] = {"a": base()["cameras"]["a"]}
    data["cameras"]["a"]["source"] = {"uri": str(short_clip(tmp_path / "short.mp4"))}
    pipeline, journal, _ = pipeline_on(tmp_path, data)
    pipeline.start()
    try:
        assert pipeline.wait(30)
        configured = config(tmp_path, {**data, "cameras": base()["cameras"]})
        assert exit_code(pipeline.config, pipeline, None, stopped=False) == 0
        assert exit_code(configured, pipeline, None, stopped=False) == 1
        assert exit_code(configured, pipeline, None, stopped=True) == 0
        assert exit_code(pipeline.config, pipeline, "model coco: gone", stopped=True) == 1
    finally:
        assert pipeline.stop(5)
        journal.close()


def test_a_camera_added_after_every_camera_of_its_model_ended(tmp_path: Path) -> None:
    data = base()
    data["cameras"] = {"a": base()["cameras"]["a"]}
    data["cameras"]["a"]["source"] = {"uri": str(short_clip(tmp_path / "short.mp4"))}
    data["cameras"]["a"]["source"]["realtime"] = False
    pipeline, journal, _ = pipeline_on(tmp_path, data)
    pipeline.start()
    try:
        assert pipeline.wait(30) and pipeline.cameras["a"].processed == 3
        ended = pipeline.workers["coco"]
        assert ended.join(5)
        pipeline.add_camera("b", config(tmp_path, base()).cameras["b"])
        assert pipeline.workers["coco"] is not ended
        assert pipeline.workers["coco"].detector is ended.detector  # not loaded again
        wait_processed(pipeline, "b", 3)
    finally:
        assert pipeline.stop(5)
        journal.close()


def test_a_reload_starts_a_camera_that_is_missing_from_the_pipeline(tmp_path: Path) -> None:
    """As after a reload where its model failed to load: the next reload tries it again."""
    data = base()
    del data["cameras"]["c"]
    for cam in data["cameras"].values():
        cam["source"].update(loop=True)
    pipeline, journal, _ = pipeline_on(tmp_path, data)
    pipeline.start()
    try:
        wait_processed(pipeline, "b", 1)
        assert pipeline.remove_cameras(["b"], 5)
        a = pipeline.cameras["a"]
        same = config(tmp_path, data)
        actions = plan(pipeline.config, same)
        assert actions.summary() == "no changes"
        assert apply(actions, pipeline, pipeline.config, same, stop_timeout=5) == Outcome()
        assert pipeline.cameras["a"] is a
        wait_processed(pipeline, "b", 1)
    finally:
        assert pipeline.stop(5)
        journal.close()


def test_plan_restarts_a_camera_whose_snapshots_change_and_defers_home_assistant(
    tmp_path: Path,
) -> None:
    old, new = base(), base()
    new["cameras"]["a"]["snapshots"] = {"mode": "crop"}  # built with the camera's worker
    new["cameras"]["b"]["updates"] = {"min_interval_s": 5.0}  # applied in place
    new["homeassistant"] = {}  # discovery is sent by the publisher it was started with
    actions = plan(config(tmp_path, old), config(tmp_path, new))
    assert actions.restarted == ["a"] and actions.updated == ["b"]
    assert actions.needs_restart == ["homeassistant"]


def test_new_update_rules_apply_in_place(tmp_path: Path) -> None:
    old, new = base(), base()
    new["cameras"]["a"]["updates"] = {"min_interval_s": 5.0, "heartbeat_s": 30.0}
    running, reloaded = config(tmp_path, old), config(tmp_path, new)
    analytics = CameraAnalytics("a", running.cameras["a"], ["person"])
    tracker = analytics.tracker
    analytics.reconfigure(reloaded.cameras["a"])
    assert analytics.lifecycle.rules == reloaded.cameras["a"].updates
    assert analytics.tracker is tracker  # the tracks go on
