"""Tracker cost per frame: edged's ByteTracker against roboflow ``trackers`` ByteTrack on the same
synthetic scenes with 10, 50 and 150 people at once.

    python -m benchmarks.tracker_cost [--json] [--tracks 10,50,150] [--frames 300]
        [--rounds 3] [--profile]

Scene (seeded, identical for both trackers): a 1920×1080 picture with N people that stay in
view the whole time: box heights 60–260 px, width ≈ 0.4 × height, walking 0.5–4 px per frame
with a slowly turning heading, bouncing off the borders (so they cross and overlap). Each
frame every person is detected with probability 0.93 (7 % misses, mostly one-frame), box
corners jittered by N(0, 3 % of the height); scores ~ 0.3 + 0.65·Beta(5, 2), with one box in
eight drawn in 0.1–0.5 instead (ByteTrack's second stage); plus N/10 clutter boxes of score
0.1–0.4 anywhere. 30 fps, edged gets ``ts`` = frame / 30, the peer ``frame_rate=30``; both with
their defaults; both trackers get their own input type built beforehand (``Detections``,
``sv.Detections``), so conversion is not timed.

Timing: wall time of each ``update`` (``time.perf_counter_ns``), the first 30 frames (tracks
starting) left out; median and p90 in µs. The two trackers alternate by round (``--rounds``
fresh runs over the whole scene each), so drift on a shared machine hits both alike; compare
the ratio within one run. ``--profile``: cProfile of edged at the largest N, by own time.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import platform
import pstats
import statistics
import time
from typing import Any

import numpy as np

from benchmarks import tracking as T
from edged.core.detections import Detections
from edged.tracking import ByteTracker

WIDTH, HEIGHT, FPS = 1920, 1080, 30.0
WARMUP = 30
TARGET_RATIO = 0.2  # edged ≤ 1/5 of the peer at 50 tracks


def scene(n: int, frames: int, seed: int = 0) -> list[Detections]:
    rng = np.random.default_rng(seed + n)
    h = rng.uniform(60, 260, n)
    w = h * rng.uniform(0.35, 0.45, n)
    pos = np.stack([rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)], axis=1)
    speed = rng.uniform(0.5, 4.0, n)
    heading = rng.uniform(0, 2 * np.pi, n)
    out = []
    for _ in range(frames):
        heading += rng.normal(0, 0.05, n)
        vel = np.stack([np.cos(heading), np.sin(heading)], axis=1) * speed[:, None]
        pos += vel
        for axis, size, limit in ((0, w, WIDTH), (1, h, HEIGHT)):
            low, high = pos[:, axis] < 0, pos[:, axis] + size > limit
            if low.any() or high.any():
                bounce = low | high
                heading[bounce] = (np.pi - heading[bounce]) if axis == 0 else -heading[bounce]
                pos[:, axis] = np.clip(pos[:, axis], 0, limit - size)
        seen = rng.random(n) >= 0.07
        xyxy = np.concatenate([pos, pos + np.stack([w, h], axis=1)], axis=1)
        xyxy = xyxy + rng.normal(0, 1, (n, 4)) * (0.03 * h)[:, None]
        score = 0.3 + 0.65 * rng.beta(5, 2, n)
        weak = rng.random(n) < 1 / 8
        score[weak] = rng.uniform(0.1, 0.5, weak.sum())
        k = max(1, n // 10)
        ch = rng.uniform(60, 200, k)
        cxy = np.stack([rng.uniform(0, WIDTH - ch * 0.4), rng.uniform(0, HEIGHT - ch)], axis=1)
        clutter = np.concatenate([cxy, cxy + np.stack([ch * 0.4, ch], axis=1)], axis=1)
        boxes = np.concatenate([xyxy[seen], clutter]).astype(np.float32)
        scores = np.concatenate([score[seen], rng.uniform(0.1, 0.4, k)]).astype(np.float32)
        order = rng.permutation(len(boxes))
        out.append(
            Detections(
                xyxy=boxes[order],
                score=scores[order],
                class_id=np.zeros(len(boxes), np.int32),
            )
        )
    return out


def time_edged(frames: list[Detections]) -> tuple[list[int], int]:
    tracker = ByteTracker()
    times = []
    confirmed = 0
    for i, d in enumerate(frames):
        t0 = time.perf_counter_ns()
        out = tracker.update(d, i / FPS)
        times.append(time.perf_counter_ns() - t0)
        confirmed = len(out)
    return times[WARMUP:], confirmed


def time_peer(frames: list[Any]) -> tuple[list[int], int]:
    tracker = T.peer_tracker(FPS)
    times = []
    confirmed = 0
    for f in frames:
        t0 = time.perf_counter_ns()
        out = tracker.update(f)
        times.append(time.perf_counter_ns() - t0)
        confirmed = int((out.tracker_id >= 0).sum())
    return times[WARMUP:], confirmed


def p90(values: list[int]) -> float:
    return float(np.percentile(values, 90))


def profile_edged(frames: list[Detections], top: int = 18) -> str:
    tracker = ByteTracker()
    prof = cProfile.Profile()
    prof.enable()
    for i, d in enumerate(frames):
        tracker.update(d, i / FPS)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    return buf.getvalue()


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    counts = [int(n) for n in args.tracks.split(",")]
    result: dict[str, Any] = {
        "machine": platform.processor() or platform.machine(),
        "frames": args.frames,
        "rounds": args.rounds,
        "fps": FPS,
        "per_tracks": {},
    }
    for n in counts:
        frames = scene(n, args.frames)
        sv_frames = [T.sv_detections(d) for d in frames]
        samples: dict[str, list[int]] = {"edged": [], "trackers": []}
        confirmed: dict[str, int] = {}
        for r in range(args.rounds):
            order = ("edged", "trackers") if r % 2 == 0 else ("trackers", "edged")
            for kind in order:
                gc.collect()
                times, confirmed[kind] = (
                    time_edged(frames) if kind == "edged" else time_peer(sv_frames)
                )
                samples[kind] += times
        stats = {
            kind: {
                "median_us": statistics.median(t) / 1000,
                "p90_us": p90(t) / 1000,
                "confirmed_tracks_last_frame": confirmed[kind],
            }
            for kind, t in samples.items()
        }
        result["per_tracks"][str(n)] = {
            **stats,
            "detections_per_frame": float(np.mean([len(d) for d in frames])),
            "ratio_median": stats["edged"]["median_us"] / stats["trackers"]["median_us"],
            "ratio_p90": stats["edged"]["p90_us"] / stats["trackers"]["p90_us"],
        }
    at50 = result["per_tracks"].get("50")
    if at50 is not None:
        result["target"] = {
            "edged_over_peer_at_50_max": TARGET_RATIO,
            "met": at50["ratio_median"] <= TARGET_RATIO,
        }
    if args.profile:
        result["profile_edged"] = profile_edged(scene(max(counts), args.frames))
    result["runtime_s"] = time.perf_counter() - t_start
    return result


def table(result: dict[str, Any]) -> str:
    header = (
        f"{'tracks':>6}{'dets/frame':>12}{'edged med':>11}{'p90':>8}{'peer med':>10}{'p90':>8}"
        f"{'edged/peer':>12}{'(p90)':>7}"
    )
    lines = [header, "-" * len(header)]
    for n, r in result["per_tracks"].items():
        e, p = r["edged"], r["trackers"]
        lines.append(
            f"{n:>6}{r['detections_per_frame']:>12.1f}{e['median_us']:>11.0f}{e['p90_us']:>8.0f}"
            f"{p['median_us']:>10.0f}{p['p90_us']:>8.0f}{r['ratio_median']:>12.3f}"
            f"{r['ratio_p90']:>7.3f}"
        )
    lines.append(
        "µs per update; edged: edged.tracking.ByteTracker, peer: trackers.ByteTrackTracker"
    )
    if "target" in result:
        t = result["target"]
        lines.append(
            f"target edged ≤ {t['edged_over_peer_at_50_max']:g} × peer at 50 tracks: "
            f"{'met' if t['met'] else 'MISSED'}"
        )
    lines.append(f"total {result['runtime_s']:.1f} s")
    if "profile_edged" in result:
        lines.append(result["profile_edged"])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--tracks", default="10,50,150")
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile edged at the most tracks")
    args = parser.parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
