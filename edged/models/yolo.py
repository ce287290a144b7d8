"""Ultralytics YOLO detectors: YOLOv5 (anchor-based, objectness) and YOLOv8 / YOLO11
(anchor-free, one shared head), as their ONNX exports (``model.export(format="onnx")``) lay
out the outputs.

Preprocessing is the manifest's ``input`` section; Ultralytics' own is a letterbox to 640×640
(grey 114, centred, its rounding, which ``preprocess.place`` reproduces), RGB, ``x / 255``
(``mean: [0, 0, 0]``, ``std: [255, 255, 255]``), NCHW. Boxes come out in model-input pixels
and are mapped back to source pixels through the letterbox geometry.

Like Ultralytics' own ``non_max_suppression`` (``multi_label=False``, what its predictors
use), each anchor keeps only its best class; then the best ``MAX_CANDIDATES`` candidates go
to class-aware NMS, which keeps at most ``MAX_DETECTIONS``.
"""

from __future__ import annotations

import numpy as np

from edged.config.base import StrictModel
from edged.core.boxes import nms_per_class
from edged.core.detections import Detections
from edged.core.placement import Geometry
from edged.models.adapter import AdapterBase
from edged.models.manifest import Manifest, ModelError, decode_spec

MAX_CANDIDATES = 1000
MAX_DETECTIONS = 300


def check_shape(manifest: Manifest, name: str, array: np.ndarray, expected: str, ok: bool) -> None:
    """Refuse an output whose layout is not the family's, naming the model and the output."""
    if not ok:
        raise ModelError(
            f"{manifest.file}: output {name!r} has shape {tuple(array.shape)}, expected "
            f"{expected} for family {manifest.family!r} with {len(manifest.labels)} labels"
        )


def output(manifest: Manifest, outputs: dict[str, np.ndarray], name: str) -> np.ndarray:
    try:
        return outputs[name]
    except KeyError:
        raise ModelError(
            f"{manifest.file}: manifest decode names output {name!r}, the model has "
            f"{sorted(outputs)}"
        ) from None


def top_candidates(conf: np.ndarray, limit: int = MAX_CANDIDATES) -> np.ndarray:
    """Indices of the ``limit`` highest of ``conf`` (all of them when there are fewer)."""
    if len(conf) <= limit:
        return np.arange(len(conf))
    return np.argpartition(-conf, limit)[:limit]


def xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """N×4 centre, size → N×4 corners, float32."""
    xywh = xywh.astype(np.float32, copy=False)
    half = xywh[:, 2:] * 0.5
    return np.concatenate([xywh[:, :2] - half, xywh[:, :2] + half], axis=1)


def best_class_channels_first(
    scores: np.ndarray, min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From ``scores`` (nc×N, the YOLOv8 layout): anchors whose best class reaches
    ``min_score``, that class and its score, at most ``MAX_CANDIDATES`` of them."""
    best = scores.max(axis=0)
    anchors = np.flatnonzero(best >= min_score)
    conf = best[anchors]
    top = top_candidates(conf)
    anchors, conf = anchors[top], conf[top]
    cls = scores[:, anchors].argmax(axis=0)
    return anchors, cls, conf.astype(np.float32)


def of_classes(
    classes: np.ndarray | None, anchors: np.ndarray, cls: np.ndarray, conf: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The candidates whose best class is one of ``classes`` (None: all of them)."""
    if classes is None:
        return anchors, cls, conf
    keep = np.isin(cls, classes)
    return anchors[keep], cls[keep], conf[keep]


def wanted_rows(rows: np.ndarray, min_score: float, classes: np.ndarray | None) -> np.ndarray:
    """Which rows of an in-graph NMS output (x1, y1, x2, y2, score, class, …) to keep."""
    hit = rows[:, 4] >= min_score
    if classes is not None:
        hit &= np.isin(np.rint(rows[:, 5]).astype(np.int32), classes)
    return hit


def _detections(
    xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray, keep: np.ndarray
) -> Detections:
    return Detections(
        xyxy=xyxy[keep].astype(np.float32, copy=False),
        score=conf[keep].astype(np.float32, copy=False),
        class_id=cls[keep].astype(np.int32, copy=False),
    )


class YoloV5Decode(StrictModel):
    output: str = "output0"


class YoloV5Adapter(AdapterBase):
    """YOLOv5 (``ultralytics/yolov5`` ``export.py``): one output ``[B, N, 5 + nc]``, rows
    ``cx, cy, w, h`` (model-input pixels), objectness, ``nc`` class scores; the export has
    already applied the sigmoid and the grid/anchor decoding (N = 25200 at 640). A
    detection's score is objectness × class score, as in YOLOv5's NMS."""

    def __init__(self, manifest: Manifest) -> None:
        spec = decode_spec(manifest, YoloV5Decode)
        super().__init__(manifest)
        self._output = spec.output
        self._nc = len(manifest.labels)

    def postprocess(
        self,
        outputs: dict[str, np.ndarray],
        item: int,
        geometry: Geometry,
        min_score: float,
        nms_iou: float,
        classes: np.ndarray | None = None,
    ) -> Detections:
        """Detections of batch item ``item``, in the pixels of the source picture."""
        out = output(self.manifest, outputs, self._output)
        check_shape(
            self.manifest,
            self._output,
            out,
            f"[B, N, {5 + self._nc}]",
            out.ndim == 3 and out.shape[2] == 5 + self._nc,
        )
        pred = out[item]
        # obj × cls ≤ obj: rows whose objectness is below the threshold cannot qualify
        rows = np.flatnonzero(pred[:, 4] >= min_score)
        if len(rows) == 0:
            return Detections.empty()
        cand = pred[rows].astype(np.float32, copy=False)
        cls = cand[:, 5:].argmax(axis=1)
        conf = cand[np.arange(len(cand)), 5 + cls] * cand[:, 4]
        hit = conf >= min_score
        if classes is not None:
            # each anchor is its best class, as without a subset; anchors of others are dropped
            hit &= np.isin(cls, classes)
        ok = np.flatnonzero(hit)
        ok = ok[top_candidates(conf[ok])]
        if len(ok) == 0:
            return Detections.empty()
        cand, cls, conf = cand[ok], cls[ok], conf[ok]
        xyxy = geometry.to_source(xywh_to_xyxy(cand[:, :4]))
        keep = nms_per_class(xyxy, conf, cls, nms_iou, MAX_DETECTIONS)
        return _detections(xyxy, conf, cls, keep)


class YoloV8Decode(StrictModel):
    output: str = "output0"
    nms_in_graph: bool = False


class YoloV8Adapter(AdapterBase):
    """YOLOv8 / YOLO11 (``ultralytics`` ``export(format="onnx")``), two layouts:

    - plain (``nms_in_graph: false``): one output ``[B, 4 + nc, N]``, channels first —
      ``cx, cy, w, h`` (model-input pixels) then ``nc`` sigmoided class scores, no
      objectness (N = 8400 at 640). Decoded here, then class-aware NMS.
    - ``export(..., nms=True)`` (``nms_in_graph: true``): one output ``[B, max_det, 6]``,
      rows ``x1, y1, x2, y2`` (model-input pixels), score, class id (as a float), best
      first, padded with all-zero rows. Only ``min_score`` applies here (the graph's own
      threshold, set at export, is a floor below it); ``nms_iou`` is the graph's.
    """

    def __init__(self, manifest: Manifest) -> None:
        spec = decode_spec(manifest, YoloV8Decode)
        super().__init__(manifest)
        self._output = spec.output
        self._nms_in_graph = spec.nms_in_graph
        self._nc = len(manifest.labels)

    def postprocess(
        self,
        outputs: dict[str, np.ndarray],
        item: int,
        geometry: Geometry,
        min_score: float,
        nms_iou: float,
        classes: np.ndarray | None = None,
    ) -> Detections:
        """Detections of batch item ``item``, in the pixels of the source picture."""
        out = output(self.manifest, outputs, self._output)
        if self._nms_in_graph:
            check_shape(
                self.manifest,
                self._output,
                out,
                "[B, max_det, 6] (nms_in_graph: true)",
                out.ndim == 3 and out.shape[2] == 6,
            )
            rows = out[item]
            rows = rows[wanted_rows(rows, min_score, classes)][:MAX_DETECTIONS].astype(np.float32)
            return Detections(
                xyxy=geometry.to_source(np.ascontiguousarray(rows[:, :4])),
                score=rows[:, 4].copy(),
                class_id=np.rint(rows[:, 5]).astype(np.int32),
            )
        check_shape(
            self.manifest,
            self._output,
            out,
            f"[B, {4 + self._nc}, N] (nms_in_graph: false)",
            out.ndim == 3 and out.shape[1] == 4 + self._nc,
        )
        pred = out[item]
        anchors, cls, conf = best_class_channels_first(pred[4:], min_score)
        anchors, cls, conf = of_classes(classes, anchors, cls, conf)
        if len(anchors) == 0:
            return Detections.empty()
        xyxy = geometry.to_source(xywh_to_xyxy(pred[:4, anchors].T))
        keep = nms_per_class(xyxy, conf, cls, nms_iou, MAX_DETECTIONS)
        return _detections(xyxy, conf, cls, keep)
