"""A detector: a model's adapter bound to an engine, loaded from the model's manifest."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edged.config.model import ModelConfig
from edged.core.boxes import merge_across_parts
from edged.core.detections import Detections
from edged.engines.base import Engine
from edged.engines.onnxruntime import OrtEngine, auto_backend
from edged.models.adapter import DetectionAdapter
from edged.models.manifest import Manifest, ModelError
from edged.models.nanodet import NanoDetAdapter
from edged.models.precision import check_precision
from edged.models.preprocess import Resize, place
from edged.models.rtdetr import RtDetrAdapter
from edged.models.variants import ModelFile, choose_file
from edged.models.yolo import YoloV5Adapter, YoloV8Adapter
from edged.models.yolo_seg import YoloV8SegAdapter

log = logging.getLogger(__name__)

ADAPTERS: dict[str, Callable[[Manifest], DetectionAdapter]] = {
    "nanodet": NanoDetAdapter,
    "yolov5": YoloV5Adapter,
    "yolov8": YoloV8Adapter,
    "yolov8-seg": YoloV8SegAdapter,
    "rtdetr": RtDetrAdapter,
}


@dataclass(frozen=True, slots=True)
class DetectRequest:
    """One image and the thresholds its detections must pass: the least score, and the IoU
    above which non-maximum suppression keeps only the better of two boxes; and the classes
    whose detections are wanted (the others are not decoded)."""

    image: np.ndarray
    min_score: float
    nms_iou: float
    classes: np.ndarray | None = None  # sorted class ids to decode; None: every class
    floors: np.ndarray | None = None  # per class id, a least score over min_score
    # parts of the image (x0, y0, x1, y1 pixels) detected each at the model's input size,
    # instead of the whole image (``edged.camera.crops``)
    crops: tuple[tuple[int, int, int, int], ...] | None = None
    resize: Resize | None = None  # how the image is fitted to the input; None: the manifest's


@dataclass(frozen=True, slots=True)
class StageTimes:
    """Seconds one image spent in each stage; ``inference`` is its engine run's, shared by
    the images batched with it."""

    preprocess: float
    inference: float
    postprocess: float


@dataclass(frozen=True, slots=True)
class Detected:
    """What ``detect`` found in one image, and how long each stage took for it."""

    detections: Detections
    times: StageTimes


class Detector:
    """Frames in, ``Detections`` in source pixels out.

    With a prepared graph (``graph_input``), frames go to the engine as uint8 pictures and
    the engine resizes and normalises them; frames of one size share a run.
    """

    def __init__(
        self,
        manifest: Manifest,
        engine: Engine,
        max_batch: int = 1,
        graph_input: str | None = None,
    ) -> None:
        self.manifest = manifest
        if manifest.family not in ADAPTERS:
            raise ModelError(
                f"{manifest.file}: family {manifest.family} is not a detector "
                f"(detectors: {', '.join(sorted(ADAPTERS))})"
            )
        self.adapter: DetectionAdapter = ADAPTERS[manifest.family](manifest)
        self.engine = engine
        self.graph_input = graph_input
        wanted = graph_input or self.adapter.input_name
        if wanted not in engine.input_names:
            raise ModelError(
                f"{manifest.file}: input {wanted!r} is not among the model's inputs "
                f"{engine.input_names}"
            )
        # a model exported with a fixed batch runs that; a dynamic one takes up to max_batch
        self.max_batch = engine.max_batch or max_batch
        self._batch = np.empty((self.max_batch, *self.adapter.input_shape), np.float32)

    @property
    def labels(self) -> list[str]:
        return self.manifest.labels

    def detect(self, requests: Sequence[DetectRequest]) -> list[Detected]:
        """Detections for each image, with its own thresholds, in the order asked. An image
        with ``crops`` is detected in each crop at the model's full input size (the crops of
        all images in as few runs as the batch allows), and the crops' boxes are merged by
        class-aware NMS."""
        parts: list[tuple[int, np.ndarray, tuple[int, int]]] = []  # request, picture, offset
        if self.graph_input is not None:
            for r in requests:
                if r.resize not in (None, self.manifest.input.resize):
                    raise ModelError(
                        f"{self.manifest.file}: resize {r.resize} asked for, but the model's "
                        f"prepared graph resizes by {self.manifest.input.resize} "
                        "(preprocess: cpu to choose per camera)"
                    )
        for k, r in enumerate(requests):
            if r.crops is None:
                parts.append((k, r.image, (0, 0)))
            else:
                parts += [(k, r.image[y0:y1, x0:x1], (x0, y0)) for x0, y0, x1, y1 in r.crops]
        found: list[list[Detections]] = [[] for _ in requests]
        times: list[list[StageTimes]] = [[] for _ in requests]
        clock = time.perf_counter
        for chunk in self._chunks([p[1] for p in parts]):
            preprocess: list[float] = []
            if self.graph_input is None:
                geometry = []
                for i, n in enumerate(chunk):
                    t0 = clock()
                    how = requests[parts[n][0]].resize
                    geometry.append(self.adapter.preprocess(parts[n][1], self._batch[i], how))
                    preprocess.append(clock() - t0)
                feeds = {self.adapter.input_name: self._batch[: len(chunk)]}
            else:
                t0 = clock()
                h, w = parts[chunk[0]][1].shape[:2]
                geometry = [place(self.manifest.input, w, h)] * len(chunk)
                feeds = {self.graph_input: np.stack([parts[n][1] for n in chunk])}
                # the engine resizes the whole chunk at once: each image gets its share
                preprocess = [(clock() - t0) / len(chunk)] * len(chunk)
            t0 = clock()
            outputs = self.engine.run(feeds)
            inference = clock() - t0
            for i, n in enumerate(chunk):
                k, _, offset = parts[n]
                r = requests[k]
                t0 = clock()
                dets = self.adapter.postprocess(
                    outputs, i, geometry[i], r.min_score, r.nms_iou, r.classes
                )
                if r.floors is not None and len(dets):
                    dets = dets[dets.score >= r.floors[dets.class_id]]
                if r.crops is not None:
                    dets = in_picture(dets, offset, r.image.shape[:2])
                found[k].append(dets)
                times[k].append(StageTimes(preprocess[i], inference, clock() - t0))
        return [
            Detected(merged(found[k], requests[k]), summed(times[k])) for k in range(len(requests))
        ]

    def _chunks(self, images: list[np.ndarray]) -> list[list[int]]:
        """Indices per engine run: up to ``max_batch``; of one picture size on a graph."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for k, image in enumerate(images):
            key = image.shape if self.graph_input is not None else ()
            groups.setdefault(key, []).append(k)
        return [
            idx[i : i + self.max_batch]
            for idx in groups.values()
            for i in range(0, len(idx), self.max_batch)
        ]


# of two boxes from neighbouring crops, the smaller lying this much inside the other is a part
# of the same object
CUT_IOS = 0.6
# a box this close to a crop's inner edge (share of the crop's size) may be cut by it
SEAM_REACH = 0.01


def in_picture(dets: Detections, offset: tuple[int, int], shape: tuple[int, ...]) -> Detections:
    """A crop's detections in the whole picture's pixels (masks placed in a picture-sized
    canvas)."""
    x0, y0 = offset
    xyxy = dets.xyxy + np.array([x0, y0, x0, y0], np.float32)
    mask = None
    if dets.mask is not None:
        h, w = dets.mask.shape[1:]
        mask = np.zeros((len(dets), shape[0], shape[1]), bool)
        mask[:, y0 : y0 + h, x0 : x0 + w] = dets.mask
    return Detections(xyxy=xyxy, score=dets.score, class_id=dets.class_id, mask=mask)


def merged(parts: list[Detections], request: DetectRequest) -> Detections:
    """One picture's detections from its crops, best first: where crops overlap, one
    object's boxes are one (``merge_across_parts``: a cut box within ``CUT_IOS`` of another
    is part of it; a box touching an edge between crops counts as cut)."""
    if len(parts) == 1 or request.crops is None:
        return parts[0]
    every = Detections.concat(parts)
    if len(every) < 2:
        return every
    crop = np.concatenate([np.full(len(p), i) for i, p in enumerate(parts)])
    h, w = request.image.shape[:2]
    at_seam = at_inner_edge(every.xyxy, np.asarray(request.crops, np.float32)[crop], w, h)
    keep, xyxy = merge_across_parts(
        every.xyxy, every.score, every.class_id, crop, at_seam, request.nms_iou, CUT_IOS
    )
    out = every[keep]
    return Detections(xyxy=xyxy, score=out.score, class_id=out.class_id, mask=out.mask)


def at_inner_edge(xyxy: np.ndarray, crops: np.ndarray, width: int, height: int) -> np.ndarray:
    """Whether each box touches an edge of its crop that lies inside the picture (within
    ``SEAM_REACH`` of the crop's size): there the crop may have cut the object."""
    reach = SEAM_REACH * np.concatenate([crops[:, 2:] - crops[:, :2]] * 2, axis=1)
    near = np.abs(xyxy - crops) <= reach + 1
    inner = np.stack(
        [crops[:, 0] > 0, crops[:, 1] > 0, crops[:, 2] < width, crops[:, 3] < height], axis=1
    )
    return (near & inner).any(axis=1)


def summed(times: list[StageTimes]) -> StageTimes:
    """An image's stage times over its crops (each crop's run counted once per crop: the
    runs it shared are shared by the images batched with it)."""
    if len(times) == 1:
        return times[0]
    return StageTimes(
        sum(t.preprocess for t in times),
        sum(t.inference for t in times),
        sum(t.postprocess for t in times),
    )


def resolved_backend(config: ModelConfig) -> str:
    return auto_backend() if config.backend == "auto" else config.backend


def uses_graph(config: ModelConfig) -> bool:
    if config.preprocess == "auto":
        return resolved_backend(config) != "cpu"
    return config.preprocess == "graph"


def prepared_model(config: ModelConfig, manifest: Manifest, source: Path | None = None) -> Path:
    """The model (``source``, default the configured file) with its preprocessing prepended,
    made once per model file in the cache."""
    from edged.models.graph_preprocess import preparation_of, prepare_graph

    path = config.cache_dir / "prepared" / f"{Path(manifest.file).stem}-{manifest.sha256[:16]}.onnx"
    if not (path.is_file() and preparation_of(path) is not None):
        path.parent.mkdir(parents=True, exist_ok=True)
        prepare_graph(source or Path(config.path), manifest.input, path)
        log.info("%s: preprocessing prepended to the graph → %s", manifest.file, path)
    return path


def open_engine(config: ModelConfig, manifest: Manifest, path: Path | None = None) -> Engine:
    """The engine for ``path`` (default: the configured model file)."""
    backend = resolved_backend(config)
    path = path or Path(config.path)
    if backend == "tensorrt-native":
        from edged.engines.tensorrt import TrtEngine
        from edged.models.plans import plan_for

        return TrtEngine(plan_for(config, manifest, path))
    return OrtEngine(
        path,
        backend=config.backend,
        threads=config.threads,
        precision=check_precision(config, manifest, backend),
        cache_dir=config.cache_dir,
    )


def stream_count(config: ModelConfig, backend: str, precision: str) -> int:
    """How many engine runs ``config`` keeps in flight: ``streams``, or for auto one per
    thread where that measured faster (INT8 on the CPU: 117 against 76 frames/s on 2 cores,
    ``benchmarks.cores``; FP32 and FP16 gain nothing from it), else one."""
    if config.streams != "auto":
        return min(config.streams, config.threads)
    return config.threads if backend == "cpu" and precision == "int8" else 1


def load_detectors(config: ModelConfig) -> list[Detector]:
    """One detector per stream (``stream_count``), the threads shared out between them."""
    backend = resolved_backend(config)
    chosen = choose_file(config, backend)
    if chosen.why:
        log.info("%s: %s", Path(config.path).name, chosen.why)
    n = stream_count(config, backend, chosen.manifest.precision)
    if n == 1:
        return [_detector(config, chosen)]
    lane = config.model_copy(update={"threads": max(1, config.threads // n)})
    log.info(
        "%s: %d engine runs in flight, %d thread(s) each",
        Path(config.path).name,
        n,
        lane.threads,
    )
    return [_detector(lane, chosen) for _ in range(n)]


def load_detector(config: ModelConfig) -> Detector:
    """The detector ``config`` names, on the file ``choose_file`` picks (logged with why)."""
    chosen = choose_file(config, resolved_backend(config))
    if chosen.why:
        log.info("%s: %s", Path(config.path).name, chosen.why)
    return _detector(config, chosen)


def _detector(config: ModelConfig, chosen: ModelFile) -> Detector:
    from edged.models.graph_preprocess import FRAMES

    manifest = chosen.manifest
    if uses_graph(config):
        engine = open_engine(config, manifest, prepared_model(config, manifest, chosen.path))
        return Detector(manifest, engine, config.max_batch, graph_input=FRAMES)
    return Detector(manifest, open_engine(config, manifest, chosen.path), config.max_batch)
