"""INT8 and FP16 of the shipped detector, made from real frames, checked on real frames.

Quantization runs once per module (≈ 5 s on 2 cores): 30 calibration frames from the sample
clip and the two shippable scene clips, MinMax, as MEASURED.md's recipe says.

Tolerance for "finds the same people": every FP32 person scoring ≥ 0.5 should be found by
the converted model (same class, IoU ≥ 0.5, its score ≥ 0.3: a score moving from 0.52 to
0.48 is not a lost person). INT8 is allowed to miss 10 % of them over the frames checked
(measured here: none missed); FP16 none.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edged.config.model import ModelConfig
from edged.core.detections import Detections
from edged.core.files import sha256_of
from edged.models.detector import Detector, DetectRequest, load_detector
from edged.models.manifest import load_manifest
from edged.tools.agreement import compare_detections
from edged.tools.calibration import (
    FrameReader,
    collect_frames,
    deduplicate,
    sample_file,
    source_kind,
    thumbnail,
)
from edged.tools.fp16 import convert_fp16
from edged.tools.graph_edits import fold_pad_into_maxpool, make_dynamic_batch
from edged.tools.int8 import quantize_int8
from edged.tools.model_files import QuantizeError, output_path, write_manifest
from edged.tools.report import Report
from tests.paths import CLIP, MODEL, ROOT
from tests.rtsp import RtspServer, gst_rtsp_available

SCENES = ROOT / "samples"
SCENE_CLIPS = [SCENES / "traffic-street-topdown.mp4", SCENES / "shelf-bottles.mp4"]
CHECK_FRAMES = (1, 50, 100, 149)  # 1-based frame numbers of the sample clip
PERSON = 0


def load(path: Path) -> Detector:
    # precision null: the file itself, whatever its precision (auto would pick the INT8 variant)
    return load_detector(ModelConfig(path=path, backend="cpu", threads=2, precision=None))


@pytest.fixture(scope="module")
def clip_frames() -> list[np.ndarray]:
    """All 150 frames of the sample clip, decoded straight through."""
    with av.open(str(CLIP)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def check_frames(clip_frames: list[np.ndarray]) -> list[np.ndarray]:
    return [clip_frames[n - 1] for n in CHECK_FRAMES]


@pytest.fixture(scope="module")
def fp32() -> Detector:
    return load(MODEL)


@pytest.fixture(scope="module")
def calibration() -> list[np.ndarray]:
    sources = [CLIP, *(c for c in SCENE_CLIPS if c.is_file())]
    return collect_frames(sources, 30)


@pytest.fixture(scope="module")
def int8(tmp_path_factory: pytest.TempPathFactory, calibration: list[np.ndarray]) -> Report:
    out = tmp_path_factory.mktemp("int8") / "nanodet-g-416-int8.onnx"
    return quantize_int8(MODEL, out, calibration, method="minmax")


@pytest.fixture(scope="module")
def fp16(tmp_path_factory: pytest.TempPathFactory) -> Report:
    return convert_fp16(MODEL, tmp_path_factory.mktemp("fp16") / "nanodet-g-416-fp16.onnx")


def people(dets: Detections) -> Detections:
    return dets[dets.class_id == PERSON]


def detect(det: Detector, frames: list[np.ndarray]) -> list[Detections]:
    return [people(det.detect([DetectRequest(f, 0.3, 0.5)])[0].detections) for f in frames]


# ---------------------------------------------------------------------------- (a) Pad folding


def test_folding_the_inf_pad_into_maxpool_is_exact(check_frames, fp32: Detector) -> None:
    original = onnx.load(str(MODEL))
    folded = onnx.load(str(MODEL))
    assert fold_pad_into_maxpool(folded) == 1
    pools = [n for n in folded.graph.node if n.op_type == "MaxPool"]
    assert [list(a.ints) for a in pools[0].attribute if a.name == "pads"] == [[1, 1, 1, 1]]
    assert sum(n.op_type == "Pad" for n in folded.graph.node) == (
        sum(n.op_type == "Pad" for n in original.graph.node) - 1
    )
    x = np.empty((1, *fp32.adapter.input_shape), np.float32)
    fp32.adapter.preprocess(check_frames[0], x[0])
    for level in (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    ):
        opts = ort.SessionOptions()
        opts.graph_optimization_level = level
        a = ort.InferenceSession(
            original.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        b = ort.InferenceSession(
            folded.SerializeToString(), opts, providers=["CPUExecutionProvider"]
        )
        feed = {fp32.adapter.input_name: x}
        for before, after in zip(a.run(None, feed), b.run(None, feed), strict=True):
            assert np.isfinite(after).all()
            assert float(np.abs(before - after).max()) <= 1e-6


def _pad_pool_model(value: float) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    pads = helper.make_tensor("pads", TensorProto.INT64, [8], [0, 0, 1, 1, 0, 0, 1, 1])
    fill = helper.make_tensor("fill", TensorProto.FLOAT, [], [value])
    nodes = [
        helper.make_node("Pad", ["x", "pads", "fill"], ["p"]),
        helper.make_node("MaxPool", ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2]),
    ]
    graph = helper.make_graph(nodes, "g", [x], [y], [pads, fill])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_only_a_very_negative_pad_is_folded() -> None:
    """A zero Pad changes the max of negative windows: it must stay; −inf folds exactly."""
    x = -np.abs(np.random.default_rng(1).standard_normal((1, 2, 6, 6))).astype(np.float32)
    zero = _pad_pool_model(0.0)
    assert fold_pad_into_maxpool(zero) == 0
    inf = _pad_pool_model(-np.inf)
    want = ort.InferenceSession(inf.SerializeToString(), providers=["CPUExecutionProvider"])
    assert fold_pad_into_maxpool(inf) == 1 and not any(n.op_type == "Pad" for n in inf.graph.node)
    got = ort.InferenceSession(inf.SerializeToString(), providers=["CPUExecutionProvider"])
    assert np.array_equal(want.run(None, {"x": x})[0], got.run(None, {"x": x})[0])


# ---------------------------------------------------------------------------- (b) INT8


def test_int8_model_is_qdq_smaller_and_has_its_own_manifest(int8: Report) -> None:
    model = onnx.load(str(int8.output))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert "Pad" not in ops  # the −inf Pad folded, the zero Pads into the convolutions
    assert int8.output_bytes < 0.35 * MODEL.stat().st_size
    manifest = load_manifest(int8.output)
    assert manifest.precision == "int8"
    assert manifest.derived_from == sha256_of(MODEL)
    assert manifest.sha256 == sha256_of(int8.output)
    assert int8.method == "minmax" and int8.calibration_frames == 30
    assert "INT8" in int8.summary() and "recall" in int8.summary()


def test_int8_finds_the_same_people_as_fp32(int8: Report, fp32: Detector, check_frames) -> None:
    det = load(int8.output)
    assert det.engine.provider == "CPUExecutionProvider"
    a = compare_detections(detect(fp32, check_frames), detect(det, check_frames))
    assert a.reference >= 12  # the clip has 3–6 clear people per frame
    assert a.recall >= 0.9, a.summary()
    assert a.precision >= 0.9, a.summary()
    assert a.mean_iou >= 0.9, a.summary()
    assert a.mean_abs_score_delta <= 0.05, a.summary()


def test_auto_keeps_the_method_that_agrees_best_on_held_out_frames(
    tmp_path: Path, calibration: list[np.ndarray]
) -> None:
    report = quantize_int8(MODEL, tmp_path / "auto.onnx", calibration, method="auto")
    assert set(report.trials) == {"minmax", "entropy", "percentile"}
    assert report.method == max(report.trials, key=lambda m: report.trials[m].key())
    assert report.calibration_frames == 24 and report.agreement.frames == 6  # every 5th
    assert report.agreement is report.trials[report.method]
    assert load_manifest(report.output).precision == "int8"
    assert not list(tmp_path.glob("*.minmax.*")) and not list(tmp_path.glob("edged-int8-*"))
    print(report.summary())


def test_unknown_calibration_method_is_refused(calibration) -> None:
    with pytest.raises(QuantizeError, match="unknown calibration method"):
        quantize_int8(MODEL, None, calibration, method="kl")


# ---------------------------------------------------------------------------- (c) FP16


def test_converted_models_go_beside_the_source_as_onnx(tmp_path: Path) -> None:
    assert output_path(MODEL, None, "int8") == MODEL.with_name("nanodet-g-416-int8.onnx")
    assert output_path(MODEL, None, "fp16") == MODEL.with_name("nanodet-g-416-fp16.onnx")
    assert output_path(MODEL, str(tmp_path / "x.onnx"), "fp16") == tmp_path / "x.onnx"
    for convert in (
        lambda: quantize_int8(MODEL, tmp_path / "x.plan", [np.zeros((8, 8, 3), np.uint8)]),
        lambda: convert_fp16(MODEL, tmp_path / "x.plan"),
    ):
        with pytest.raises(QuantizeError, match=r"x\.plan: the output must be a \.onnx file"):
            convert()
    assert not list(tmp_path.iterdir())


def test_fp16_model_agrees_with_fp32(fp16: Report, fp32: Detector, check_frames) -> None:
    model = onnx.load(str(fp16.output))
    assert any(i.data_type == TensorProto.FLOAT16 for i in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT  # keep_io_types
    assert 0.45 < fp16.size_ratio < 0.55
    manifest = load_manifest(fp16.output)
    assert manifest.precision == "fp16" and manifest.derived_from == sha256_of(MODEL)
    det = load(fp16.output)
    a = compare_detections(detect(fp32, check_frames), detect(det, check_frames))
    assert a.recall == 1.0 and a.precision == 1.0, a.summary()
    assert a.mean_iou >= 0.98 and a.max_abs_score_delta <= 0.01, a.summary()


# ---------------------------------------------------------------------------- dynamic batch


def batch_one_copy(out: Path) -> Path:
    """The shipped model as it was converted, before its batch was made dynamic: batch 1 on
    the input and outputs, and 1 where its Reshapes were rewritten to copy the batch."""
    model = onnx.load(str(MODEL))
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.shape.dim[0].dim_value = 1
    for init in model.graph.initializer:
        if init.name.endswith("__dynamic_batch_shape"):
            shape = numpy_helper.to_array(init).copy()
            shape[0] = 1
            init.CopyFrom(numpy_helper.from_array(shape, init.name))
    onnx.save(model, str(out))
    write_manifest(MODEL, out, "fp32")
    return out


def test_dynamic_batch_copy_runs_a_batch_like_single_frames(tmp_path: Path, fp32, check_frames):
    fixed = batch_one_copy(tmp_path / "nanodet-b1.onnx")
    assert load_detector(ModelConfig(path=fixed, backend="cpu")).engine.max_batch == 1
    out = make_dynamic_batch(fixed, tmp_path / "nanodet-dyn.onnx")
    det = load_detector(ModelConfig(path=out, backend="cpu", threads=2, max_batch=4))
    assert det.engine.max_batch is None and det.max_batch == 4
    batched = [d.detections for d in det.detect([DetectRequest(f, 0.3, 0.5) for f in check_frames])]
    single = [fp32.detect([DetectRequest(f, 0.3, 0.5)])[0].detections for f in check_frames]
    for b, s in zip(batched, single, strict=True):
        assert len(b) == len(s)
        np.testing.assert_allclose(b.xyxy, s.xyxy, atol=0.01)
        np.testing.assert_allclose(b.score, s.score, atol=1e-4)


# ---------------------------------------------------------------------------- (d) frames


def _indices(frames: list[np.ndarray], clip_frames: list[np.ndarray]) -> list[int]:
    """Where each frame sits in the clip (pixel-identical decode)."""
    found = []
    for f in frames:
        hits = [i for i, c in enumerate(clip_frames) if np.array_equal(f, c)]
        assert hits, "a collected frame is not a frame of the clip"
        found.append(hits[0])
    return found


@pytest.mark.parametrize("seek", [False, True])
def test_samples_spread_over_the_whole_clip(clip_frames, seek: bool) -> None:
    idx = _indices(sample_file(str(CLIP), 10, seek=seek), clip_frames)
    assert idx == sorted(set(idx)) and len(idx) == 10
    assert idx[0] < 15 and idx[-1] > 135  # not the first ten frames: the whole clip
    assert max(np.diff(idx)) <= 2 * 150 / 10


def test_collect_frames_spreads_and_caps(clip_frames) -> None:
    frames = collect_frames([CLIP], 12)
    assert len(frames) == 12
    idx = _indices(frames, clip_frames)
    assert idx == sorted(set(idx))
    assert idx[0] < 15 and idx[-1] > 135 and max(np.diff(idx)) <= 2 * 150 / 12


def test_collect_frames_shares_the_cap_between_sources() -> None:
    scenes = [c for c in SCENE_CLIPS if c.is_file()]
    frames = collect_frames([CLIP, *scenes], 9)
    assert len(frames) == 9
    from_clip = sum(f.shape[:2] == (576, 768) for f in frames)
    assert from_clip == 9 // (1 + len(scenes))


def test_collect_frames_returns_fewer_when_the_clip_has_fewer() -> None:
    frames = collect_frames([CLIP], 500)
    assert 100 <= len(frames) <= 150  # 150 frames, some consecutive ones nearly identical
    assert len(deduplicate(frames)) == len(frames)


def test_deduplicate_drops_repeated_frames(clip_frames) -> None:
    distinct = clip_frames[::30]  # 5 frames 4 s apart
    rng = np.random.default_rng(0)
    noisy = [
        np.clip(f.astype(np.int16) + rng.integers(-1, 2, f.shape), 0, 255).astype(np.uint8)
        for f in distinct
    ]
    mixed = [distinct[0], distinct[0].copy(), distinct[1], noisy[0], distinct[2], noisy[1]]
    mixed += [distinct[3], distinct[2].copy(), distinct[4], noisy[4], noisy[3]]
    kept = deduplicate(mixed)
    assert len(kept) == 5
    assert all(k is d for k, d in zip(kept, distinct, strict=True))
    assert len(deduplicate(mixed, limit=3)) == 3


def test_collect_frames_watches_a_live_camera_over_a_window(tmp_path: Path, clip_frames) -> None:
    """A real RTSP server loops the clip at 7 fps; 4 frames over 3 s are ≈ 5 frames apart,
    not the first four the stream delivers in a burst; a file beside it shares the cap."""
    reason = gst_rtsp_available()
    assert reason is None, f"GStreamer's RTSP server is needed: {reason}"
    with RtspServer(CLIP, tmp_path) as server:
        live = collect_frames([server.url], 4, window_s=3.0)
        mixed = collect_frames([server.url, str(CLIP)], 6, window_s=1.0)
    assert len(live) == 4 and all(f.shape == (576, 768, 3) for f in live)
    thumbs = np.stack([thumbnail(f) for f in clip_frames])
    # the server re-encodes the clip: find each frame's nearest clip frame
    idx = [int(np.abs(thumbs - thumbnail(f)).mean(axis=(1, 2)).argmin()) for f in live]
    gaps = np.diff(idx)
    assert ((gaps >= 2) & (gaps <= 12)).all(), idx
    assert len(mixed) == 6


def test_source_kinds() -> None:
    assert source_kind("rtsp://cam/stream1") == "stream"
    assert source_kind("https://example.org/live.m3u8") == "stream"
    assert source_kind("/dev/video0") == source_kind("0") == "usb"
    assert source_kind("clips/a.mp4") == source_kind("file:///x.mp4") == "file"


# ---------------------------------------------------------------------------- (e) reader


def test_reader_feeds_preprocessed_batches(fp32: Detector, clip_frames) -> None:
    frames = clip_frames[:7]
    reader = FrameReader.for_detector(fp32, frames, batch_size=3)
    assert len(reader) == 3
    batches = list(iter(reader.get_next, None))
    assert [b.keys() for b in batches] == [{"input_1:0"}] * 3
    shapes = [b["input_1:0"].shape for b in batches]
    assert shapes == [(3, 3, 416, 416), (3, 3, 416, 416), (1, 3, 416, 416)]
    assert all(b["input_1:0"].dtype == np.float32 for b in batches)
    expected = np.empty((3, 416, 416), np.float32)
    fp32.adapter.preprocess(frames[6], expected)
    assert np.array_equal(batches[2]["input_1:0"][0], expected)
    reader.rewind()
    assert len(list(iter(reader.get_next, None))) == 3
    reader.set_range(1, 2)
    assert len(reader) == 1
    assert [b["input_1:0"].shape[0] for b in iter(reader.get_next, None)] == [3]
    single = FrameReader.for_detector(fp32, frames, batch_size=1)
    assert len(single) == 7 and len(list(iter(single.get_next, None))) == 7


def test_the_convert_command_makes_a_batch_one_model_dynamic(tmp_path: Path) -> None:
    import subprocess
    import sys

    fixed = batch_one_copy(tmp_path / "b1.onnx")
    out = tmp_path / "dyn.onnx"
    done = subprocess.run(
        [sys.executable, "-m", "edged", "convert", str(fixed), "--dynamic-batch", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"dynamic batch: {out}" in done.stdout
    # it runs a batch as the shipped dynamic file does
    x = np.random.default_rng(0).standard_normal((2, 3, 416, 416)).astype(np.float32)
    made, shipped = (
        ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (out, MODEL)
    )
    got, want = made.run(None, {"input_1:0": x}), shipped.run(None, {"input_1:0": x})
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    assert load_manifest(out).derived_from == sha256_of(fixed)
    again = subprocess.run(
        [sys.executable, "-m", "edged", "convert", str(out), "--dynamic-batch"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 1 and "already dynamic" in again.stderr
