"""Cross-camera batching: the inference worker groups frames of several cameras into one run
when the model takes a batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper

from edged.config import load
from edged.config.events import JournalConfig
from edged.core.files import sha256_of
from edged.outputs.journal import Journal
from edged.outputs.sink import EventSink
from edged.pipeline import Pipeline
from tests.mqtt_helpers import free_port
from tests.paths import CLIP, MODEL
from tests.waiting import poll

SIZE = 64
LABELS = ["person", "car"]


def dynamic_batch_yolov8(path: Path) -> None:
    """A YOLOv8-layout model with a dynamic batch: every item gets the same one box (the
    constant tiled over the batch read from the input's shape)."""
    head = np.zeros((1, 4 + len(LABELS), 8), np.float32)
    head[0, :4, 0] = [32, 32, 16, 16]
    head[0, 4, 0] = 0.9
    nodes = [
        helper.make_node("Shape", ["images"], ["shape"]),
        helper.make_node("Constant", [], ["zero"], value=numpy_helper.from_array(np.array([0]))),
        helper.make_node("Gather", ["shape", "zero"], ["batch"]),
        helper.make_node("Constant", [], ["ones"], value=numpy_helper.from_array(np.array([1, 1]))),
        helper.make_node("Concat", ["batch", "ones"], ["reps"], axis=0),
        helper.make_node("Constant", [], ["head"], value=numpy_helper.from_array(head)),
        helper.make_node("Tile", ["head", "reps"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "batch",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", 6, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    manifest = {
        "name": "batch",
        "family": "yolov8",
        "file": path.name,
        "sha256": sha256_of(path),
        "license": "test fixture",
        "source": "tests/test_batching.py",
        "input": {
            "name": "images",
            "size": [SIZE, SIZE],
            "color": "RGB",
            "resize": "letterbox",
            "std": [255, 255, 255],
        },
        "decode": {"output": "output0"},
        "labels": LABELS,
    }
    path.with_suffix(".yaml").write_text(yaml.safe_dump(manifest))


def run_three_cameras(tmp_path: Path, max_batch: int) -> tuple[Pipeline, EventSink]:
    model = tmp_path / "batch.onnx"
    dynamic_batch_yolov8(model)
    config_path = tmp_path / "edged.yaml"
    camera = {"source": {"uri": str(CLIP), "realtime": False}, "detect": {"model": "m"}}
    config_path.write_text(
        yaml.safe_dump(
            {
                "device_id": "t",
                "journal": {"path": str(tmp_path / "j.db")},
                "models": {
                    "m": {
                        "path": str(model),
                        "backend": "cpu",
                        "max_batch": max_batch,
                        # long enough that a decoder starved by the inference threads on a
                        # 2-core machine (decoders run at nice 5) still makes its camera's run
                        "batch_timeout_ms": 250,
                    }
                },
                "cameras": {f"cam{i}": camera for i in range(3)},
            }
        )
    )
    journal = Journal(JournalConfig(path=tmp_path / "j.db"))
    sink = EventSink(journal)
    pipeline = Pipeline(load(config_path), sink)
    pipeline.start()
    assert pipeline.wait(60), "the pipeline did not finish"
    pipeline.stop()
    journal.close()
    return pipeline, sink


def test_frames_of_three_cameras_share_one_run(tmp_path: Path) -> None:
    pipeline, sink = run_three_cameras(tmp_path, max_batch=4)
    worker = pipeline.workers["m"]
    # three cameras, one frame each per run: never more than three, mostly three
    assert max(worker.batch_sizes) == 3
    runs = sum(worker.batch_sizes.values())
    assert worker.batch_sizes[3] >= 0.9 * runs
    assert all(st.processed == 150 for st in pipeline.stats().values())
    assert sink.counts["object"] >= 3  # each camera's one box became a tracked object


def test_max_batch_one_runs_frames_one_by_one(tmp_path: Path) -> None:
    pipeline, _ = run_three_cameras(tmp_path, max_batch=1)
    assert set(pipeline.workers["m"].batch_sizes) == {1}
    assert all(st.processed == 150 for st in pipeline.stats().values())


def test_a_camera_alone_with_an_offline_one_never_waits_for_it(tmp_path: Path) -> None:
    """A long batch timeout (1 s) and a second camera that never connects: the streaming
    camera's frames go through at the clip's pace, not once per timeout."""
    model = tmp_path / "batch.onnx"
    dynamic_batch_yolov8(model)
    config_path = tmp_path / "edged.yaml"
    dead = f"rtsp://127.0.0.1:{free_port()}/none"
    config_path.write_text(
        yaml.safe_dump(
            {
                "device_id": "t",
                "journal": {"path": str(tmp_path / "j.db")},
                "models": {"m": {"path": str(model), "backend": "cpu", "batch_timeout_ms": 1000}},
                "cameras": {
                    "live": {
                        "source": {"uri": str(CLIP), "realtime": True},
                        "detect": {"model": "m"},
                    },
                    "offline": {"source": {"uri": dead}, "detect": {"model": "m"}},
                },
            }
        )
    )
    journal = Journal(JournalConfig(path=tmp_path / "j.db"))
    pipeline = Pipeline(load(config_path), EventSink(journal))
    pipeline.start()
    try:
        live = pipeline.cameras["live"]
        # 21 frames at 7 fps take 3 s; waiting 1 s per frame for the offline camera, 21 s
        poll(lambda: live.processed >= 21, 12)
        assert set(pipeline.workers["m"].batch_sizes) == {1}
    finally:
        pipeline.stop()
        journal.close()


def test_two_runs_in_flight_keep_each_cameras_frame_order(tmp_path: Path) -> None:
    """The shipped model with two streams: every frame of each camera reaches its analytics,
    in the order it was decoded, whichever run finished first."""
    config_path = tmp_path / "edged.yaml"
    camera = {"source": {"uri": str(CLIP), "realtime": False}, "detect": {"model": "m"}}
    config_path.write_text(
        yaml.safe_dump(
            {
                "device_id": "t",
                "journal": {"path": str(tmp_path / "j.db")},
                "models": {"m": {"path": str(MODEL), "backend": "cpu", "threads": 2, "streams": 2}},
                "cameras": {"a": camera, "b": camera},
            }
        )
    )
    journal = Journal(JournalConfig(path=tmp_path / "j.db"))
    pipeline = Pipeline(load(config_path), EventSink(journal))
    seen: dict[str, list[int]] = {"a": [], "b": []}
    for name, cam in pipeline.cameras.items():
        process = cam.analytics.process

        def record(frame, detections, people=None, _name=name, _process=process):  # type: ignore[no-untyped-def]
            seen[_name].append(frame.seq)
            return _process(frame, detections, people)

        cam.analytics.process = record  # type: ignore[method-assign]
    worker = pipeline.workers["m"]
    assert len(worker.detectors) == 2
    pipeline.start()
    assert pipeline.wait(120), "the pipeline did not finish"
    pipeline.stop()
    journal.close()
    for name, seqs in seen.items():
        assert seqs == sorted(seqs) and len(seqs) == 150, name
    assert sum(worker.batch_sizes.values()) >= 150


def test_streams_auto_is_one_per_thread_for_int8_on_the_cpu_only() -> None:
    from edged.config.model import ModelConfig
    from edged.models.detector import stream_count

    auto = ModelConfig(path=MODEL, threads=4)
    assert stream_count(auto, "cpu", "int8") == 4
    assert stream_count(auto, "cpu", "fp32") == 1
    assert stream_count(auto, "cuda", "int8") == 1
    assert stream_count(ModelConfig(path=MODEL, threads=2, streams=8), "cpu", "fp32") == 2
