"""What a person or Prometheus sees of a running daemon: /metrics with every named series,
/healthz that turns 503 while a camera cannot connect, the stats topic with stage latencies,
and the debug view's annotated JPEG and MJPEG stream."""

from __future__ import annotations

import itertools
import json
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from prometheus_client.parser import text_string_to_metric_families

from edged.analytics.tracked import TrackedFrame
from edged.config import load
from edged.config.events import DebugViewConfig, JournalConfig, MetricsConfig, MqttConfig
from edged.core.detections import Detections
from edged.core.draw import PALETTE
from edged.core.latency import STAGES, Latency, RateMeter
from edged.outputs.journal import Journal
from edged.outputs.mqtt import MqttPublisher
from edged.outputs.sink import EventSink
from edged.pipeline import Pipeline
from edged.service.daemon import stats_event
from edged.service.stats import Rates
from edged.web.annotate import LINE, ZONE, Layers, LineView, ZoneView, annotate
from edged.web.metrics import PipelineCollector
from tests.daemon import Daemon, camera_config
from tests.mqtt_helpers import Broker, Subscriber, free_port
from tests.paths import CLIP, SEGMENTER
from tests.test_batching import dynamic_batch_yolov8
from tests.waiting import poll

# what each frame of a camera without a person segmenter goes through; ``motion`` is measured
# only while the motion gate has a say (nothing tracked), and the clip always has people
CAMERA_STAGES = [s for s in STAGES if s not in ("segment", "motion")]
# the demo's walkway zone and counting line, relative to the picture
ZONE_POLYGON = [[0.45, 0.38], [0.75, 0.38], [0.75, 0.62], [0.45, 0.62]]
LINE_POINTS = [[0.55, 0.58], [1.0, 0.58]]


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def scrape(port: int) -> dict[str, Any]:
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200
    return {f.name: f for f in text_string_to_metric_families(body.decode())}


def samples(family: Any, name: str, **labels: str) -> list[float]:
    return [
        s.value
        for s in family.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def processed_at_least(n: int) -> Callable[[list[dict[str, Any]]], bool]:
    def check(events: list[dict[str, Any]]) -> bool:
        return any(e["kind"] == "stats" and e["cameras"]["cam"]["processed"] >= n for e in events)

    return check


def test_endpoints_are_local_by_default() -> None:
    assert MetricsConfig().host == "127.0.0.1"
    assert DebugViewConfig().host == "127.0.0.1"


def test_metrics_healthz_and_stats_after_the_clip(tmp_path: Path, mqtt_broker: Broker) -> None:
    port = free_port()
    config = camera_config(
        tmp_path,
        {"uri": str(CLIP), "realtime": False, "loop": True},
        mqtt={"host": mqtt_broker.host, "port": mqtt_broker.port},
        metrics={"port": port},
        stats_interval_s=0.5,
    )
    with Subscriber(mqtt_broker.host, mqtt_broker.port, "edged/test/stats") as stats_topic:
        daemon = Daemon(config)
        try:
            # the whole clip once, then more
            assert daemon.wait_for(processed_at_least(160), 90), daemon.stderr
            status, body = get(f"http://127.0.0.1:{port}/healthz")
            assert status == 200, body
            health = json.loads(body)
            assert health["status"] == "ok" and health["cameras"]["cam"]["ok"], health
            assert health["cameras"]["cam"]["state"] == "streaming"

            def published() -> dict[str, Any] | None:
                """PUBACKs counted"""
                families = scrape(port)
                ok = samples(families["edged_publish_seconds"], "edged_publish_seconds_count")
                return families if ok and ok[0] > 0 else None

            families = poll(published, 20)
            cam = {"camera": "cam"}
            for name in ("edged_fps_in", "edged_fps_processed"):
                assert samples(families[name], name, **cam)[0] > 0, name
            for name in ("edged_frames_dropped", "edged_source_reconnects"):
                assert samples(families[name], f"{name}_total", **cam) == [0.0], name
            assert (
                samples(families["edged_frames_processed"], "edged_frames_processed_total")[0]
                >= 160
            )
            stage_family = families["edged_stage_seconds"]
            assert stage_family.type == "histogram"
            # a camera without a person segmenter has no segment stage
            assert not samples(stage_family, "edged_stage_seconds_count", stage="segment")
            for stage in CAMERA_STAGES:
                (count,) = samples(stage_family, "edged_stage_seconds_count", stage=stage, **cam)
                (total,) = samples(stage_family, "edged_stage_seconds_sum", stage=stage, **cam)
                assert count >= 160 and total > 0, stage
                (inf,) = samples(
                    stage_family, "edged_stage_seconds_bucket", stage=stage, le="+Inf", **cam
                )
                assert inf == count, stage
            batch = families["edged_inference_batch_size"]
            (runs,) = samples(batch, "edged_inference_batch_size_count", model="coco")
            assert runs >= 160
            # one camera: every run had one frame
            assert samples(batch, "edged_inference_batch_size_bucket", model="coco", le="1.0") == [
                runs
            ]
            kinds = {s.labels["kind"] for s in families["edged_events"].samples}
            assert {"object", "stats", "camera_status"} <= kinds, kinds
            assert samples(families["edged_journal_backlog"], "edged_journal_backlog")
            assert samples(families["edged_mqtt_connected"], "edged_mqtt_connected") == [1.0]
            ages = families["edged_event_latency_seconds"]
            assert samples(ages, "edged_event_latency_seconds_count", kind="object")[0] > 0

            def stats_with_latency() -> dict[str, Any] | None:
                """a stats message with every stage's latency"""
                for msg in reversed(stats_topic.json()):
                    latency = msg["cameras"]["cam"].get("latency", {})
                    if set(latency) >= set(CAMERA_STAGES) and msg.get("publish"):
                        return msg
                return None

            msg = poll(stats_with_latency, 10)
            for stage, summary in msg["cameras"]["cam"]["latency"].items():
                assert 0 <= summary["p50_ms"] <= summary["p99_ms"] and summary["p99_ms"] > 0, (
                    stage,
                    summary,
                )
            assert msg["publish"]["n"] > 0 and msg["publish"]["p99_ms"] > 0
            assert daemon.terminate(within=5.0) < 5.0
        finally:
            daemon.kill()


def test_healthz_is_503_while_a_camera_cannot_connect(tmp_path: Path) -> None:
    port = free_port()
    config = camera_config(
        tmp_path,
        {"uri": str(CLIP), "loop": True},
        metrics={"port": port},
        stats_interval_s=0.3,
    )
    data = yaml.safe_load(config.read_text())
    data["cameras"]["broken"] = {
        "source": {"uri": f"rtsp://127.0.0.1:{free_port()}/x", "reconnect": {"floor_s": 0.2}},
        "detect": {"model": "coco"},
    }
    config.write_text(yaml.safe_dump(data))
    daemon = Daemon(config)
    try:
        assert daemon.wait_for(processed_at_least(3), 60), daemon.stderr
        assert daemon.wait_for(
            lambda ev: any(
                e["kind"] == "camera_status"
                and e["camera"] == "broken"
                and e["status"] == "reconnecting"
                for e in ev
            ),
            30,
        ), daemon.stderr
        status, body = get(f"http://127.0.0.1:{port}/healthz")
        assert status == 503, body
        health = json.loads(body)
        assert health["status"] == "unhealthy"
        assert health["cameras"]["cam"]["ok"], health
        broken = health["cameras"]["broken"]
        assert not broken["ok"] and broken["state"] in ("connecting", "reconnecting"), broken
        assert any(r.startswith("broken: ") and "refused" in r.lower() for r in health["reasons"])
        assert daemon.terminate(within=5.0) < 5.0
    finally:
        daemon.kill()


def raw_first_frame() -> np.ndarray:
    cap = cv2.VideoCapture(str(CLIP))
    ok, image = cap.read()
    cap.release()
    assert ok
    return image


def along(points: np.ndarray, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Pixel rows and columns of ``n`` points on each edge of the closed or open path."""
    xs, ys = [], []
    for a, b in itertools.pairwise(points):
        t = np.linspace(0.1, 0.9, n)
        xs.append(a[0] + t * (b[0] - a[0]))
        ys.append(a[1] + t * (b[1] - a[1]))
    return np.round(np.concatenate(ys)).astype(int), np.round(np.concatenate(xs)).astype(int)


def near(pixels: np.ndarray, color: tuple[int, int, int], tol: float = 60) -> float:
    """Share of ``pixels`` within ``tol`` (Euclidean, BGR) of ``color``."""
    return float(np.mean(np.linalg.norm(pixels.astype(float) - color, axis=1) < tol))


def mjpeg_parts(url: str, count: int) -> list[bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        ctype = r.headers["Content-Type"]
        assert ctype.startswith("multipart/x-mixed-replace"), ctype
        boundary = ctype.split("boundary=")[1].encode()
        parts: list[bytes] = []
        while len(parts) < count:
            line = r.readline()
            assert line, "the stream ended"
            if line.strip() != b"--" + boundary:
                continue
            headers = {}
            while (header := r.readline().strip()) != b"":
                key, value = header.split(b":", 1)
                headers[key.strip().lower()] = value.strip()
            assert headers[b"content-type"] == b"image/jpeg"
            parts.append(r.read(int(headers[b"content-length"])))
        return parts


def test_debug_view_serves_annotated_jpeg_and_mjpeg(tmp_path: Path) -> None:
    port = free_port()
    config = camera_config(
        tmp_path,
        {"uri": str(CLIP), "loop": True},
        debug_view={"port": port, "stream_fps": 20},
        stats_interval_s=0.3,
    )
    data = yaml.safe_load(config.read_text())
    data["cameras"]["cam"]["zones"] = {"plaza": {"polygon": ZONE_POLYGON}}
    data["cameras"]["cam"]["lines"] = {"walkway": {"points": LINE_POINTS}}
    config.write_text(yaml.safe_dump(data))
    daemon = Daemon(config)
    base = f"http://127.0.0.1:{port}"
    try:
        assert daemon.wait_for(processed_at_least(2), 60), daemon.stderr
        status, page = get(f"{base}/")
        assert status == 200 and b'data-page="grid"' in page
        status, state = get(f"{base}/api/state")
        assert status == 200 and list(json.loads(state)["cameras"]) == ["cam"]
        assert get(f"{base}/cameras/nope/latest.jpg")[0] == 404
        status, jpeg = get(f"{base}/cameras/cam/latest.jpg")
        assert status == 200
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        raw = raw_first_frame()
        assert image is not None and image.shape == raw.shape == (576, 768, 3)
        size = np.array([768, 576])
        zone = np.array(ZONE_POLYGON + ZONE_POLYGON[:1]) * size
        line = np.array(LINE_POINTS) * size
        for path, color in ((zone, ZONE), (line, LINE)):
            rows, cols = along(path)
            # drawn in the view (labels cover some of it), not in the picture itself
            assert near(image[rows, cols], color) > 0.8, color
            assert near(raw[rows, cols], color) < 0.1, color
        # the editor's still: nothing drawn; an overlay toggle leaves the zones out
        for query, zone_drawn, line_drawn in (("raw=1", False, False), ("zones=0", False, True)):
            status, jpeg = get(f"{base}/cameras/cam/latest.jpg?{query}")
            picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            for path, color, drawn in ((zone, ZONE, zone_drawn), (line, LINE, line_drawn)):
                rows, cols = along(path)
                assert (near(picture[rows, cols], color) > 0.8) is drawn, (query, color)
        parts = mjpeg_parts(f"{base}/cameras/cam/stream.mjpeg", 2)
        pictures = [cv2.imdecode(np.frombuffer(p, np.uint8), cv2.IMREAD_COLOR) for p in parts]
        assert all(p is not None and p.shape == raw.shape for p in pictures)
        # a new part is a new frame
        assert parts[0] != parts[1]
        assert daemon.terminate(within=5.0) < 5.0
    finally:
        daemon.kill()


def test_annotation_draws_boxes_with_track_ids_and_leaves_the_frame_alone() -> None:
    raw = raw_first_frame()
    before = raw.copy()
    objects = Detections(
        xyxy=np.array([[100, 200, 180, 400]], np.float32),
        score=np.array([0.9], np.float32),
        class_id=np.array([0], np.int32),
        track_id=np.array([7]),
    )
    tracked = TrackedFrame("cam", 0.0, 0.0, objects, [], ["person"])
    zone = ZoneView("plaza", np.array([[400, 300], [600, 300], [600, 450]], float), {"person": 2})
    line = LineView("gate", (50.0, 500.0), (700.0, 500.0), 3, 1, (0.0, -1.0))
    out = annotate(raw, tracked, [zone], [line], "cam #0")
    assert np.array_equal(raw, before)
    assert out.shape == raw.shape
    box_color = PALETTE[7 % len(PALETTE)]
    left_edge = out[250:390, 100]
    assert near(left_edge, box_color, 30) > 0.9
    assert near(raw[250:390, 100], box_color, 30) < 0.1
    # the label sits above the box, in the box's colour
    assert near(out[185:198, 105:170].reshape(-1, 3), box_color, 30) > 0.3
    rows, cols = along(np.array([[50, 500], [700, 500]], float))
    assert near(out[rows, cols], LINE, 30) > 0.9
    # the arrow to the in side: up from the middle of the line (in_side is (0, -1))
    assert near(out[460:490, 375].reshape(-1, 3), LINE, 30) > 0.8
    assert near(out[510:540, 375].reshape(-1, 3), LINE, 30) < 0.2
    hidden = annotate(raw, tracked, [zone], [line], layers=Layers(boxes=False, lines=False))
    assert near(hidden[250:390, 100], box_color, 30) < 0.1
    assert near(hidden[rows, cols], LINE, 30) < 0.1


def test_labels_of_boxes_at_one_place_are_stacked_not_drawn_over_each_other() -> None:
    raw = raw_first_frame()
    objects = Detections(
        xyxy=np.array([[100, 200, 180, 400], [100, 200, 180, 400]], np.float32),
        score=np.array([0.9, 0.8], np.float32),
        class_id=np.array([0, 0], np.int32),
        track_id=np.array([1, 2]),
    )
    tracked = TrackedFrame("cam", 0.0, 0.0, objects, [], ["person"])
    out = annotate(raw, tracked)
    first, second = PALETTE[1], PALETTE[2]
    # the first label above the box; the second moved below it, not over it
    assert near(out[185:198, 105:170].reshape(-1, 3), first, 30) > 0.3
    assert near(out[200:214, 105:170].reshape(-1, 3), second, 30) > 0.3


def test_latency_buckets_are_cumulative_and_percentiles_exact() -> None:
    meter = Latency()
    for ms in range(1, 101):  # 1 … 100 ms
        meter.observe(ms / 1000)
    buckets = dict(meter.buckets())
    assert buckets["0.001"] == 1 and buckets["0.01"] == 10 and buckets["0.1"] == 100
    assert buckets["+Inf"] == meter.count == 100
    assert abs(meter.sum - 5.05) < 1e-9
    summary = meter.summary()
    assert summary is not None
    assert summary["p50_ms"] == 50.5 and summary["p99_ms"] == 99.01 and summary["n"] == 100
    assert Latency().summary() is None


def test_rate_meter_counts_the_last_window() -> None:
    meter = RateMeter(window_s=0.5)
    assert meter.rate() == 0.0 and meter.last is None
    for _ in range(10):
        meter.tick()
    # ten ticks within the first moments: the rate is over the time held, not the window
    assert meter.rate() > 10
    assert meter.last is not None and meter.last <= time.monotonic()


def test_publisher_socket_sends_small_messages_at_once(tmp_path: Path, mqtt_broker: Broker) -> None:
    """TCP_NODELAY: a QoS 1 burst must not wait behind the broker's delayed ACKs."""
    journal = Journal(JournalConfig(path=tmp_path / "j.db"))
    publisher = MqttPublisher(
        MqttConfig(host=mqtt_broker.host, port=mqtt_broker.port), "t", journal
    )
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        sock = publisher._client.socket()
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    finally:
        publisher.stop(drain_timeout=1)
        journal.close()


def test_a_segmenting_camera_times_its_segmenter(tmp_path: Path) -> None:
    """``segment`` is a stage of its own: in the histograms, in the stats, once per frame."""
    model = tmp_path / "batch.onnx"
    dynamic_batch_yolov8(model)
    config_path = tmp_path / "edged.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "device_id": "t",
                "journal": {"path": str(tmp_path / "j.db")},
                "models": {
                    "m": {"path": str(model), "backend": "cpu"},
                    "people": {"path": str(SEGMENTER), "backend": "cpu"},
                },
                "cameras": {
                    "cam": {
                        "source": {"uri": str(CLIP), "realtime": False},
                        "detect": {"model": "m"},
                        "segment": {"model": "people"},
                    }
                },
            }
        )
    )
    journal = Journal(JournalConfig(path=tmp_path / "j.db"))
    sink = EventSink(journal)
    pipeline = Pipeline(load(config_path), sink)
    pipeline.start()
    try:
        assert pipeline.wait(60), "the pipeline did not finish"
    finally:
        pipeline.stop()
        journal.close()
    cam = pipeline.cameras["cam"]
    assert list(cam.stages) == list(STAGES)
    assert cam.stages["segment"].count == cam.processed == 150
    family = next(
        f for f in PipelineCollector(pipeline, sink).collect() if f.name == "edged_stage_seconds"
    )
    (count,) = samples(family, "edged_stage_seconds_count", camera="cam", stage="segment")
    (total,) = samples(family, "edged_stage_seconds_sum", camera="cam", stage="segment")
    assert count == 150 and total > 0
    latency = stats_event(Rates(), pipeline, sink).payload["cameras"]["cam"]["latency"]
    assert set(latency) - {"motion"} == set(STAGES) - {"motion"}
    assert latency["segment"]["p99_ms"] > 0
