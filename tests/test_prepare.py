"""Preprocessing prepended to the ONNX graph (what a GPU engine runs), checked on ONNX
Runtime's CPU provider against the CPU path: the shipped NanoDet on real frames of the
sample clip, and a letterbox on a synthetic identity model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edged.config.model import ModelConfig
from edged.core.detections import Detections
from edged.models.detector import DetectRequest, load_detector
from edged.models.graph_preprocess import (
    FRAMES,
    _Graph,
    letterbox_shape_nodes,
    preparation_of,
    prepare_graph,
)
from edged.models.manifest import InputSpec, ModelError, load_manifest
from edged.models.nanodet import NanoDetAdapter
from edged.models.preprocess import ImagePreprocessor, place
from tests.paths import CLIP, MODEL

FRAME_NUMBERS = (1, 60, 120)  # 1-based, as in the clip's README


def read_frames(numbers: tuple[int, ...] = FRAME_NUMBERS) -> dict[int, np.ndarray]:
    cap = cv2.VideoCapture(str(CLIP))
    out: dict[int, np.ndarray] = {}
    n = 0
    while len(out) < len(numbers):
        ok, image = cap.read()
        assert ok, f"the clip ended before frame {max(numbers)}"
        n += 1
        if n in numbers:
            out[n] = image
    cap.release()
    return out


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def unmatched(
    ours: Detections, theirs: Detections, min_score: float, min_iou: float, max_dscore: float
) -> list[str]:
    """Detections of ``ours`` with score ≥ min_score that have no detection in ``theirs``
    of the same class with IoU ≥ min_iou and |Δscore| ≤ max_dscore (``theirs`` should be
    decoded at a lower threshold so that borderline scores still find their partner)."""
    problems = []
    for i in np.flatnonzero(ours.score >= min_score):
        same = np.flatnonzero(theirs.class_id == ours.class_id[i])
        if len(same):
            overlap = iou(ours.xyxy[i : i + 1], theirs.xyxy[same])[0]
            close = np.abs(theirs.score[same] - ours.score[i]) <= max_dscore
            if np.any((overlap >= min_iou) & close):
                continue
            best = int(np.argmax(overlap))
            detail = f"best IoU {overlap[best]:.3f}, score {theirs.score[same][best]:.3f}"
        else:
            detail = "no detection of that class"
        problems.append(
            f"class {ours.class_id[i]} score {ours.score[i]:.3f} at "
            f"{np.round(ours.xyxy[i], 1).tolist()}: {detail}"
        )
    return problems


def session(model: onnx.ModelProto | Path, expose: tuple[str, ...] = ()) -> ort.InferenceSession:
    """A CPU session; ``expose`` adds internal tensors (e.g. the preprocessed input) as
    outputs."""
    if isinstance(model, Path):
        model = onnx.load(str(model))
    for name in expose:
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def frames() -> dict[int, np.ndarray]:
    return read_frames()


@pytest.fixture(scope="module")
def prepared_nanodet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = load_manifest(MODEL).input
    return prepare_graph(MODEL, spec, tmp_path_factory.mktemp("prep") / "nanodet.frames.onnx")


def test_prepared_nanodet_finds_what_the_cpu_path_finds(
    prepared_nanodet: Path,
    frames: dict[int, np.ndarray],
    record_property: Callable[[str, object], None],
) -> None:
    manifest = load_manifest(MODEL)
    spec = manifest.input
    detector = load_detector(ModelConfig(path=MODEL, backend="cpu", threads=2, precision="fp32"))
    adapter = NanoDetAdapter(manifest)
    prepared = session(prepared_nanodet, expose=(spec.name,))
    original = session(MODEL)
    names = [o.name for o in prepared.get_outputs()]
    tensor_diff, output_diff, compared = 0.0, 0.0, 0
    level = 1.0 / min(spec.std)
    for n, frame in frames.items():
        h, w = frame.shape[:2]
        ref = np.empty((1, *adapter.input_shape), np.float32)
        geometry = adapter.preprocess(frame, ref[0])
        assert geometry == place(spec, w, h)
        got = dict(zip(names, prepared.run(None, {FRAMES: frame[None]}), strict=True))
        tensor = got.pop(spec.name)
        diff = np.abs(tensor - ref)
        tensor_diff = max(tensor_diff, float(diff.max()))
        # OpenCV's uint8 resize vs exact bilinear then Round: off by at most one grey level
        assert diff.max() <= level * 1.0001, f"frame {n}: preprocessed tensor off by {diff.max()}"
        assert np.mean(diff == 0) >= 0.8, f"frame {n}: only {np.mean(diff == 0):.1%} identical"
        expected = dict(
            zip(
                [o.name for o in original.get_outputs()],
                original.run(None, {spec.name: ref}),
                strict=True,
            )
        )
        assert set(got) == set(expected)  # the model's outputs are untouched
        output_diff = max(output_diff, *(float(np.abs(got[k] - expected[k]).max()) for k in got))

        cpu = detector.detect([DetectRequest(frame, 0.28, 0.5)])[0].detections
        ours = adapter.postprocess(got, 0, place(spec, w, h), 0.28, 0.5)
        assert (cpu.score >= 0.3).sum() >= 3, f"frame {n}: too few detections to compare"
        missing = unmatched(cpu, ours, 0.3, 0.9, 0.02)
        extra = unmatched(ours, cpu, 0.3, 0.9, 0.02)
        assert not missing, f"frame {n}: CPU-path detections the prepared graph lacks: {missing}"
        assert not extra, f"frame {n}: prepared-graph detections the CPU path lacks: {extra}"
        compared += int((cpu.score >= 0.3).sum())
    record_property("preprocessed_tensor_max_abs", tensor_diff)
    record_property("raw_outputs_max_abs", output_diff)
    print(
        f"\nprepared NanoDet on frames {FRAME_NUMBERS}: {compared} detections ≥ 0.3 matched "
        f"both ways; preprocessed tensor max |Δ| {tensor_diff:.5f} (one grey level = "
        f"{level:.5f}), raw outputs max |Δ| {output_diff:.4f}"
    )
    assert output_diff < 0.5


def test_prepared_graph_records_what_it_did(prepared_nanodet: Path) -> None:
    record = preparation_of(prepared_nanodet)
    assert record is not None
    assert record["input"] == FRAMES and record["replaces"] == "input_1:0"
    assert record["source_size"] is None and record["spec"]["resize"] == "letterbox"
    assert preparation_of(MODEL) is None
    model = onnx.load(str(prepared_nanodet))
    frames_input = next(i for i in model.graph.input if i.name == FRAMES)
    assert frames_input.type.tensor_type.elem_type == TensorProto.UINT8
    dims = [d.dim_value or d.dim_param for d in frames_input.type.tensor_type.shape.dim]
    assert dims == ["batch", "height", "width", 3]  # the shipped model batches
    assert [o.name for o in model.graph.output] == [
        o.name for o in onnx.load(str(MODEL)).graph.output
    ]


def test_prepare_refuses_a_spec_that_does_not_fit(tmp_path: Path) -> None:
    spec = load_manifest(MODEL).input
    with pytest.raises(ModelError, match="no input 'images'"):
        prepare_graph(MODEL, spec.model_copy(update={"name": "images"}), tmp_path / "x.onnx")
    with pytest.raises(ModelError, match="axis 3 is 416"):
        prepare_graph(MODEL, spec.model_copy(update={"size": (640, 416)}), tmp_path / "x.onnx")
    once = prepare_graph(MODEL, spec, tmp_path / "once.onnx")
    with pytest.raises(ModelError, match="already prepared"):
        prepare_graph(once, spec.model_copy(update={"name": FRAMES}), tmp_path / "twice.onnx")


# --------------------------------------------------------------------------- letterbox


def identity_model(path: Path, spec: InputSpec) -> Path:
    """A model whose output is its (preprocessed) input tensor."""
    w, h = spec.size
    shape = [1, 3, h, w] if spec.layout == "NCHW" else [1, h, w, 3]
    graph = helper.make_graph(
        [helper.make_node("Identity", [spec.name], ["out"])],
        "identity",
        [helper.make_tensor_value_info(spec.name, TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


LETTERBOX_SPECS = [
    InputSpec(
        name="images",
        size=(640, 384),
        layout="NCHW",
        color="RGB",
        resize="letterbox",
        pad_value=114,
        mean=(0, 0, 0),
        std=(255, 255, 255),
    ),
    InputSpec(
        name="x",
        size=(320, 320),
        layout="NHWC",
        color="BGR",
        resize="letterbox",
        pad_value=0,
        mean=(10, 20, 30),
        std=(2, 3, 4),
    ),
]


def source_pictures(frame: np.ndarray) -> list[np.ndarray]:
    """The real 768×576 frame, a 1280×720 and a 1920×1080 version (wider than the target),
    an odd-sized crop and a tiny one."""
    return [
        frame,
        cv2.resize(frame, (1280, 720)),
        cv2.resize(frame, (1920, 1080)),
        np.ascontiguousarray(frame[13:530, 101:434]),  # 333×517, taller than wide
        np.ascontiguousarray(frame[200:217, 300:331]),  # 31×17
    ]


@pytest.mark.parametrize("spec", LETTERBOX_SPECS, ids=["nchw-rgb-640x384", "nhwc-bgr-320"])
def test_letterbox_graph_matches_the_cpu_preprocessor(
    spec: InputSpec, tmp_path: Path, frames: dict[int, np.ndarray]
) -> None:
    """Tolerance: one grey level (1/std) on image pixels, ≥ 80 % of them identical; the
    border (placement from the graph's integer arithmetic) identical everywhere."""
    model = identity_model(tmp_path / "identity.onnx", spec)
    dynamic = session(prepare_graph(model, spec, tmp_path / "dynamic.onnx"))
    pre = ImagePreprocessor(spec)
    level = 1.0 / min(spec.std)
    in_w, in_h = spec.size
    for picture in source_pictures(frames[1]):
        h, w = picture.shape[:2]
        ref = np.empty(pre.shape(), np.float32)
        geo = pre(picture, ref)
        got = dynamic.run(None, {FRAMES: picture[None]})[0][0]
        assert got.shape == ref.shape
        nchw = (lambda t: t) if spec.layout == "NCHW" else (lambda t: t.transpose(2, 0, 1))
        ref_c, got_c = nchw(ref), nchw(got)
        left, top = int(geo.pad[0]), int(geo.pad[1])
        new_w, new_h = round(w * geo.scale[0]), round(h * geo.scale[1])
        inside = np.zeros((in_h, in_w), bool)
        inside[top : top + new_h, left : left + new_w] = True
        np.testing.assert_array_equal(got_c[:, ~inside], ref_c[:, ~inside], err_msg=f"{w}×{h}")
        diff = np.abs(got_c[:, inside] - ref_c[:, inside])
        assert diff.max() <= level * 1.0001, f"{w}×{h}: off by {diff.max() / level:.3f} levels"
        assert np.mean(diff == 0) >= 0.8, f"{w}×{h}: {np.mean(diff == 0):.1%} identical"

    # the same picture through a graph fixed to its size: constants instead of shape maths
    frame = frames[1]
    fixed_path = prepare_graph(model, spec, tmp_path / "fixed.onnx", source_size=(768, 576))
    dims = onnx.load(str(fixed_path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 576, 768, 3]
    fixed = session(fixed_path).run(None, {FRAMES: frame[None]})[0]
    np.testing.assert_array_equal(fixed, dynamic.run(None, {FRAMES: frame[None]})[0])


def _letterbox_arithmetic(size: tuple[int, int]) -> ort.InferenceSession:
    """Only the graph's placement arithmetic: frame shape in, resized [h, w] and pads out."""
    g = _Graph(onnx)
    new_hw, pads = letterbox_shape_nodes(g, "shape", size)
    graph = helper.make_graph(
        g.nodes,
        "letterbox",
        [helper.make_tensor_value_info("shape", TensorProto.INT64, [4])],
        [
            helper.make_tensor_value_info(new_hw, TensorProto.INT64, [2]),
            helper.make_tensor_value_info(pads, TensorProto.INT64, [8]),
        ],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return session(model)


def _placement(spec: InputSpec, w: int, h: int) -> tuple[list[int], list[int]]:
    geo = place(spec, w, h)
    new_w, new_h = round(w * geo.scale[0]), round(h * geo.scale[1])
    left, top = int(geo.pad[0]), int(geo.pad[1])
    in_w, in_h = spec.size
    return [new_h, new_w], [0, 0, top, left, 0, 0, in_h - new_h - top, in_w - new_w - left]


CAMERA_SIZES = [
    (1920, 1080),
    (1280, 720),
    (640, 480),
    (768, 576),
    (2560, 1440),
    (3840, 2160),
    (704, 576),
    (352, 288),
    (1280, 960),
    (2592, 1944),
    (2688, 1520),
    (1024, 768),
    (800, 600),
    (720, 1280),
    (1080, 1920),
    (320, 240),
    (1440, 1080),
    (4000, 3000),
]
TARGETS = [
    (640, 640),
    (416, 416),
    (320, 320),
    (512, 512),
    (960, 960),
    (1280, 1280),
    (640, 384),
    (384, 640),
    (608, 608),
]


def test_letterbox_arithmetic_is_places_on_camera_sizes() -> None:
    for size in TARGETS:
        spec = InputSpec(name="x", size=size, resize="letterbox")
        arithmetic = _letterbox_arithmetic(size)
        for w, h in CAMERA_SIZES:
            new_hw, pads = arithmetic.run(None, {"shape": np.array([1, h, w, 3], np.int64)})
            assert (new_hw.tolist(), pads.tolist()) == _placement(spec, w, h), (size, (w, h))


def test_letterbox_arithmetic_differs_from_place_only_on_exact_ties() -> None:
    """Every size from 1×1 to 299×299 into 416²: the graph rounds w·r exactly (half to even);
    place() rounds Python's float product, which lands either side of an exact .5. They part
    only there, by one pixel."""
    spec = InputSpec(name="x", size=(416, 416), resize="letterbox")
    arithmetic = _letterbox_arithmetic(spec.size)
    ties = 0
    for w in range(1, 300):
        for h in range(1, 300):
            new_hw, pads = arithmetic.run(None, {"shape": np.array([1, h, w, 3], np.int64)})
            want_hw, want_pads = _placement(spec, w, h)
            if new_hw.tolist() == want_hw and pads.tolist() == want_pads:
                continue
            ties += 1
            # the short side s·416/l is exactly k + 0.5, and the two differ by one pixel
            s, limit = (h, w) if w >= h else (w, h)
            assert (2 * s * 416) % limit == 0 and (2 * s * 416 // limit) % 2 == 1, (w, h)
            assert np.abs(new_hw - np.array(want_hw)).max() == 1, (w, h)
    assert ties / 299**2 < 1e-3, ties
