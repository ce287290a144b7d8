"""The shipped NanoDet on real frames, its decoder on known tensors, and its manifest."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from shapely.geometry import box

from edged.analytics.motion import Region
from edged.camera.crops import detect_crops
from edged.config.camera import DetectConfig
from edged.config.model import ModelConfig
from edged.core.files import sha256_of
from edged.engines.base import EngineError
from edged.engines.onnxruntime import OrtEngine
from edged.models.detector import Detector, DetectRequest, load_detector
from edged.models.manifest import ModelError, decode_spec, load_manifest
from edged.models.nanodet import NanoDetAdapter, NanoDetDecode
from edged.models.preprocess import place
from tests.paths import CLIP, MODEL, ROOT

TRAFFIC = ROOT / "samples" / "traffic-street-topdown.mp4"

# The three pedestrians clearly visible in the clip's first frame (x1, y1, x2, y2, pixels).
FIRST_FRAME_PEOPLE = np.array(
    [[499, 158, 530, 233], [258, 219, 291, 308], [633, 242, 675, 323]], np.float32
)


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(x[:, 2:] - x[:, :2], axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


@pytest.fixture(scope="module")
def detector() -> Detector:
    return load_detector(ModelConfig(path=MODEL, backend="cpu", threads=2, precision="fp32"))


@pytest.fixture(scope="module")
def first_frame() -> np.ndarray:
    cap = cv2.VideoCapture(str(CLIP))
    ok, image = cap.read()
    cap.release()
    assert ok
    return image


def test_finds_the_people_in_the_first_frame(detector: Detector, first_frame: np.ndarray) -> None:
    dets = detector.detect([DetectRequest(first_frame, 0.35, 0.5)])[0].detections
    people = dets[dets.class_id == detector.labels.index("person")]
    overlap = iou(FIRST_FRAME_PEOPLE, people.xyxy)
    assert overlap.max(axis=1).min() >= 0.5, overlap.max(axis=1)
    assert people.score.min() >= 0.35
    assert dets.xyxy.dtype == np.float32 and dets.class_id.dtype == np.int32


def test_boxes_are_in_source_pixels(detector: Detector, first_frame: np.ndarray) -> None:
    """The same picture at twice the size gives the same boxes at twice the coordinates."""
    big = cv2.resize(first_frame, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
    small = detector.detect([DetectRequest(first_frame, 0.6, 0.5)])[0].detections
    large = detector.detect([DetectRequest(big, 0.6, 0.5)])[0].detections
    assert len(small) == len(large) >= 3  # the three people, and the parked cars
    np.testing.assert_allclose(large.xyxy, small.xyxy * 2, atol=6)


def test_batch_with_per_image_thresholds(detector: Detector, first_frame: np.ndarray) -> None:
    detected = detector.detect(
        [DetectRequest(first_frame, 0.3, 0.5), DetectRequest(first_frame, 0.7, 0.5)]
    )
    loose, strict = (d.detections for d in detected)
    assert len(strict) < len(loose)
    assert strict.score.min() >= 0.7
    # each image comes with its own stage times
    for d in detected:
        assert d.times.preprocess > 0 and d.times.inference > 0 and d.times.postprocess > 0


def letterboxed(image: np.ndarray, pad: int) -> np.ndarray:
    """The plain letterbox: scaled to fit 416², centred on a ``pad`` grey square."""
    h, w = image.shape[:2]
    r = min(416 / w, 416 / h)
    new_w, new_h = round(w * r), round(h * r)
    canvas = np.full((416, 416, 3), pad, np.uint8)
    top, left = round((416 - new_h) / 2 - 0.1), round((416 - new_w) / 2 - 0.1)
    canvas[top : top + new_h, left : left + new_w] = cv2.resize(image, (new_w, new_h))
    return canvas


def test_preprocess_matches_the_plain_formula(detector: Detector, first_frame: np.ndarray) -> None:
    spec = detector.manifest.input
    assert spec.resize == "letterbox"  # NanoDet trains on letterboxed pictures
    out = np.empty((3, 416, 416), np.float32)
    mean, std = np.array(spec.mean, np.float32), np.array(spec.std, np.float32)
    tall = np.ascontiguousarray(first_frame[:, :300])
    # the border is drawn once per picture shape: a change of shape redraws it
    for image in (first_frame, tall, first_frame):
        detector.adapter.preprocess(image, out)
        x = letterboxed(image, spec.pad_value).astype(np.float32)
        np.testing.assert_allclose(out, ((x - mean) / std).transpose(2, 0, 1), atol=1e-5)


def test_gfl_decode_on_known_tensors() -> None:
    """One anchor of the stride-16 grid with a known side distribution gives an exact box."""
    manifest = load_manifest(MODEL, verify=False)
    adapter = NanoDetAdapter(manifest)
    strides = decode_spec(manifest, NanoDetDecode).outputs
    outputs = {}
    sizes = {8: 52, 16: 26, 32: 13}
    for spec in strides:
        n = sizes[spec.stride] ** 2
        outputs[spec.scores] = np.zeros((1, n, 80), np.float32)
        outputs[spec.boxes] = np.full((1, n, 44), -50.0, np.float32)
    s16 = next(o for o in strides if o.stride == 16)
    row, col = 5, 7  # anchor centre (7.5·16, 5.5·16) = (120, 88) in the 416² input
    anchor = row * 26 + col
    outputs[s16.scores][0, anchor, 2] = 0.9  # "car"
    logits = outputs[s16.boxes][0, anchor].reshape(4, 11)
    logits[:] = -50.0
    for side, bin_ in enumerate([2, 1, 3, 4]):  # left, top, right, bottom in strides
        logits[side, bin_] = 50.0
    outputs[s16.boxes][0, anchor] = logits.ravel()
    dets = adapter.postprocess(outputs, 0, place(manifest.input, 832, 832), 0.5, 0.5)
    assert len(dets) == 1 and int(dets.class_id[0]) == 2
    expected = np.array([120 - 32, 88 - 16, 120 + 48, 88 + 64], np.float32) * 2
    np.testing.assert_allclose(dets.xyxy[0], expected, atol=1e-3)
    assert dets.score[0] == pytest.approx(0.9)


def test_class_aware_nms_keeps_overlapping_boxes_of_other_classes() -> None:
    from edged.core.boxes import nms_per_class

    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10]], np.float32)
    keep = nms_per_class(boxes, np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 0, 1]), 0.5, 10)
    assert keep.tolist() == [0, 2]


def test_manifest_sha256_mismatch_is_refused(tmp_path: Path) -> None:
    model = tmp_path / MODEL.name
    shutil.copy(MODEL, model)
    shutil.copy(MODEL.with_suffix(".yaml"), model.with_suffix(".yaml"))
    assert load_manifest(model).sha256 == sha256_of(model)
    with model.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ModelError, match="does not match the manifest"):
        load_manifest(model)


def test_manifest_errors_name_the_file(tmp_path: Path) -> None:
    model = tmp_path / MODEL.name
    shutil.copy(MODEL, model)
    data = yaml.safe_load(MODEL.with_suffix(".yaml").read_text())
    del data["labels"]
    model.with_suffix(".yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError, match=r"nanodet-g-416\.yaml: labels"):
        load_manifest(model)
    model.with_suffix(".yaml").unlink()
    with pytest.raises(ModelError, match="cannot read the model's manifest"):
        load_manifest(model)


def test_shipped_manifest_matches_the_model() -> None:
    manifest = load_manifest(MODEL)
    assert manifest.family == "nanodet"
    assert len(manifest.labels) == 80 and manifest.labels[0] == "person"


def test_letterbox_places_and_maps_back() -> None:
    from edged.models.manifest import InputSpec
    from edged.models.preprocess import ImagePreprocessor

    spec = InputSpec(
        name="images", size=(640, 640), color="RGB", resize="letterbox", std=(255,) * 3
    )
    geo = place(spec, 768, 576)
    assert geo.scale == (640 / 768, 480 / 576) and geo.pad == (0.0, 80.0)
    box = np.array([[100, 100, 200, 300]], np.float32)
    in_input = box * ([geo.scale[0], geo.scale[1]] * 2) + [0, 80, 0, 80]
    np.testing.assert_allclose(geo.to_source(in_input.astype(np.float32)), box, atol=1e-3)
    image = np.full((576, 768, 3), (10, 20, 30), np.uint8)
    out = np.empty((3, 640, 640), np.float32)
    ImagePreprocessor(spec)(image, out)
    assert out[0, 0, 0] == pytest.approx(114 / 255) and out[0, 320, 320] == pytest.approx(30 / 255)
    assert out[2, 320, 320] == pytest.approx(10 / 255)  # RGB order


def test_graph_preprocessing_finds_the_same_people(
    detector: Detector, first_frame: np.ndarray, tmp_path: Path
) -> None:
    """preprocess: graph (what GPU backends use) through the real loading path, on the CPU."""
    graph = load_detector(
        ModelConfig(
            path=MODEL, backend="cpu", preprocess="graph", cache_dir=tmp_path, precision="fp32"
        )
    )
    assert graph.graph_input == "frames"
    assert list((tmp_path / "prepared").glob("nanodet-g-416-*.onnx"))
    cap = cv2.VideoCapture(str(CLIP))
    frames = [*[cap.read()[1] for _ in range(60)][::20], first_frame]
    cap.release()
    requests = [DetectRequest(f, 0.3, 0.5) for f in frames]
    cpu = [d.detections for d in detector.detect(requests)]
    gpu_path = [d.detections for d in graph.detect(requests)]
    for a, b in zip(cpu, gpu_path, strict=True):
        confident = a[a.score >= 0.4]
        overlap = iou(confident.xyxy, b.xyxy)
        assert overlap.shape[0] == 0 or overlap.max(axis=1).min() >= 0.9
    # the graph resizes one way: a camera asking for the other is refused, not ignored
    with pytest.raises(ModelError, match="resize stretch asked for"):
        graph.detect([DetectRequest(first_frame, 0.3, 0.5, resize="stretch")])


def test_a_camera_may_fit_its_picture_otherwise_than_the_manifest(
    detector: Detector, first_frame: np.ndarray
) -> None:
    """``detect.resize: stretch`` on a letterboxed model: the stretched input, and boxes
    mapped back through the stretch to the same people."""
    spec = detector.manifest.input
    out = np.empty((3, 416, 416), np.float32)
    detector.adapter.preprocess(first_frame, out, "stretch")
    x = cv2.resize(first_frame, (416, 416)).astype(np.float32)
    expected = (x - np.array(spec.mean, np.float32)) / np.array(spec.std, np.float32)
    np.testing.assert_allclose(out, expected.transpose(2, 0, 1), atol=1e-5)
    person = detector.labels.index("person")
    found = {}
    for resize in (None, "stretch"):
        request = DetectRequest(first_frame, 0.35, 0.5, resize=resize)
        dets = detector.detect([request])[0].detections
        found[resize] = people = dets[dets.class_id == person]
        assert iou(FIRST_FRAME_PEOPLE, people.xyxy).max(axis=1).min() >= 0.5, resize
    assert not np.array_equal(found[None].score, found["stretch"].score), "two different inputs"


@pytest.mark.parametrize(
    "data",
    [MODEL.read_bytes()[:100_000], b"", b"name: not a model\n"],
    ids=["truncated", "empty", "yaml"],
)
def test_a_file_that_is_no_model_is_an_engine_error(tmp_path: Path, data: bytes) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(data)
    with pytest.raises(EngineError, match="ONNX Runtime cannot load the model"):
        OrtEngine(bad, backend="cpu")


def test_decoding_only_some_classes_gives_the_full_decode_filtered(detector: Detector) -> None:
    """Real street frames with people, cars, bicycles and more: decoding a camera's classes
    alone finds exactly what decoding all 80 and filtering finds."""
    cap = cv2.VideoCapture(str(TRAFFIC))
    frames = []
    for _ in range(40):
        ok, image = cap.read()
        assert ok
        frames.append(image)
    cap.release()
    labels = detector.labels
    for names in (["person"], ["car", "truck", "bus"], ["bicycle", "person"]):
        wanted = np.array(sorted(labels.index(n) for n in names), np.int32)
        full = detector.detect([DetectRequest(f, 0.2, 0.5) for f in frames[::8]])
        part = detector.detect([DetectRequest(f, 0.2, 0.5, wanted) for f in frames[::8]])
        others = 0
        for a, b in zip(full, part, strict=True):
            kept = a.detections.of_classes(wanted)
            others += len(a.detections) - len(kept)
            np.testing.assert_array_equal(b.detections.xyxy, kept.xyxy)
            np.testing.assert_array_equal(b.detections.score, kept.score)
            np.testing.assert_array_equal(b.detections.class_id, kept.class_id)
        assert others > 0, f"{names}: nothing else was found, the subset was not put to test"


def test_tiles_and_a_region_find_the_people_the_whole_frame_finds(
    detector: Detector, first_frame: np.ndarray
) -> None:
    h, w = first_frame.shape[:2]
    around = Region((w, h), (box(240, 150, 690, 330),))
    person = detector.labels.index("person")
    for detect in (
        DetectConfig(model="coco", tiles=(2, 2)),
        DetectConfig(model="coco", region="roi"),
        DetectConfig(model="coco", region="roi", tiles=(2, 1)),
    ):
        crops = detect_crops(w, h, around, detect)
        assert crops is not None
        request = DetectRequest(first_frame, 0.35, 0.5, crops=crops)
        dets = detector.detect([request])[0].detections
        people = dets[dets.class_id == person]
        overlap = iou(FIRST_FRAME_PEOPLE, people.xyxy)
        assert overlap.max(axis=1).min() >= 0.5, (detect.tiles, detect.region, overlap)
        # merged across tiles: no person found twice
        assert (iou(people.xyxy, people.xyxy) > 0.5).sum(axis=1).max() == 1


def test_crops_cover_the_region_with_overlapping_tiles() -> None:
    region = Region((800, 600), (box(100, 200, 300, 260), box(500, 100, 700, 150)))
    assert detect_crops(800, 600, region, DetectConfig(model="m")) is None
    at_roi = DetectConfig(model="m", region="roi", roi_margin=0.0)
    # the box around the shapes, widened to the input's shape where the picture allows
    assert detect_crops(800, 600, region, at_roi, aspect=600 / 160) == ((100, 100, 700, 260),)
    assert detect_crops(800, 600, region, at_roi) == ((100, 0, 700, 600),)  # square input
    assert detect_crops(800, 600, region, at_roi, aspect=6.0) == ((0, 100, 800, 260),)
    tiles = detect_crops(800, 600, None, DetectConfig(model="m", tiles=(2, 1), tile_overlap=0.1))
    assert tiles == ((0, 0, 440, 600), (360, 0, 800, 600))
    # a region placed for another picture size is not used
    other = detect_crops(1280, 720, region, DetectConfig(model="m", region="roi"))
    assert other is None
