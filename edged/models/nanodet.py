"""NanoDet (GFL head): per-stride class scores and side distributions → boxes."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from edged.config.base import StrictModel
from edged.core.boxes import nms_per_class
from edged.core.detections import Detections
from edged.core.placement import Geometry
from edged.models.adapter import AdapterBase
from edged.models.manifest import Manifest, decode_spec

MAX_CANDIDATES = 1000
MAX_DETECTIONS = 300


class StrideOutputs(StrictModel):
    stride: int = Field(gt=0)
    scores: str
    boxes: str


class NanoDetDecode(StrictModel):
    outputs: list[StrideOutputs] = Field(min_length=1)
    reg_max: int = Field(gt=0)


class NanoDetAdapter(AdapterBase):
    """Preprocess and postprocess for NanoDet as described by its manifest."""

    def __init__(self, manifest: Manifest) -> None:
        spec = decode_spec(manifest, NanoDetDecode)
        super().__init__(manifest)
        width, height = manifest.input.size
        self._names = [(o.scores, o.boxes) for o in spec.outputs]
        self._bins = spec.reg_max + 1
        centres, strides = [], []
        for out in spec.outputs:
            gw, gh = width // out.stride, height // out.stride
            ys, xs = np.mgrid[0:gh, 0:gw]
            c = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) * out.stride
            centres.append(c.astype(np.float32))
            strides.append(np.full(len(c), out.stride, np.float32))
        self._centres = np.concatenate(centres)
        self._strides = np.concatenate(strides)
        self._project = np.arange(self._bins, dtype=np.float32)

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
        parts = [outputs[s][item] for s, _ in self._names]
        if classes is not None:
            # a score per class and anchor, NMS per class: other classes change nothing here
            parts = [p[:, classes] for p in parts]
        scores = np.concatenate(parts)
        rows, col = np.nonzero(scores >= min_score)
        if len(rows) == 0:
            return Detections.empty()
        conf = scores[rows, col]
        cls = col if classes is None else classes[col]
        if len(conf) > MAX_CANDIDATES:
            top = np.argpartition(-conf, MAX_CANDIDATES)[:MAX_CANDIDATES]
            rows, cls, conf = rows[top], cls[top], conf[top]
        anchors = np.unique(rows)
        dist = self._distances(outputs, item, anchors)
        pos = np.searchsorted(anchors, rows)
        centre = self._centres[rows]
        side = dist[pos] * self._strides[rows, None]
        xyxy = np.concatenate([centre - side[:, :2], centre + side[:, 2:]], axis=1)
        xyxy = geometry.to_source(xyxy)
        keep = nms_per_class(xyxy, conf, cls, nms_iou, MAX_DETECTIONS)
        return Detections(
            xyxy=xyxy[keep].astype(np.float32),
            score=conf[keep].astype(np.float32),
            class_id=cls[keep].astype(np.int32),
        )

    def _distances(
        self, outputs: dict[str, np.ndarray], item: int, anchors: np.ndarray
    ) -> np.ndarray:
        """Expected distance (in strides) to the left, top, right and bottom sides."""
        logits = np.concatenate([outputs[b][item] for _, b in self._names])[anchors]
        logits = logits.reshape(-1, 4, self._bins)
        e = np.exp(logits - logits.max(axis=2, keepdims=True))
        return (e @ self._project) / e.sum(axis=2)
