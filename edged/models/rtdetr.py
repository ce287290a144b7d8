"""RT-DETR as Ultralytics exports it (``RTDETR("rtdetr-l.pt").export(format="onnx")``).

Output ``[B, 300, 4 + nc]``: per query ``cx, cy, w, h`` normalised to 0–1 of the model
input, then ``nc`` class scores, already sigmoided (the export's ``RTDETRDecoder`` returns
``cat(boxes, scores.sigmoid())``). Detection is set-based, so there is no NMS: each query
keeps its best class when that reaches ``min_score`` (as Ultralytics' ``RTDETRPredictor``
does); ``nms_iou`` is ignored.

Assumed preprocessing (the manifest's ``input`` section decides): Ultralytics'
``RTDETRPredictor`` uses ``LetterBox(auto=False, scale_fill=True)``, i.e. a plain stretch
to 640×640 (``resize: stretch``), RGB, ``x / 255`` (``std: [255, 255, 255]``), NCHW. Boxes
are scaled to model-input pixels and mapped to the source through the geometry, so a
letterboxed manifest works too.
"""

from __future__ import annotations

import numpy as np

from edged.config.base import StrictModel
from edged.core.detections import Detections
from edged.core.placement import Geometry
from edged.models.adapter import AdapterBase
from edged.models.manifest import Manifest, decode_spec
from edged.models.yolo import MAX_DETECTIONS, check_shape, output, top_candidates, xywh_to_xyxy


class RtDetrDecode(StrictModel):
    output: str = "output0"


class RtDetrAdapter(AdapterBase):
    """Preprocess and postprocess for an Ultralytics RT-DETR export."""

    def __init__(self, manifest: Manifest) -> None:
        spec = decode_spec(manifest, RtDetrDecode)
        super().__init__(manifest)
        self._output = spec.output
        self._nc = len(manifest.labels)
        width, height = manifest.input.size
        self._size = np.array([width, height, width, height], np.float32)

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
            f"[B, queries, {4 + self._nc}]",
            out.ndim == 3 and out.shape[2] == 4 + self._nc,
        )
        pred = out[item]
        scores = pred[:, 4:]
        cls = scores.argmax(axis=1)
        conf = scores[np.arange(len(pred)), cls]
        hit = conf >= min_score
        if classes is not None:
            # each query is its best class, as without a subset; queries of others are dropped
            hit &= np.isin(cls, classes)
        rows = np.flatnonzero(hit)
        if len(rows) == 0:
            return Detections.empty()
        rows = rows[top_candidates(conf[rows], MAX_DETECTIONS)]
        rows = rows[np.argsort(-conf[rows], kind="stable")]
        xyxy = geometry.to_source(xywh_to_xyxy(pred[rows, :4]) * self._size)
        return Detections(
            xyxy=xyxy,
            score=conf[rows].astype(np.float32),
            class_id=cls[rows].astype(np.int32),
        )
