"""Every model family's adapter, through the real path (manifest with sha256 → ONNX Runtime →
adapter), on tiny ONNX models whose outputs are known tensors in the family's exact layout.

The source picture is 1280×720, so Ultralytics' letterbox to 640×640 scales by 0.5 and pads
140 px above and below: model-input (x, y) is source (2·x, 2·(y − 140)).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edged.config.model import ModelConfig
from edged.core.detections import Detections
from edged.models.detector import Detector, DetectRequest, load_detector
from edged.models.manifest import ModelError
from tests.onnx_fixtures import ULTRALYTICS_INPUT, write_model

LABELS = [f"class{i}" for i in range(80)]
NC = len(LABELS)
W, H = 1280, 720
Planted = tuple[tuple[float, ...], int, float]  # model-input (x1, y1, x2, y2), class, score
Expected = list[tuple[list[float], int, float]]  # source (x1, y1, x2, y2), class, score


def source(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    """Model-input (letterboxed 640²) corners → 1280×720 source corners, clipped."""
    box = [2 * x1, 2 * (y1 - 140), 2 * x2, 2 * (y2 - 140)]
    return [min(max(v, 0.0), lim) for v, lim in zip(box, (W, H, W, H), strict=True)]


def cxcywh(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


def picture(width: int = W, height: int = H) -> np.ndarray:
    """A synthetic BGR frame (the constant models ignore it, the preprocessing does not)."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([xs % 256, ys % 256, (xs + ys) % 256], axis=2).astype(np.uint8)


def load(path: Path) -> Detector:
    return load_detector(ModelConfig(path=path, backend="cpu", threads=1))


def detect(
    detector: Detector,
    min_score: float,
    nms_iou: float = 0.5,
    image: np.ndarray | None = None,
    classes: list[int] | None = None,
) -> Detections:
    wanted = None if classes is None else np.array(classes, np.int32)
    request = DetectRequest(picture() if image is None else image, min_score, nms_iou, wanted)
    return detector.detect([request])[0].detections


def check(dets: Detections, expected: Expected) -> None:
    """``expected``: (source xyxy, class, score), best first."""
    assert dets.xyxy.dtype == np.float32 and dets.class_id.dtype == np.int32
    assert dets.score.dtype == np.float32
    assert len(dets) == len(expected), (dets.xyxy, dets.class_id, dets.score)
    np.testing.assert_allclose(dets.xyxy, np.array([e[0] for e in expected]), atol=1e-3)
    assert dets.class_id.tolist() == [e[1] for e in expected]
    np.testing.assert_allclose(dets.score, [e[2] for e in expected], atol=1e-6)


# Planted detections in model-input pixels (x1, y1, x2, y2), class, score; all other anchors
# are random boxes scoring at most 0.2.
BEST = ((270.0, 295.0, 370.0, 345.0), 0, 0.9)
DUPLICATE = ((272.0, 296.0, 372.0, 346.0), 0, 0.8)  # IoU 0.92 with BEST, same class
OTHER_CLASS = ((280.0, 300.0, 380.0, 350.0), 2, 0.7)  # IoU 0.68 with BEST, another class
IN_PADDING = ((570.0, 130.0, 630.0, 170.0), 1, 0.6)  # reaches into the top padding
LOW = ((80.0, 160.0, 120.0, 240.0), 5, 0.4)
PLANTED = [BEST, DUPLICATE, OTHER_CLASS, IN_PADDING, LOW]
ANCHORS = [100, 2000, 5000, 8000, 8399]


def expected(*planted: Planted) -> Expected:
    return [(source(*box), cls, score) for box, cls, score in planted]


def noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random boxes (cx, cy, w, h) inside the 640² input."""
    return np.concatenate(
        [rng.uniform(40, 600, (n, 2)), rng.uniform(5, 80, (n, 2))], axis=1
    ).astype(np.float32)


# --------------------------------------------------------------------------- YOLOv8 / YOLO11


def yolov8_output(extra_channels: int = 0) -> np.ndarray:
    """[1, 4 + nc (+ extra), 8400], channels first."""
    rng = np.random.default_rng(8)
    out = np.zeros((1, 4 + NC + extra_channels, 8400), np.float32)
    out[0, :4] = noise(rng, 8400).T
    out[0, 4 : 4 + NC] = rng.uniform(0, 0.2, (NC, 8400))
    for anchor, (box, cls, score) in zip(ANCHORS, PLANTED, strict=True):
        out[0, :4, anchor] = cxcywh(*box)
        out[0, 4 + cls, anchor] = score
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("families")


@pytest.fixture(scope="module")
def yolov8(models: Path) -> Detector:
    path = write_model(
        models,
        "yolov8n",
        "yolov8",
        {"output0": yolov8_output()},
        LABELS,
        {"output": "output0", "nms_in_graph": False},
    )
    return load(path)


def test_yolov8_boxes_in_source_pixels_with_class_aware_nms(yolov8: Detector) -> None:
    check(detect(yolov8, 0.5), expected(BEST, OTHER_CLASS, IN_PADDING))


def test_yolov8_low_scores_dropped_and_nms_iou_applies(yolov8: Detector) -> None:
    check(detect(yolov8, 0.3), expected(BEST, OTHER_CLASS, IN_PADDING, LOW))
    # with an IoU threshold above the duplicate's overlap, NMS keeps it
    check(detect(yolov8, 0.5, nms_iou=0.95), expected(BEST, DUPLICATE, OTHER_CLASS, IN_PADDING))
    assert len(detect(yolov8, 0.95)) == 0


def test_yolov8_each_picture_gets_its_own_letterbox(yolov8: Detector) -> None:
    """A portrait picture is padded left and right instead: x_src = 2·(x − 140), y = 2·y."""
    landscape, portrait = (
        d.detections
        for d in yolov8.detect(
            [DetectRequest(picture(), 0.85, 0.5), DetectRequest(picture(720, 1280), 0.85, 0.5)]
        )
    )
    np.testing.assert_allclose(landscape.xyxy, [source(*BEST[0])], atol=1e-3)
    x1, y1, x2, y2 = BEST[0]
    np.testing.assert_allclose(
        portrait.xyxy, [[2 * (x1 - 140), 2 * y1, 2 * (x2 - 140), 2 * y2]], atol=1e-3
    )


@pytest.fixture(scope="module")
def yolov8_nms(models: Path) -> Detector:
    """``export(nms=True)``: [1, 300, 6] rows x1, y1, x2, y2, score, class, best first,
    zero-padded; the graph has done NMS (here it 'kept' the duplicate, which must stay)."""
    out = np.zeros((1, 300, 6), np.float32)
    planted = sorted(PLANTED, key=lambda p: -p[2])
    for row, (box, cls, score) in enumerate(planted):
        out[0, row] = [*box, score, cls]
    path = write_model(
        models,
        "yolov8n-nms",
        "yolov8",
        {"output0": out},
        LABELS,
        {"output": "output0", "nms_in_graph": True},
    )
    return load(path)


def test_yolov8_nms_in_graph_only_thresholds(yolov8_nms: Detector) -> None:
    check(detect(yolov8_nms, 0.5), expected(BEST, DUPLICATE, OTHER_CLASS, IN_PADDING))
    check(detect(yolov8_nms, 0.3), expected(BEST, DUPLICATE, OTHER_CLASS, IN_PADDING, LOW))
    assert len(detect(yolov8_nms, 0.95)) == 0


def test_wrong_decode_key_names_manifest_and_key(models: Path) -> None:
    with pytest.raises(ModelError) as err:
        load(
            write_model(
                models,
                "typo",
                "yolov8",
                {"output0": np.zeros((1, 84, 10))},
                LABELS,
                {"output": "output0", "nms_in_grpah": True},
            )
        )
    assert "typo.onnx manifest" in str(err.value)
    assert "decode.nms_in_grpah" in str(err.value)


def test_output_layout_that_does_not_fit_the_labels_is_refused(models: Path) -> None:
    """A detection export with 3 classes behind an 80-label manifest."""
    detector = load(
        write_model(models, "three", "yolov8", {"output0": np.zeros((1, 7, 8400))}, LABELS)
    )
    with pytest.raises(ModelError, match=r"three\.onnx: output 'output0' has shape \(1, 7, 8400\)"):
        detect(detector, 0.5)


# --------------------------------------------------------------------------- YOLOv5


@pytest.fixture(scope="module")
def yolov5(models: Path) -> Detector:
    """[1, 25200, 85]: cx, cy, w, h, objectness, 80 class scores; score = obj × cls."""
    rng = np.random.default_rng(5)
    out = np.zeros((1, 25200, 5 + NC), np.float32)
    out[0, :, :4] = noise(rng, 25200)
    out[0, :, 4] = rng.uniform(0, 0.2, 25200)
    out[0, :, 5:] = rng.uniform(0, 1, (25200, NC))
    planted = [  # box, class, objectness, class score
        (BEST[0], 0, 0.95, 0.95),
        (DUPLICATE[0], 0, 0.9, 0.9),
        (OTHER_CLASS[0], 2, 0.9, 0.8),
        (IN_PADDING[0], 1, 0.75, 0.8),
        (LOW[0], 5, 0.9, 0.45),  # objectness passes, the product does not
        ((300.0, 400.0, 340.0, 440.0), 3, 0.45, 1.0),  # objectness alone fails
    ]
    for anchor, (box, cls, obj, score) in zip(
        [7, 900, 12000, 20000, 25199, 3], planted, strict=True
    ):
        out[0, anchor, :4] = cxcywh(*box)
        out[0, anchor, 4] = obj
        out[0, anchor, 5:] = rng.uniform(0, 0.3, NC)
        out[0, anchor, 5 + cls] = score
    return load(
        write_model(models, "yolov5s", "yolov5", {"output0": out}, LABELS, {"output": "output0"})
    )


def test_yolov5_score_is_objectness_times_class(yolov5: Detector) -> None:
    check(
        detect(yolov5, 0.5),
        [
            (source(*BEST[0]), 0, 0.95 * 0.95),
            (source(*OTHER_CLASS[0]), 2, 0.9 * 0.8),
            (source(*IN_PADDING[0]), 1, 0.75 * 0.8),
        ],
    )
    lower = detect(yolov5, 0.4)
    assert lower.class_id.tolist() == [0, 2, 1, 3, 5]
    np.testing.assert_allclose(lower.score, [0.9025, 0.72, 0.6, 0.45, 0.405], atol=1e-6)


# --------------------------------------------------------------------------- RT-DETR


@pytest.fixture(scope="module")
def rtdetr(models: Path) -> Detector:
    """[1, 300, 84]: cx, cy, w, h normalised to the input, 80 class scores; stretch 640²."""
    rng = np.random.default_rng(3)
    out = np.zeros((1, 300, 4 + NC), np.float32)
    out[0, :, :4] = noise(rng, 300) / 640
    out[0, :, 4:] = rng.uniform(0, 0.2, (300, NC))
    out[0, 10, :4], out[0, 10, 4 + 3] = [0.5, 0.5, 0.2, 0.1], 0.9
    out[0, 11, :4], out[0, 11, 4 + 3] = [0.5, 0.5, 0.2, 0.1], 0.85  # a duplicate query
    out[0, 12, :4], out[0, 12, 4 + 1], out[0, 12, 4 + 7] = [0.25, 0.75, 0.1, 0.2], 0.6, 0.7
    out[0, 299, :4], out[0, 299, 4 + 9] = [0.9, 0.1, 0.1, 0.1], 0.3
    spec = {**ULTRALYTICS_INPUT, "resize": "stretch"}
    return load(
        write_model(
            models, "rtdetr-l", "rtdetr", {"output0": out}, LABELS, {"output": "output0"}, spec
        )
    )


def test_rtdetr_normalised_boxes_best_class_per_query_no_nms(rtdetr: Detector) -> None:
    # normalised to the stretched input = normalised to the source: (cx·1280, cy·720, …)
    check(
        detect(rtdetr, 0.5),
        [
            ([512.0, 324.0, 768.0, 396.0], 3, 0.9),
            ([512.0, 324.0, 768.0, 396.0], 3, 0.85),  # set prediction: no NMS
            ([256.0, 468.0, 384.0, 612.0], 7, 0.7),  # the query's best class only
        ],
    )
    low = detect(rtdetr, 0.25)
    assert low.class_id.tolist() == [3, 3, 7, 9]
    np.testing.assert_allclose(low.xyxy[3], [1088.0, 36.0, 1216.0, 108.0], atol=1e-3)


# --------------------------------------------------------------------------- YOLOv8-seg

NM = 32
# prototype 0 is +8 everywhere; prototype 1 is +8 on rows 50–89, columns 100–129 (model
# input 400–520 × 200–360 → source 800–1040 × 120–440), −8 elsewhere
SEG_A = ((140.0, 210.0, 260.0, 290.0), 0, 0.9)  # mask: prototype 0 → the whole box
SEG_A_DUP = ((142.0, 211.0, 262.0, 291.0), 0, 0.8)
SEG_C = ((150.0, 215.0, 270.0, 295.0), 2, 0.7)  # overlaps A, other class, prototype 0
SEG_B = ((380.0, 180.0, 540.0, 380.0), 4, 0.85)  # mask: prototype 1 → the inner rectangle
SEG_LOW = ((20.0, 400.0, 60.0, 450.0), 6, 0.3)
B_INNER = (800, 120, 1040, 440)
SEG = [(SEG_A, 0), (SEG_A_DUP, 0), (SEG_C, 0), (SEG_B, 1), (SEG_LOW, 0)]


def prototypes() -> np.ndarray:
    protos = np.zeros((1, NM, 160, 160), np.float32)
    protos[0, 0] = 8.0
    protos[0, 1] = -8.0
    protos[0, 1, 50:90, 100:130] = 8.0
    return protos


@pytest.fixture(scope="module")
def yolov8_seg(models: Path) -> Detector:
    """output0 [1, 4 + 80 + 32, 8400], output1 [1, 32, 160, 160]."""
    out = yolov8_output(NM)
    out[0, 4 + NC :] = 0.0
    out[0, 4 : 4 + NC, ANCHORS] = 0.0
    for anchor, ((box, cls, score), proto) in zip(ANCHORS, SEG, strict=True):
        out[0, :4, anchor] = cxcywh(*box)
        out[0, 4 + cls, anchor] = score
        out[0, 4 + NC + proto, anchor] = 1.0
    return load(
        write_model(
            models,
            "yolov8n-seg",
            "yolov8-seg",
            {"output0": out, "output1": prototypes()},
            LABELS,
            {"output": "output0", "masks": "output1"},
        )
    )


def box_mask(x1: float, y1: float, x2: float, y2: float) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[round(y1) : round(y2), round(x1) : round(x2)] = True
    return m


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def check_masks(dets: Detections, planted: list[Planted]) -> None:
    """Each mask is zero outside its box and covers what its prototype says."""
    assert dets.mask is not None and dets.mask.dtype == bool
    assert dets.mask.shape == (len(planted), H, W)
    for mask, (box, _, _) in zip(dets.mask, planted, strict=True):
        outside = ~box_mask(*source(*box))
        assert not (mask & outside).any()
        if box == SEG_B[0]:
            assert mask_iou(mask, box_mask(*B_INNER)) >= 0.95
        else:
            assert mask_iou(mask, box_mask(*source(*box))) >= 0.95


def test_yolov8_seg_boxes_nms_and_masks_in_source_pixels(yolov8_seg: Detector) -> None:
    dets = detect(yolov8_seg, 0.5)
    check(dets, expected(SEG_A, SEG_B, SEG_C))
    check_masks(dets, [SEG_A, SEG_B, SEG_C])
    # prototype 0 is positive everywhere: the mask is exactly the box's pixels
    assert (dets.mask[0] == box_mask(*source(*SEG_A[0]))).all()
    low = detect(yolov8_seg, 0.25)
    check(low, expected(SEG_A, SEG_B, SEG_C, SEG_LOW))
    check_masks(low, [SEG_A, SEG_B, SEG_C, SEG_LOW])


def test_yolov8_seg_nms_in_graph(models: Path) -> None:
    """``export(nms=True)`` of a seg model: [1, 300, 6 + 32] rows, then the prototypes."""
    out = np.zeros((1, 300, 6 + NM), np.float32)
    for row, ((box, cls, score), proto) in enumerate([(SEG_A, 0), (SEG_B, 1), (SEG_LOW, 0)]):
        out[0, row, :6] = [*box, score, cls]
        out[0, row, 6 + proto] = 1.0
    detector = load(
        write_model(
            models,
            "seg-nms",
            "yolov8-seg",
            {"output0": out, "output1": prototypes()},
            LABELS,
            {"output": "output0", "masks": "output1", "nms_in_graph": True},
        )
    )
    dets = detect(detector, 0.5)
    check(dets, expected(SEG_A, SEG_B))
    check_masks(dets, [SEG_A, SEG_B])
    assert len(detect(detector, 0.95)) == 0


# --------------------------------------------------------------------------- class subsets


@pytest.mark.parametrize("family", ["yolov8", "yolov8_nms", "yolov5", "rtdetr", "yolov8_seg"])
@pytest.mark.parametrize("classes", [[0], [2, 3], [1, 5, 7]])
def test_decoding_a_class_subset_gives_the_full_decode_filtered(
    family: str, classes: list[int], request: pytest.FixtureRequest
) -> None:
    detector: Detector = request.getfixturevalue(family)
    full = detect(detector, 0.25)
    assert set(full.class_id.tolist()) - set(classes), "the subset must leave something out"
    subset = detect(detector, 0.25, classes=classes)
    kept = full.of_classes(np.array(classes, np.int32))
    np.testing.assert_array_equal(subset.xyxy, kept.xyxy)
    np.testing.assert_array_equal(subset.score, kept.score)
    np.testing.assert_array_equal(subset.class_id, kept.class_id)
    if full.mask is not None and len(kept):
        assert subset.mask is not None
        np.testing.assert_array_equal(subset.mask, kept.mask)
