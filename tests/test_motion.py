"""Motion-gated detection: the motion measure on real frames (a still stretch of the shelf
clip, the walkway's people), the gate's decisions, and the pipeline and daemon end to end:
the detector sleeps through a still stretch but for the keep-alive, wakes on the first moving
frame, keeps running while a track stands still; skipped frames are counted, keep a camera
healthy, and a reload of ``detect.motion`` applies live."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest
import yaml
from pydantic import ValidationError
from shapely.geometry import LineString, Polygon

from edged.analytics.motion import MotionMeter, Region, region_mask, small_size
from edged.camera.gate import MotionGate
from edged.config import Config
from edged.config.camera import DetectConfig, MotionConfig
from edged.core.event import Event
from edged.core.frame import Frame
from edged.outputs.journal import Journal
from edged.outputs.sink import EventSink
from edged.pipeline import CameraRuntime, Pipeline
from edged.service.daemon import stats_event
from edged.service.stats import Rates
from edged.web.metrics import PipelineCollector
from tests.daemon import Daemon
from tests.mqtt_helpers import free_port
from tests.paths import CLIP, MODEL, ROOT
from tests.test_observability import get, poll, samples, scrape

SHELF = ROOT / "samples" / "shelf-bottles.mp4"
SHELF_FPS = 29.83
# frames of the shelf clip where nothing moves: no hand, no arm's shadow on the wall or shelf
# (2.85–4.96 s; the camera's noise and exposure pumping are there)
SHELF_STILL = range(85, 149)
# a hand reaching for the left bottle and taking it (6.9–7.9 s)
SHELF_HAND = range(206, 236)
DEFAULTS = MotionConfig()


def decode(path: Path, wanted: Iterable[int]) -> dict[int, np.ndarray]:
    keep = set(wanted)
    out = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in keep:
                out[i] = frame.to_ndarray(format="bgr24")
            if i >= max(keep):
                break
    return out


@pytest.fixture(scope="module")
def shelf() -> dict[int, np.ndarray]:
    return decode(SHELF, [*SHELF_STILL, *SHELF_HAND])


def still_stretch(shelf: dict[int, np.ndarray], passes: int) -> list[np.ndarray]:
    """The still frames forward, backward, forward…: a longer still stretch with no jump."""
    order = list(SHELF_STILL)
    frames: list[np.ndarray] = []
    for k in range(passes):
        frames += [shelf[i] for i in (order if k % 2 == 0 else order[::-1])]
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for image in frames:
        out.write(image)
    out.release()
    return path


def measure_all(frames: list[np.ndarray], fps: float, mask: np.ndarray | None = None) -> list:
    meter = MotionMeter()
    return [meter.measure(f, k / fps, DEFAULTS.threshold, mask) for k, f in enumerate(frames)]


# -- the measure -------------------------------------------------------------------------


def test_a_real_still_stretch_does_not_count_and_a_hand_does(shelf: dict) -> None:
    frames = still_stretch(shelf, 3)
    shares = measure_all([*frames, *(shelf[i] for i in SHELF_HAND)], SHELF_FPS)
    assert shares[0] is None  # no background yet
    still, moving = shares[1 : len(frames)], shares[len(frames) :]
    # sensor noise, compression and the exposure pumping of a real camera: nothing
    assert max(still) < DEFAULTS.min_area / 2, max(still)
    # every frame of the hand, from the first
    assert min(moving) >= 10 * DEFAULTS.min_area, moving


def test_a_repeated_frame_through_a_codec_is_still_and_walking_people_are_not(
    tmp_path: Path,
) -> None:
    walk = list(decode(CLIP, range(40)).values())
    clip = write_clip(tmp_path / "still.mp4", [walk[0]] * 20 + walk[1:], 7.0)
    frames = list(decode(clip, range(60)).values())
    shares = measure_all(frames, 7.0)
    assert max(shares[1:20]) < DEFAULTS.min_area / 2, shares[:20]
    assert min(shares[20:]) >= DEFAULTS.min_area, shares[20:]


def test_motion_outside_the_region_of_interest_does_not_count() -> None:
    walk = list(decode(CLIP, range(30)).values())
    h, w = walk[0].shape[:2]
    # the building's facade at the top of the walkway picture: nobody walks there
    facade = Polygon([(0, 0), (w, 0), (w, 60), (0, 60)])
    mask = region_mask([facade], w, h, 0.0)
    whole, inside = measure_all(walk, 7.0), measure_all(walk, 7.0, mask)
    assert min(whole[1:]) >= DEFAULTS.min_area
    assert max(inside[1:]) < DEFAULTS.min_area, inside


def test_the_region_is_its_shapes_widened_by_the_margin() -> None:
    w, h = 640, 360
    sw, sh = small_size(w, h)
    assert (sw, sh) == (160, 90)
    assert region_mask([], w, h, 0.05) is None
    line = LineString([(0, 180), (640, 180)])
    band = region_mask([line], w, h, 0.05)
    assert band is not None and band.shape == (sh, sw)
    # 5 % of the diagonal (36.7 px) either side of the line, at a quarter of the size
    rows = np.flatnonzero(band.any(axis=1))
    assert rows.min() == pytest.approx(45 - 36.7 / 4, abs=1.5)
    assert rows.max() == pytest.approx(45 + 36.7 / 4, abs=1.5)
    assert band[rows.min() : rows.max() + 1].all()
    # with no margin a line is still at least a pixel wide; a polygon is its area
    assert region_mask([line], w, h, 0.0).sum() >= sw
    square = region_mask([Polygon([(0, 0), (320, 0), (320, 180), (0, 180)])], w, h, 0.0)
    assert square is not None
    assert square[:44, :79].all() and not square[47:].any() and not square[:, 82:].any()


@pytest.mark.parametrize(
    "motion",
    [
        {"keep_alive_s": 0},
        {"keep_alive_s": float("inf")},
        {"keep_alive_s": 86401},
        {"threshold": 0},
        {"min_area": 0},
        {"margin": 1.5},
        {"sensitivity": "high"},
    ],
)
def test_motion_settings_out_of_bounds_are_errors(motion: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DetectConfig.model_validate({"model": "coco", "motion": motion})


def test_motion_gating_is_on_by_default() -> None:
    assert DetectConfig(model="coco").motion == MotionConfig(enabled=True, keep_alive_s=2.0)


# -- the gate ----------------------------------------------------------------------------


def admitted(
    gate: MotionGate,
    images: list[np.ndarray],
    config: MotionConfig = DEFAULTS,
    busy: bool = False,
    region: Region | None = None,
) -> list[int]:
    return [
        k
        for k, image in enumerate(images)
        if gate.admit(image, k / SHELF_FPS, config, busy, region)
    ]


def test_the_gate_detects_a_still_stretch_only_at_the_keep_alive_rate(shelf: dict) -> None:
    frames = still_stretch(shelf, 3)  # 6.4 s
    hand = [shelf[i] for i in SHELF_HAND]
    gate = MotionGate()
    taken = admitted(gate, [*frames, *hand])
    still = [k for k in taken if k < len(frames)]
    # the first frame, then one every 2 s of stream time
    assert [k / SHELF_FPS for k in still] == pytest.approx(
        [0.0, 2.0, 4.0, 6.0], abs=1.1 / SHELF_FPS
    )
    # the hand: detected from its first frame on
    assert [k for k in taken if k >= len(frames)] == list(
        range(len(frames), len(frames) + len(hand))
    )
    assert gate.skipped == len(frames) - len(still)
    assert gate.latency.count == len(frames) + len(hand)


def test_a_busy_camera_or_a_gate_turned_off_detects_every_frame(shelf: dict) -> None:
    frames = still_stretch(shelf, 1)
    assert admitted(MotionGate(), frames, busy=True) == list(range(len(frames)))
    off = MotionConfig(enabled=False)
    gate = MotionGate()
    assert admitted(gate, frames, config=off) == list(range(len(frames)))
    assert gate.skipped == 0 and gate.latency.count == 0  # nothing measured while off


def test_the_gate_watches_only_the_region_the_analytics_place(shelf: dict) -> None:
    frames = still_stretch(shelf, 1)[:40] + [shelf[i] for i in SHELF_HAND]
    h, w = frames[0].shape[:2]
    # the right-hand slot: the hand takes the left bottle and never reaches there
    right = Region((w, h), (Polygon([(480, 90), (610, 90), (610, 330), (480, 330)]),))
    gate = MotionGate()
    taken = admitted(gate, frames, MotionConfig(margin=0.0), region=right)
    assert taken == [0, 30 * 2]  # the first frame, the keep-alive 2 s on: not the hand
    # a region placed for another picture size is not used: the whole picture counts
    other = Region((1280, 720), right.shapes)
    assert 40 in admitted(MotionGate(), frames, MotionConfig(margin=0.0), region=other)


# -- the pipeline ------------------------------------------------------------------------


def camera(clip: Path, classes: list[str], **source: Any) -> dict[str, Any]:
    return {"source": {"uri": str(clip), **source}, "detect": {"model": "coco", "classes": classes}}


def pipeline_config(tmp_path: Path, cameras: dict[str, Any]) -> Config:
    return Config.model_validate(
        {
            "device_id": "test",
            "journal": {"path": str(tmp_path / "events.db")},
            "models": {"coco": {"path": str(MODEL), "backend": "cpu"}},
            "cameras": cameras,
        }
    )


def record_detected(cam: CameraRuntime) -> list[Frame]:
    """The frames ``cam`` hands to the detector, as the inference worker takes them."""
    detected: list[Frame] = []
    take = cam.take

    def recording() -> Any:
        item = take()
        if item is not None:
            detected.append(item[0])
        return item

    cam.take = recording  # type: ignore[method-assign]
    return detected


def run_pipeline(
    config: Config,
) -> tuple[Pipeline, EventSink, dict[str, list[Frame]], list[Event]]:
    """Run ``config`` to the end of its clips: the pipeline, its sink, the frames each camera
    handed to the detector, and the events."""
    journal = Journal(config.journal)
    events: list[Event] = []
    sink = EventSink(journal, [events.extend])
    pipeline = Pipeline(config, sink)
    detected = {name: record_detected(cam) for name, cam in pipeline.cameras.items()}
    pipeline.start()
    try:
        assert pipeline.wait(120), "the pipeline did not finish"
    finally:
        pipeline.stop()
        journal.close()
    return pipeline, sink, detected, events


def test_detection_sleeps_through_a_still_stretch_and_wakes_on_the_first_moving_frame(
    tmp_path: Path, shelf: dict
) -> None:
    still = still_stretch(shelf, 3)
    clip = write_clip(tmp_path / "shelf.mp4", still + [shelf[i] for i in SHELF_HAND], 30.0)
    config = pipeline_config(tmp_path, {"cam": camera(clip, ["person"], realtime=False)})
    pipeline, sink, detected, _ = run_pipeline(config)
    cam = pipeline.cameras["cam"]
    seqs = [f.seq for f in detected["cam"]]
    during = [s for s in seqs if s < len(still)]
    assert [s / 30.0 for s in during] == pytest.approx([0.0, 2.0, 4.0, 6.0], abs=1.1 / 30)
    # the first moving frame, and every one after it
    assert [s for s in seqs if s >= len(still)] == list(range(len(still), len(still) + 30))
    assert cam.processed == len(seqs)
    assert cam.gate.skipped == len(still) - len(during) == cam.stats().skipped
    payload = stats_event(Rates(), pipeline, sink).payload["cameras"]["cam"]
    assert payload["skipped"] == cam.gate.skipped and payload["processed"] == len(seqs)
    assert payload["latency"]["motion"]["n"] == len(seqs) + cam.gate.skipped
    family = next(
        f for f in PipelineCollector(pipeline, sink).collect() if f.name == "edged_frames_skipped"
    )
    assert samples(family, "edged_frames_skipped_total", camera="cam", reason="still") == [
        float(cam.gate.skipped)
    ]


def test_a_person_standing_still_keeps_the_detector_running(tmp_path: Path) -> None:
    """The same still picture of people on two cameras: where people are tracked the detector
    runs on every frame; where nothing is tracked (only airplanes kept: the van parked at the
    top is a tracked vehicle too) it sleeps."""
    first = decode(CLIP, [0])[0]
    clip = write_clip(tmp_path / "standing.mp4", [first] * 21, 7.0)  # 3 s at 7 fps
    config = pipeline_config(
        tmp_path,
        {
            "people": camera(clip, ["person"], realtime=True),
            "planes": camera(clip, ["airplane"], realtime=True),
        },
    )
    pipeline, _, detected, events = run_pipeline(config)
    people, planes = pipeline.cameras["people"], pipeline.cameras["planes"]
    new = [e for e in events if e.kind == "object" and e.payload["type"] == "new"]
    assert new and {e.camera for e in new} == {"people"}  # confirmed tracks, standing still
    # the first frame, then (its tracks tentative, then confirmed) every frame; a loaded
    # machine may let the second frame come before the first one's tracks
    assert people.gate.skipped <= 1 and len(detected["people"]) >= 20
    assert people.stats().processed == len(detected["people"])
    # nothing tracked: the first frame and the keep-alive 2 s later
    assert [f.seq for f in detected["planes"]] == [0, 14]
    assert planes.gate.skipped == 19


# -- the daemon --------------------------------------------------------------------------


def latest_stats(daemon: Daemon) -> dict[str, Any] | None:
    stats = daemon.kinds("stats")
    return stats[-1]["cameras"]["cam"] if stats else None


def test_a_still_camera_is_counted_healthy_and_its_gate_reloads_live(
    tmp_path: Path, shelf: dict
) -> None:
    """A camera on a still scene, looped: frames skipped as still show in the stats and on
    /metrics; with the keep-alive (5 s) longer than /healthz's staleness limit (1 s) it stays
    healthy; a reload that turns the gate off applies from the next frame, in place."""
    clip = write_clip(tmp_path / "still.mp4", still_stretch(shelf, 2), 30.0)
    port = free_port()
    config: dict[str, Any] = {
        "device_id": "test",
        "journal": {"path": str(tmp_path / "events.db")},
        "models": {"coco": {"path": str(MODEL), "backend": "cpu"}},
        "metrics": {"port": port, "stale_s": 1.0},
        "stats_interval_s": 0.3,
        "cameras": {
            "cam": {
                "source": {"uri": str(clip), "loop": True},
                "detect": {"model": "coco", "classes": ["person"], "motion": {"keep_alive_s": 5}},
            }
        },
    }
    path = tmp_path / "edged.yaml"
    path.write_text(yaml.safe_dump(config))
    daemon = Daemon(path)
    try:

        def two_seconds_still() -> dict[str, Any] | None:
            """60 frames skipped"""
            cam = latest_stats(daemon)
            return cam if cam is not None and cam["skipped"] >= 60 else None

        cam = poll(two_seconds_still, 60)
        # only the first frame detected so far, two seconds ago: stale, were skips not counted
        assert cam["processed"] == 1, cam
        assert cam["latency"]["motion"]["n"] >= 60
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        health = json.loads(body)
        assert status == 200, health
        assert health["cameras"]["cam"]["last_frame_age_s"] < 1.0, health
        families = scrape(port)
        (skipped,) = samples(
            families["edged_frames_skipped"], "edged_frames_skipped_total", camera="cam"
        )
        assert skipped >= 60
        assert {s.labels["reason"] for s in families["edged_frames_skipped"].samples} == {"still"}

        config["cameras"]["cam"]["detect"]["motion"]["enabled"] = False
        path.write_text(yaml.safe_dump(config))
        daemon.reload()
        assert daemon.wait_for(lambda ev: any(e["kind"] == "config_reload" for e in ev), 20)
        (reload,) = daemon.kinds("config_reload")
        assert reload["status"] == "ok" and reload["updated"] == ["cam"], reload
        assert reload["restarted"] == []
        before = latest_stats(daemon)
        assert before is not None

        def gate_off() -> dict[str, Any] | None:
            """two frames detected since the reload: with the gate on, one comes per 5 s (a
            frame being gated as the reload lands is judged by the old settings)"""
            cam = latest_stats(daemon)
            return cam if cam is not None and cam["processed"] >= before["processed"] + 2 else None

        after = poll(gate_off, 10)

        def every_frame_detected() -> dict[str, Any] | None:
            """30 more frames processed"""
            cam = latest_stats(daemon)
            return cam if cam is not None and cam["processed"] >= after["processed"] + 30 else None

        later = poll(every_frame_detected, 30)
        assert later["skipped"] == after["skipped"]  # none since the gate went off
        assert daemon.terminate() < 5.0
    finally:
        daemon.kill()
