"""edged's ByteTrack against roboflow ``trackers`` ByteTrack on MOTChallenge 2015 sequences:
HOTA, DetA, AssA, MOTA, IDF1 and ID switches per sequence and combined, from TrackEval.

    python -m benchmarks.eval_mot [--data ../shared/datasets/mot15] [--json] [--no-cache]
        [--feeds 0.05,0.35]

The detector runs once per sequence (``benchmarks.tracking``: score ≥ 0.05, cached) and every
tracker sees the same boxes. For each feed threshold t in ``--feeds`` (default: 0.05, as
MEASURED.md fed the peer, and the daemon's ``detect.min_score`` default, 0.35, what edged's
tracker gets in the daemon) both trackers get the boxes with score ≥ t:

- ``edged``: ``ByteTracker`` on ``TrackerConfig``'s defaults, as the daemon runs it,
  ``ts`` = the frame's time in the sequence (frame / fps).
- ``edged+gate``: the same with the daemon's motion gate (``detect.motion`` defaults, the
  whole picture as the region of interest) run on the sequence's frames: a frame it skips is
  neither tracked nor reported, as in the daemon.
- ``trackers``: ``ByteTrackTracker`` with the library's defaults and ``frame_rate`` = the
  sequence's fps (its lost buffer is 30 frames at 30 fps, i.e. 1 s).
- ``trackers~edged``: the same with edged's settings where the two have one: lost buffer
  (in 30 fps frames), high and new-track thresholds — what a user who tuned the peer would
  get.

``--jitter N``: N more runs of ``edged`` and both ``trackers`` at the daemon's feed, each on the
boxes moved by Gaussian noise (σ 0.5 px on every coordinate, 0.01 on every score, seeded by the
run's number) before the feed threshold: the size of the differences between the FP32 and the
INT8 model's boxes on these sequences (median 0.2–0.5 px and 0.01, and ≈ 170 boxes near the
threshold in one and not the other), so the spread of the scores over the runs says how far a
change as small as INT8's moves them by itself.

Only confirmed tracks are written (edged reports only those; the peer's unconfirmed boxes carry
id −1 and are dropped). TrackEval's MotChallenge2DBox, BENCHMARK MOT15: ground-truth rows with
conf 0 are not evaluated, tracker boxes are not preprocessed; "COMBINED" is TrackEval's
combination over the sequences (not a mean of them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import mot15
from benchmarks import tracking as T
from edged.config.camera import (
    DEFAULT_MIN_SCORE,
    HIGH_OVER_FLOOR,
    NEW_OVER_FLOOR,
    MotionConfig,
    TrackerConfig,
)
from edged.core.detections import Detections
from edged.models.manifest import load_manifest
from edged.tracking import Association

METRICS = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "IDSW")
JITTER_PX = 0.5
JITTER_SCORE = 0.01
JITTERED = ("edged", "trackers", "trackers~edged")
REFERENCE = {  # MEASURED.md: the peer, library defaults, fed every detection ≥ 0.05, combined
    "trackers@0.05": {"HOTA": 32.1, "MOTA": -8.8, "IDF1": 41.7},
}


def daemon_params() -> TrackerConfig:
    """What ``CameraAnalytics`` gives the tracker with a default ``tracker:`` section."""
    return TrackerConfig()


def peer_like(params: TrackerConfig) -> dict[str, Any]:
    """The peer's arguments that mean what edged's settings mean (for people: thresholds that
    follow the person floor are resolved at it)."""
    floor = daemon_min_score()
    high = HIGH_OVER_FLOOR * floor if params.high_thresh is None else params.high_thresh
    new = NEW_OVER_FLOOR * floor if params.new_track_thresh is None else params.new_track_thresh
    return {
        "lost_track_buffer": round(params.lost_track_buffer_s * 30),
        "high_conf_det_threshold": high,
        "track_activation_threshold": new,
        "minimum_consecutive_frames": params.min_hits,
    }


def daemon_min_score() -> float:
    """The floor a default camera detects people with: the shipped model's for person."""
    return load_manifest(T.MODEL).min_scores.get("person", DEFAULT_MIN_SCORE)


def jittered(frames: list[Detections], seed: int) -> list[Detections]:
    """The boxes and scores moved by Gaussian noise of ``JITTER_PX`` and ``JITTER_SCORE``."""
    rng = np.random.default_rng(seed)
    return [
        replace(
            d,
            xyxy=(d.xyxy + rng.normal(0.0, JITTER_PX, d.xyxy.shape)).astype(np.float32),
            score=(d.score + rng.normal(0.0, JITTER_SCORE, d.score.shape)).astype(np.float32),
        )
        for d in frames
    ]


def track(kind: str, frames: list[Detections], sd: T.SequenceDetections) -> T.TrackedSequence:
    params = daemon_params()
    if kind == "edged":
        return T.run_edged(frames, sd.fps, params)
    if kind == "edged+gate":
        return T.run_edged(frames, sd.fps, params, T.motion_gate(sd.seq, sd.fps))
    return T.run_peer(frames, sd.fps, **(peer_like(params) if "~" in kind else {}))


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    sequences = mot15.load_sequences(args.data)
    log = (lambda m: print(m, file=sys.stderr)) if not args.quiet else None
    dets = T.detect_as_asked(sequences, args, log)
    params = daemon_params()
    feeds = [float(f) for f in args.feeds.split(",")] if args.feeds else [0.05, daemon_min_score()]

    results: dict[str, dict[str, Any]] = {}
    tracking_s: dict[str, float] = {}
    trackers: dict[str, dict[str, Any]] = {}
    for feed in feeds:
        for kind in ("edged", "edged+gate", "trackers", "trackers~edged"):
            name = f"{kind}@{feed:g}"
            t0 = time.perf_counter()
            per_seq = {}
            skipped = {}
            for sd in dets:
                tracked = track(kind, sd.fed(feed), sd)
                if kind == "edged+gate":
                    skipped[sd.seq.name] = sum(tracked.skipped)
                per_seq[sd.seq.name] = T.mot_rows(tracked)
            tracking_s[name] = time.perf_counter() - t0
            results[name] = per_seq
            trackers[name] = {
                "tracker": kind,
                "feed_min_score": feed,
                "settings": (
                    {**params.model_dump(), **asdict(Association())}
                    if kind == "edged"
                    else {**params.model_dump(), "motion": MotionConfig().model_dump()}
                    if kind == "edged+gate"
                    else peer_like(params)
                    if "~" in kind
                    else "library defaults, frame_rate=fps"
                ),
            }
            if skipped:
                trackers[name]["skipped_frames"] = skipped
    feed = daemon_min_score()
    for k in range(args.jitter):
        for kind in JITTERED:
            per_seq = {}
            for sd in dets:
                frames = [d[d.score >= feed] for d in jittered(sd.frames, k)]
                per_seq[sd.seq.name] = T.mot_rows(track(kind, frames, sd))
            results[f"{kind}@{feed:g}~jitter{k}"] = per_seq
    t0 = time.perf_counter()
    metrics = T.trackeval(args.data, sequences, results)
    spread: dict[str, dict[str, dict[str, float]]] = {}
    for kind in JITTERED if args.jitter else ():
        runs = [metrics[f"{kind}@{feed:g}~jitter{k}"]["COMBINED_SEQ"] for k in range(args.jitter)]
        spread[f"{kind}@{feed:g}"] = {
            m: {
                "mean": statistics.fmean(r[m] for r in runs),
                "sd": statistics.stdev(r[m] for r in runs) if len(runs) > 1 else 0.0,
                "min": min(r[m] for r in runs),
                "max": max(r[m] for r in runs),
            }
            for m in ("HOTA", "IDF1", "MOTA")
        }
    eval_s = time.perf_counter() - t0
    for name, info in trackers.items():
        info["metrics"] = {
            ("COMBINED" if s == "COMBINED_SEQ" else s): m for s, m in metrics[name].items()
        }
    return {
        "sequences": {
            sd.seq.name: {"frames": len(sd.frames), "fps": sd.fps, "size": list(sd.size)}
            for sd in dets
        },
        "detector": {
            "model": str(T.MODEL.relative_to(T.ROOT)),
            "min_score": T.DETECT_MIN_SCORE,
            "nms_iou": T.DETECT_NMS,
            "threads": args.threads,
            "seconds": {sd.seq.name: sd.detect_s for sd in dets},  # None: from the cache
        },
        "daemon_detect_min_score": daemon_min_score(),
        "trackers": trackers,
        "jitter": {
            "runs": args.jitter,
            "px": JITTER_PX,
            "score": JITTER_SCORE,
            "combined": spread,
        },
        "reference_measured_md": REFERENCE,
        "runtime_s": {
            "tracking": tracking_s,
            "trackeval": eval_s,
            "total": time.perf_counter() - t_start,
        },
    }


def table(result: dict[str, Any]) -> str:
    trackers = result["trackers"]
    names = list(trackers)
    seqs = [*result["sequences"], "COMBINED"]
    width = max(len(n) for n in names) + 2
    lines = []
    header = f"{'sequence':<16}{'tracker':<{width}}" + "".join(f"{m:>8}" for m in METRICS)
    lines.append(header)
    lines.append("-" * len(header))
    for seq in seqs:
        for name in names:
            m = trackers[name]["metrics"][seq]
            cells = "".join(f"{m[k]:>8d}" if k == "IDSW" else f"{m[k]:>8.1f}" for k in METRICS)
            lines.append(f"{seq:<16}{name:<{width}}{cells}")
        lines.append("")
    for name, info in trackers.items():
        if "skipped_frames" in info:
            frames = {s: v["frames"] for s, v in result["sequences"].items()}
            parts = [f"{s} {n}/{frames[s]}" for s, n in info["skipped_frames"].items()]
            lines.append(f"{name}: frames skipped by the motion gate: " + ", ".join(parts))
    jitter = result["jitter"]
    for name, by_metric in jitter["combined"].items():
        cells = ", ".join(
            f"{m} {v['mean']:.1f} ± {v['sd']:.1f} ({v['min']:.1f}–{v['max']:.1f})"
            for m, v in by_metric.items()
        )
        lines.append(
            f"{name}, {jitter['runs']} runs on boxes ± {jitter['px']:g} px, scores ±"
            f" {jitter['score']:g}, combined: {cells}"
        )
    ref = ", ".join(f"{k} {v}" for k, v in result["reference_measured_md"]["trackers@0.05"].items())
    lines.append(f"MEASURED.md, trackers@0.05 combined: {ref}")
    rt = result["runtime_s"]
    lines.append(
        "tracking s: "
        + ", ".join(f"{k} {v:.2f}" for k, v in rt["tracking"].items())
        + f"; TrackEval {rt['trackeval']:.1f} s; total {rt['total']:.1f} s"
    )
    det = result["detector"]["seconds"]
    lines.append(
        "detector s: "
        + ", ".join(f"{k} {'cached' if v is None else f'{v:.1f}'}" for k, v in det.items())
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=T.DATA)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--feeds",
        default="",
        help="comma-separated score thresholds the trackers are fed "
        "(default: 0.05 and the daemon's detect.min_score)",
    )
    parser.add_argument("--threads", type=int, default=2, help="detector intra-op threads")
    parser.add_argument("--no-cache", action="store_true", help="run the detector again")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "int8"),
        help="the detector's (auto: the daemon's default, INT8 where the CPU runs it faster)",
    )
    parser.add_argument(
        "--jitter",
        type=int,
        default=0,
        help="runs on boxes moved by noise the size of INT8's changes (the scores' spread)",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
