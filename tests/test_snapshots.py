"""Snapshots on real frames of the sample clip with the shipped detector and segmenter:
decodable JPEGs of the right size, people blurred when privacy masking is on, retention."""

from __future__ import annotations

import os
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from edged.config.model import ModelConfig
from edged.config.snapshots import SnapshotConfig
from edged.core.detections import Detections
from edged.core.event import Event
from edged.core.frame import Frame
from edged.models.detector import DetectRequest, load_detector
from edged.models.segmenter import load_segmenter
from edged.outputs.snapshots import Snapshotter, crop_box
from tests.daemon import Daemon
from tests.mqtt_helpers import BrokerFactory, Subscriber
from tests.paths import CLIP, DEMO, MODEL, SEGMENTER


@pytest.fixture(scope="module")
def scene() -> tuple[Frame, Detections, list[str]]:
    """Frame 40 of the sample clip (several people on the walkway) and its people."""
    with av.open(str(CLIP)) as c:
        for k, f in enumerate(c.decode(video=0)):
            if k == 40:
                image = f.to_ndarray(format="bgr24")
                break
    detector = load_detector(ModelConfig(path=MODEL, backend="cpu", precision="fp32"))
    dets = detector.detect([DetectRequest(image, 0.35, 0.5)])[0].detections
    people = dets[dets.class_id == detector.labels.index("person")]
    assert len(people) >= 3, "the clip's frame 40 shows several people"
    frame = Frame("cam", 40, time.monotonic(), time.time(), 40 / 7, image)
    return frame, people, detector.labels


def new_object(dets: Detections, i: int = 0) -> Event:
    box = [round(float(v), 1) for v in dets.xyxy[i]]
    after = {
        "track_id": 3,
        "label": "person",
        "score": 0.9,
        "top_score": 0.9,
        "box": box,
        "zones": [],
        "first_seen": 1.0,
        "last_seen": 1.0,
        "duration_s": 0.0,
    }
    return Event(
        kind="object",
        camera="cam",
        topic="cam/events",
        payload={"type": "new", "before": None, "after": after},
    )


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a decodable JPEG"
    return image


def sharpness(image: np.ndarray) -> float:
    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


def shoot(config: SnapshotConfig, scene, people_mask=None, event=None):
    frame, dets, labels = scene
    sent: list[tuple[str, bytes, str]] = []
    snap = Snapshotter("cam", config, labels, lambda t, j, i: sent.append((t, j, i)) or True)
    event = event or new_object(dets)
    (out,) = snap.take(frame, dets, people_mask, [event])
    assert len(sent) == 1 and sent[0][2] == event.id
    return out, decode(sent[0][1]), sent[0][0]


def test_frame_snapshot_is_a_jpeg_of_the_frame_size(scene) -> None:
    frame, _, _ = scene
    out, image, topic = shoot(SnapshotConfig(), scene)
    assert image.shape == frame.image.shape
    assert topic == "cam/snapshots/person"
    info = out.payload["snapshot"]
    assert (info["width"], info["height"]) == (frame.width, frame.height)
    assert info["mode"] == "frame" and info["topic"] == topic and info["privacy"] == "off"


def test_crop_snapshot_is_the_object_with_its_margin(scene) -> None:
    frame, dets, _ = scene
    out, image, _ = shoot(SnapshotConfig(mode="crop", crop_margin=0.1), scene)
    x1, y1, x2, y2 = crop_box(
        new_object(dets).payload["after"]["box"], 0.1, frame.width, frame.height
    )
    assert image.shape[:2] == (y2 - y1, x2 - x1)
    assert out.payload["snapshot"]["mode"] == "crop"
    # it is the object's pixels (JPEG noise aside)
    assert np.abs(image.astype(int) - frame.image[y1:y2, x1:x2].astype(int)).mean() < 4


def test_max_width_scales_the_frame_down(scene) -> None:
    _, image, _ = shoot(SnapshotConfig(max_width=384), scene)
    assert image.shape[:2] == (288, 384)


def test_privacy_boxes_blur_the_people_and_nothing_else(scene) -> None:
    _, dets, _ = scene
    _, plain, _ = shoot(SnapshotConfig(quality=95), scene)
    _, private, _ = shoot(SnapshotConfig(quality=95, privacy={"blur": "boxes"}), scene)
    h, w = plain.shape[:2]
    inside = np.zeros((h, w), bool)
    near = np.zeros((h, w), bool)
    boxes = np.round(dets.xyxy).astype(int)
    for x1, y1, x2, y2 in boxes:
        inside[max(0, y1 + 3) : y2 - 3, max(0, x1 + 3) : x2 - 3] = True
        near[max(0, y1 - 12) : y2 + 12, max(0, x1 - 12) : x2 + 12] = True
    checked = 0
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        others = np.delete(boxes, i, axis=0)
        # another box's drawn label (sharp in both pictures) would hide the blur
        if (
            (others[:, 0] - 12 < x2)
            & (others[:, 2] + 12 > x1)
            & (others[:, 1] - 20 < y2)
            & (others[:, 3] + 12 > y1)
        ).any():
            continue
        person = (slice(max(0, y1 + 3), y2 - 3), slice(max(0, x1 + 3), x2 - 3))
        assert sharpness(private[person]) < 0.3 * sharpness(plain[person])
        checked += 1
    assert checked >= 3, "the three people apart from the others"
    diff = np.abs(private.astype(int) - plain.astype(int)).sum(axis=2)
    assert diff[inside].mean() > 10 * diff[~near].mean()
    assert diff[~near].mean() < 1.5  # away from people, the picture is untouched


def test_privacy_mask_blurs_the_segmented_people(scene) -> None:
    frame, _, _ = scene
    mask = load_segmenter(ModelConfig(path=SEGMENTER, backend="cpu")).segment(frame.image)
    person = mask.to_source(0.5)
    assert person.mean() > 0.005, "the segmenter found the people"
    _, plain, _ = shoot(SnapshotConfig(quality=95), scene, mask)
    _, private, _ = shoot(SnapshotConfig(quality=95, privacy={"blur": "mask"}), scene, mask)
    # both have the same boxes drawn over the people: what differs is the blur
    diff = np.abs(private.astype(int) - plain.astype(int)).sum(axis=2)
    eroded = cv2.erode(person.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    far = ~cv2.dilate(person.astype(np.uint8), np.ones((25, 25), np.uint8)).astype(bool)
    assert diff[eroded].mean() > 10 * diff[far].mean()
    assert diff[far].mean() < 1.5  # away from people, the picture is untouched

    def detail(image: np.ndarray) -> float:
        lap = cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F)
        return float(lap[eroded].var())

    assert detail(private) < 0.3 * detail(plain)


def test_mask_blur_without_a_mask_keeps_the_event_and_logs(scene, caplog) -> None:
    frame, dets, labels = scene
    snap = Snapshotter("cam", SnapshotConfig(privacy={"blur": "mask"}), labels, None)
    event = new_object(dets)
    assert snap.take(frame, dets, None, [event]) == [event]
    assert snap.failed == 1 and "without a person mask" in caplog.text


def test_alert_start_gets_a_frame_snapshot_and_end_does_not(scene) -> None:
    frame, dets, labels = scene
    sent: list[str] = []
    snap = Snapshotter(
        "cam", SnapshotConfig(mode="crop"), labels, lambda t, j, i: sent.append(t) or True
    )
    start = Event(
        kind="alert",
        camera="cam",
        topic="cam/alerts/loitering",
        payload={"alert": "loitering", "subject": "z/1", "state": "start"},
    )
    end = Event(
        kind="alert",
        camera="cam",
        topic="cam/alerts/loitering",
        payload={"alert": "loitering", "subject": "z/1", "state": "end"},
    )
    out = snap.take(frame, dets, None, [start, end])
    assert sent == ["cam/snapshots/loitering"]
    assert out[0].payload["snapshot"]["mode"] == "frame" and "snapshot" not in out[1].payload


def test_files_on_disk_keep_the_newest_and_drop_the_old(scene, tmp_path: Path) -> None:
    frame, dets, labels = scene
    snap = Snapshotter("cam", SnapshotConfig(publish=False, dir=tmp_path, keep=3), labels)
    events = [new_object(dets) for _ in range(5)]
    paths = []
    for k, e in enumerate(events):
        (out,) = snap.take(frame, dets, None, [Event(**{**_fields(e), "ts": 1000.0 + k})])
        assert "topic" not in out.payload["snapshot"]
        paths.append(Path(out.payload["snapshot"]["path"]))
        assert decode(paths[-1].read_bytes()).shape == frame.image.shape
    assert sorted((tmp_path / "cam").glob("*.jpg")) == paths[2:]
    assert not list((tmp_path / "cam").glob("*.tmp"))
    # age: a file older than max_age_s goes at the next write
    aged = Snapshotter(
        "cam", SnapshotConfig(publish=False, dir=tmp_path, keep=10, max_age_s=60), labels
    )
    os.utime(paths[2], (time.time() - 120, time.time() - 120))
    aged.take(frame, dets, None, [Event(**{**_fields(events[0]), "ts": 2000.0})])
    assert not paths[2].exists() and paths[3].exists()


def _fields(e: Event) -> dict:
    return {f: getattr(e, f) for f in ("kind", "camera", "topic", "payload", "frame_ts", "id")}


def test_daemon_publishes_snapshots_with_their_events(
    mqtt_broker_factory: BrokerFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = mqtt_broker_factory()
    monkeypatch.setenv("EDGED_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("EDGED_MQTT_HOST", broker.host)
    monkeypatch.setenv("EDGED_MQTT_PORT", str(broker.port))
    with Subscriber(broker.host, broker.port, "edged/demo/walkway/#") as sub:
        daemon = Daemon(
            DEMO,
            "--set", "cameras.walkway.source.realtime=false",
            "--set", f"cameras.walkway.snapshots.dir={tmp_path / 'snaps'}",
            "--set", "cameras.walkway.snapshots.privacy.blur=boxes",
        )  # fmt: skip
        try:
            assert daemon.proc.wait(120) == 0, daemon.stderr
        finally:
            daemon.kill()
        news = [e for e in daemon.events if e["kind"] == "object" and e["type"] == "new"]
        assert news and all("snapshot" in e for e in news)
        assert sub.wait_for(
            lambda: (
                {m["id"] for m in sub.json("edged/demo/walkway/events")} >= {e["id"] for e in news}
            ),
            10,
        )
    pictures = [m for m in sub.messages if m.topic == "edged/demo/walkway/snapshots/person"]
    assert pictures and all(m.properties is None for m in pictures)  # a 3.1.1 subscriber
    for m in pictures:
        assert decode(m.payload).shape == (576, 768, 3)
    # every picture on disk belongs to an event that names it (objects' new, alerts' start)
    files = {str(f) for f in (tmp_path / "snaps" / "walkway").glob("*.jpg")}
    named = {e["snapshot"]["path"] for e in daemon.events if "snapshot" in e}
    assert files == named and len(files) >= len(news)
    assert all(
        e["kind"] == "alert" and e["state"] == "start"
        for e in daemon.events
        if "snapshot" in e and e["kind"] != "object"
    )
    broker.stop()


def test_mask_blur_without_a_segmenter_is_a_config_error(monkeypatch) -> None:
    from edged.config import ConfigError, load

    monkeypatch.setenv("EDGED_STATE_DIR", "/tmp")
    with pytest.raises(ConfigError) as err:
        load(DEMO, ["cameras.walkway.snapshots.privacy.blur=mask"])
    assert "snapshots.privacy.blur" in str(err.value.problems)
    assert "needs a person segmenter" in str(err.value.problems)
