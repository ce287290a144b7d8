"""Shared parts of the tracking benchmarks (``eval_mot``, ``line_counts``, ``tracker_cost``):
the detector's person boxes per MOT15 frame, computed once and cached; edged's tracker and the
peer (roboflow ``trackers`` ByteTrack) run over them; MOTChallenge result rows; TrackEval.

Detections. The shipped NanoDet-g runs once per sequence on the CPU (2 threads) at score
≥ 0.05, NMS 0.5, decoding the person scores only (the daemon decodes all 80 classes and then
keeps people; at score ≥ 0.05 the adapter's 1000-candidate cap would then drop some
low-score people, which is what MEASURED.md avoided too). NMS is greedy by score, so the
boxes ≥ t of this run are exactly what a run at ``min_score`` t gives: one run serves every
feed threshold. The boxes are cached as ``.npz`` under the temp dir, keyed by the model's
and the video's identity and the settings.

Time. A sequence's frame rate is its ``seqinfo.ini`` ``frameRate`` (the container of
PETS09's ``vtest.avi`` claims 10 fps; the sequence is 7 fps), else the container's. edged gets
``ts = (frame − 1) / fps``; the peer gets ``frame_rate = fps`` and, as its defaults do, one
fixed step per call.
"""

from __future__ import annotations

import configparser
import contextlib
import hashlib
import io
import itertools
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np

from benchmarks import mot15
from edged.analytics.motion import Region
from edged.camera.gate import MotionGate
from edged.config.camera import MotionConfig, TrackerConfig
from edged.core.detections import Detections
from edged.tracking import ByteTracker
from edged.tracking.bytetrack import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "datasets" / "mot15"
MODEL = ROOT / "engines" / "nanodet-g-416.onnx"
DETECT_MIN_SCORE = 0.05
DETECT_NMS = 0.5
CACHE_VERSION = 2


def frame_rate(seq: mot15.MotSequence) -> float:
    info = seq.video.parent / "seqinfo.ini"
    if info.is_file():
        parser = configparser.ConfigParser()
        parser.read(info)
        fps = parser.getfloat("Sequence", "frameRate", fallback=0.0)
        if fps > 0:
            return fps
    with av.open(str(seq.video)) as container:
        return float(container.streams.video[0].average_rate)


def frame_size(seq: mot15.MotSequence) -> tuple[int, int]:
    with av.open(str(seq.video)) as container:
        s = container.streams.video[0]
        return int(s.width), int(s.height)


class _PersonOnly:
    """Engine wrapper zeroing every class score but the person's (see the module doc)."""

    def __init__(self, engine: Any, labels: int, person: int) -> None:
        self.engine, self.labels, self.person = engine, labels, person

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = dict(self.engine.run(feeds))
        for name, value in out.items():
            if value.ndim >= 2 and value.shape[-1] == self.labels:
                kept = value[..., self.person].copy()
                value = np.zeros_like(value)
                value[..., self.person] = kept
                out[name] = value
        return out


def _file_key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _cache_path(seq: mot15.MotSequence, model: Path, threads: int) -> Path:
    key = "|".join(
        [
            str(CACHE_VERSION),
            _file_key(seq.video),
            _file_key(model),
            # the manifest says how frames are prepared: a new resize means new boxes
            _file_key(model.with_suffix(".yaml")),
            f"{DETECT_MIN_SCORE}:{DETECT_NMS}:{threads}:person",
        ]
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / "edged-bench-detections"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{seq.name}-{digest}.npz"


@dataclass
class SequenceDetections:
    """Person detections per frame (``frames[i]`` is frame i + 1) and how they were got."""

    seq: mot15.MotSequence
    fps: float
    size: tuple[int, int]
    frames: list[Detections]
    detect_s: float | None  # None: read from the cache

    def fed(self, min_score: float) -> list[Detections]:
        return [d[d.score >= min_score] for d in self.frames]


def detect_as_asked(
    sequences: Sequence[mot15.MotSequence], args: Any, log: Any
) -> list[SequenceDetections]:
    """``detect_sequences`` with a benchmark's ``--threads``, ``--no-cache``, ``--precision``."""
    return detect_sequences(
        sequences,
        threads=args.threads,
        use_cache=not args.no_cache,
        log=log,
        precision=args.precision,
    )


def detect_sequences(
    sequences: Sequence[mot15.MotSequence],
    model: Path = MODEL,
    threads: int = 2,
    use_cache: bool = True,
    log: Any = None,
    precision: str = "auto",
) -> list[SequenceDetections]:
    """The detector's person boxes for every frame of every sequence (cached, by the file
    that runs: ``precision`` auto is the daemon's default, INT8 where the CPU runs it faster)."""
    import time

    from edged.config.model import ModelConfig
    from edged.models.variants import choose_file

    config = ModelConfig.model_validate(
        {"path": model, "backend": "cpu", "threads": threads, "precision": precision}
    )
    runs = choose_file(config, "cpu").path
    detector = None
    result = []
    for seq in sequences:
        path = _cache_path(seq, runs, threads)
        fps, size = frame_rate(seq), frame_size(seq)
        if use_cache and path.is_file():
            z = np.load(path)
            bounds = z["bounds"]
            frames = [
                Detections(
                    xyxy=z["xyxy"][a:b],
                    score=z["score"][a:b],
                    class_id=np.zeros(b - a, np.int32),
                )
                for a, b in itertools.pairwise(bounds)
            ]
            result.append(SequenceDetections(seq, fps, size, frames, None))
            continue
        if detector is None:
            from edged.models.detector import DetectRequest, load_detector

            detector = load_detector(config)
            person = detector.labels.index("person")
            detector.engine = _PersonOnly(detector.engine, len(detector.labels), person)
        t0 = time.perf_counter()
        frames = []
        for image in seq.frames():
            d = detector.detect([DetectRequest(image, DETECT_MIN_SCORE, DETECT_NMS)])[0].detections
            d = d[d.class_id == person]
            frames.append(
                Detections(
                    xyxy=d.xyxy.astype(np.float32),
                    score=d.score.astype(np.float32),
                    class_id=np.zeros(len(d), np.int32),
                )
            )
        elapsed = time.perf_counter() - t0
        if log is not None:
            log(f"{seq.name}: detector on {len(frames)} frames in {elapsed:.1f} s")
        bounds = np.cumsum([0] + [len(d) for d in frames])
        tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            xyxy=np.concatenate([d.xyxy for d in frames]) if frames else np.zeros((0, 4)),
            score=np.concatenate([d.score for d in frames]) if frames else np.zeros(0),
            bounds=bounds,
        )
        tmp.replace(path)
        result.append(SequenceDetections(seq, fps, size, frames, elapsed))
    return result


# ---------------------------------------------------------------------------- trackers


@dataclass
class TrackedSequence:
    """A tracker's output per frame: boxes and ids of confirmed tracks, ended ids; with a
    motion gate, which frames it skipped (no output: the daemon neither detects nor analyses
    them)."""

    xyxy: list[np.ndarray]
    ids: list[np.ndarray]
    ended: list[list[int]]
    outputs: list[Detections] | None = None
    skipped: list[bool] = field(default_factory=list)


# whether frame i is detected, given whether the tracker holds any track (the daemon's gate)
Admit = Callable[[int, bool], bool]


def motion_gate(
    seq: mot15.MotSequence,
    fps: float,
    config: MotionConfig | None = None,
    region: Region | None = None,
) -> Admit:
    """The daemon's motion gate (``edged.camera.gate``) over the sequence's own frames, with
    ``detect.motion``'s defaults unless told otherwise; frames are asked for in order."""
    gate, motion = MotionGate(), config or MotionConfig()
    frames = enumerate(seq.frames())

    def admit(i: int, busy: bool) -> bool:
        k, image = next(frames)
        assert k == i, "frames are gated in order"
        ts = i / fps
        return gate.admit(image, ts, motion, busy, region)

    return admit


def run_edged(
    frames: Sequence[Detections],
    fps: float,
    config: TrackerConfig = DEFAULTS,
    admit: Admit | None = None,
) -> TrackedSequence:
    tracker = ByteTracker(config)
    out = TrackedSequence([], [], [], [])
    for i, d in enumerate(frames):
        skip = admit is not None and not admit(i, tracker.tracking)
        out.skipped.append(skip)
        if skip:
            # not detected, not analysed: nothing reported for this frame
            out.xyxy.append(np.zeros((0, 4), np.float32))
            out.ids.append(np.zeros(0, np.int64))
            out.ended.append([])
            assert out.outputs is not None
            out.outputs.append(Detections.empty())
            continue
        o = tracker.update(d, i / fps)
        assert o.track_id is not None
        out.xyxy.append(o.xyxy)
        out.ids.append(o.track_id)
        out.ended.append(tracker.ended)
        assert out.outputs is not None
        out.outputs.append(o)
    return out


def peer_tracker(fps: float, **kwargs: Any) -> Any:
    from trackers import ByteTrackTracker

    return ByteTrackTracker(frame_rate=fps, **kwargs)


def sv_detections(d: Detections) -> Any:
    import supervision as sv

    return sv.Detections(
        xyxy=d.xyxy.astype(np.float32),
        confidence=d.score.astype(np.float32),
        class_id=d.class_id.astype(int),
    )


def run_peer(frames: Sequence[Detections], fps: float, **kwargs: Any) -> TrackedSequence:
    tracker = peer_tracker(fps, **kwargs)
    out = TrackedSequence([], [], [])
    seen: set[int] = set()
    for d in frames:
        o = tracker.update(sv_detections(d))
        keep = o.tracker_id >= 0
        ids = o.tracker_id[keep].astype(np.int64)
        out.xyxy.append(o.xyxy[keep])
        out.ids.append(ids)
        alive = {int(t.tracker_id) for t in tracker.tracks if t.tracker_id >= 0}
        out.ended.append(sorted(seen - alive))
        seen = (seen | set(ids.tolist())) & alive
    return out


def mot_rows(tracked: TrackedSequence) -> np.ndarray:
    """MOTChallenge result rows ``frame,id,x,y,w,h,conf,-1,-1,-1`` (boxes as tracked, in the
    0-based pixels of the decoded frame; the ground truth is taken as written, as MEASURED.md
    did)."""
    rows = []
    for i, (xyxy, ids) in enumerate(zip(tracked.xyxy, tracked.ids, strict=True)):
        for (x1, y1, x2, y2), tid in zip(xyxy.tolist(), ids.tolist(), strict=True):
            rows.append([i + 1, tid, x1, y1, x2 - x1, y2 - y1, 1, -1, -1, -1])
    return np.asarray(rows, np.float64).reshape(-1, 10)


# ---------------------------------------------------------------------------- TrackEval


def trackeval(
    data: Path, seqs: Sequence[mot15.MotSequence], results: dict[str, dict[str, np.ndarray]]
) -> dict[str, dict[str, dict[str, float]]]:
    """HOTA, DetA, AssA, MOTA, IDF1, IDSW, … per tracker and sequence (and ``COMBINED_SEQ``)
    with TrackEval's MotChallenge2DBox as BENCHMARK MOT15 (ground-truth rows with conf 0
    are dropped, nothing else is preprocessed). ``results[tracker][seq]`` are MOT rows."""
    import trackeval as te

    with (
        tempfile.TemporaryDirectory(prefix="edged-trackeval-") as tmp,
        contextlib.redirect_stdout(io.StringIO()),
    ):
        for tracker, per_seq in results.items():
            folder = Path(tmp) / tracker / "data"
            folder.mkdir(parents=True)
            for name, rows in per_seq.items():
                np.savetxt(
                    folder / f"{name}.txt",
                    rows,
                    fmt=["%d", "%d", "%.2f", "%.2f", "%.2f", "%.2f", "%d", "%d", "%d", "%d"],
                    delimiter=",",
                )
        dataset = te.datasets.MotChallenge2DBox(
            {
                "GT_FOLDER": str(data),
                "TRACKERS_FOLDER": tmp,
                "OUTPUT_FOLDER": tmp,
                "TRACKERS_TO_EVAL": list(results),
                "BENCHMARK": "MOT15",
                "SKIP_SPLIT_FOL": True,
                "SEQ_INFO": {s.name: s.length for s in seqs},
                "PRINT_CONFIG": False,
            }
        )
        evaluator = te.Evaluator(
            {
                "USE_PARALLEL": False,
                "PRINT_RESULTS": False,
                "PRINT_CONFIG": False,
                "TIME_PROGRESS": False,
                "OUTPUT_SUMMARY": False,
                "OUTPUT_DETAILED": False,
                "PLOT_CURVES": False,
                "LOG_ON_ERROR": None,
            }
        )
        metrics = [
            te.metrics.HOTA(),
            te.metrics.CLEAR({"PRINT_CONFIG": False}),
            te.metrics.Identity({"PRINT_CONFIG": False}),
        ]
        res, _ = evaluator.evaluate([dataset], metrics)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for tracker, per_seq in res["MotChallenge2DBox"].items():
        out[tracker] = {}
        for name, by_class in per_seq.items():
            r = by_class["pedestrian"]
            hota = r["HOTA"]
            out[tracker][name] = {
                "HOTA": 100 * float(np.mean(hota["HOTA"])),
                "DetA": 100 * float(np.mean(hota["DetA"])),
                "AssA": 100 * float(np.mean(hota["AssA"])),
                "MOTA": 100 * float(r["CLEAR"]["MOTA"]),
                "IDF1": 100 * float(r["Identity"]["IDF1"]),
                "IDSW": int(r["CLEAR"]["IDSW"]),
                "FP": int(r["CLEAR"]["CLR_FP"]),
                "FN": int(r["CLEAR"]["CLR_FN"]),
                "GT_IDs": int(r["Count"]["GT_IDs"]) if "Count" in r else -1,
                "IDs": int(r["Count"]["IDs"]) if "Count" in r else -1,
            }
    return out
