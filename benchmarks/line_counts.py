"""Line-count error of edged's analytics on MOTChallenge 2015 sequences, against counts from
the ground-truth tracks.

    python -m benchmarks.line_counts [--data ../shared/datasets/mot15] [--json] [--no-cache]
        [--feed 0.35]

Lines (relative coordinates, x right, y down, over the whole sequence; placed across the main
walking paths, looked at once on a picture of the ground-truth trails, not fitted to counts):

- PETS09-S2L1 (795 frames, 7 fps): ``west`` (0.30, 0.30)–(0.30, 0.80) and ``east``
  (0.75, 0.25)–(0.75, 0.85), both across the road people walk along left and right.
- TUD-Campus (71 frames, 25 fps): ``centre`` (0.50, 0.60)–(0.50, 1.00).
- TUD-Stadtmitte (179 frames, 25 fps): ``centre`` (0.50, 0.40)–(0.50, 0.80) and ``east``
  (0.75, 0.40)–(0.75, 0.80) (most people walk in the right half).

Ground truth. Each ground-truth track (rows with conf 0 left out) is its box's bottom centre
frame by frame; a crossing is a step between two consecutive annotated positions of one track
that intersects the segment, counted in the direction of the step (plain geometry, no
hysteresis: what a perfect tracker and a perfect counter would report).

edged. The daemon's path with its defaults: detections with score ≥ ``detect.min_score``
(0.35) → ``ByteTracker`` with ``TrackerConfig``'s defaults (``ts`` = frame / fps) →
``TrackedFrame`` → ``edged.analytics.lines.Line`` with ``LineConfig``'s defaults (bottom-centre
anchor, hysteresis band, cancel window, segment), constructed as ``CameraAnalytics`` does;
``finish`` at the end of the sequence. Directions are reported as image directions
(``left_to_right`` is the line's ``in`` for these vertical lines).

``edged+gate``: the same with the daemon's motion gate (``detect.motion`` defaults; its region
of interest the lines, widened by the margin) run on the sequence's frames; a frame it skips
is neither tracked nor counted, as in the daemon.

``GT via Line``: the ground-truth tracks fed through the same ``Line`` (its hysteresis band and
cancel window), which separates what the counting rules change from what tracking loses.

Error per line and direction: (edged − GT) / GT; pooled: Σ|edged − GT| / Σ GT over all lines
and directions.
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import LineString

from benchmarks import mot15
from benchmarks import tracking as T
from benchmarks.eval_mot import daemon_min_score, daemon_params
from edged.analytics import lines as lines_mod
from edged.analytics.motion import Region
from edged.analytics.tracked import TrackedFrame
from edged.config.camera import LineConfig
from edged.config.geometry import to_pixels
from edged.core.detections import Anchor

LINES: dict[str, dict[str, list[tuple[float, float]]]] = {
    "PETS09-S2L1": {
        "west": [(0.30, 0.30), (0.30, 0.80)],
        "east": [(0.75, 0.25), (0.75, 0.85)],
    },
    "TUD-Campus": {
        "centre": [(0.50, 0.60), (0.50, 1.00)],
    },
    "TUD-Stadtmitte": {
        "centre": [(0.50, 0.40), (0.50, 0.80)],
        "east": [(0.75, 0.40), (0.75, 0.80)],
    },
}
LABELS = ["person"]


def _segments_cross(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether step p→q properly crosses segment a–b (q on the line does not count yet)."""

    def orient(u: np.ndarray, v: np.ndarray, w: np.ndarray) -> float:
        return float((v[0] - u[0]) * (w[1] - u[1]) - (v[1] - u[1]) * (w[0] - u[0]))

    d1, d2 = orient(a, b, p), orient(a, b, q)
    d3, d4 = orient(p, q, a), orient(p, q, b)
    return d1 * d2 < 0 and d3 * d4 <= 0


def gt_counts(seq: mot15.MotSequence, pts: np.ndarray) -> dict[str, int]:
    """Crossings of ground-truth bottom centres, by image direction of the step."""
    rows = np.loadtxt(seq.video.parent / "gt" / "gt.txt", delimiter=",", ndmin=2)
    rows = rows[rows[:, 6] != 0]
    in_dir = lines_mod.in_direction(pts, None, None)
    unit = np.array(lines_mod.UNIT[in_dir])
    counts = {in_dir: 0, lines_mod.OPPOSITE[in_dir]: 0}
    a, b = pts
    for tid in np.unique(rows[:, 1]):
        r = rows[rows[:, 1] == tid]
        r = r[np.argsort(r[:, 0])]
        foot = np.stack([r[:, 2] + r[:, 4] / 2, r[:, 3] + r[:, 5]], axis=1)
        # a position exactly on the line is skipped so that touching and leaving isn't a cross
        side = np.sign((b[0] - a[0]) * (foot[:, 1] - a[1]) - (b[1] - a[1]) * (foot[:, 0] - a[0]))
        off = foot[side != 0]
        for p, q in itertools.pairwise(off):
            if _segments_cross(p, q, a, b):
                counts[in_dir if (q - p) @ unit > 0 else lines_mod.OPPOSITE[in_dir]] += 1
    return counts


def gt_line_counts(
    sd: T.SequenceDetections, lines: dict[str, np.ndarray]
) -> dict[str, dict[str, int]]:
    """The ground-truth tracks fed through edged's ``Line`` as if they were tracker output."""
    from edged.core.detections import Detections

    width, height = sd.size
    rows = np.loadtxt(sd.seq.video.parent / "gt" / "gt.txt", delimiter=",", ndmin=2)
    rows = rows[rows[:, 6] != 0]
    last = {int(t): int(rows[rows[:, 1] == t, 0].max()) for t in np.unique(rows[:, 1])}
    built = {name: make_line(name, pts, width, height) for name, pts in lines.items()}
    tf = None
    for frame in range(1, len(sd.frames) + 1):
        r = rows[rows[:, 0] == frame]
        xyxy = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1).astype(np.float32)
        objects = Detections(
            xyxy=xyxy,
            score=np.ones(len(r), np.float32),
            class_id=np.zeros(len(r), np.int32),
            track_id=r[:, 1].astype(np.int64),
        )
        ended = [t for t, f in last.items() if f == frame - 1]
        ts = (frame - 1) / sd.fps
        tf = TrackedFrame("bench", ts, ts, objects, ended, LABELS)
        for line, _, _ in built.values():
            line.update(tf)
    if tf is not None:
        for line, _, _ in built.values():
            if hasattr(line, "finish"):
                line.finish(tf)
    return _totals(built)


def _totals(built: dict[str, Any]) -> dict[str, dict[str, int]]:
    out = {}
    for name, (line, in_dir, _) in built.items():
        out[name] = {
            in_dir: sum(line.totals["in"].values()),
            lines_mod.OPPOSITE[in_dir]: sum(line.totals["out"].values()),
        }
    return out


def make_line(name: str, pts: np.ndarray, width: int, height: int) -> Any:
    """``Line`` as ``CameraAnalytics`` builds it from a default ``LineConfig`` (works with the
    constructor with or without the ``rules`` argument)."""
    cfg = LineConfig(points=[tuple(p) for p in pts.tolist()])
    in_dir = lines_mod.in_direction(pts, cfg.directions.in_, cfg.directions.out)
    kwargs: dict[str, Any] = {}
    params = inspect.signature(lines_mod.Line).parameters
    if "rules" in params and hasattr(lines_mod, "LineRules"):
        kwargs["rules"] = lines_mod.LineRules(
            band_px=cfg.hysteresis * float(np.hypot(width, height)),
            cancel_s=cfg.cancel_s,
            segment=cfg.segment,
        )
    line = lines_mod.Line("bench", name, pts, Anchor(cfg.anchor), None, in_dir, **kwargs)
    return line, in_dir, cfg


def edged_counts(
    sd: T.SequenceDetections, lines: dict[str, np.ndarray], feed: float, gated: bool = False
) -> tuple[dict[str, dict[str, int]], float, int]:
    """Counts per line and direction, seconds, and frames the motion gate skipped (``gated``:
    the daemon's gate with ``detect.motion``'s defaults, its region of interest the lines)."""
    width, height = sd.size
    built = {name: make_line(name, pts, width, height) for name, pts in lines.items()}
    t0 = time.perf_counter()
    admit = None
    if gated:
        region = Region(sd.size, tuple(LineString(pts) for pts in lines.values()))
        admit = T.motion_gate(sd.seq, sd.fps, region=region)
    tracked = T.run_edged(sd.fed(feed), sd.fps, daemon_params(), admit)
    assert tracked.outputs is not None
    tf = None
    steps = zip(tracked.outputs, tracked.ended, tracked.skipped, strict=True)
    for i, (objects, ended, skipped) in enumerate(steps):
        if skipped:
            continue  # the daemon neither detects nor analyses it
        ts = i / sd.fps
        tf = TrackedFrame("bench", ts, ts, objects, ended, LABELS)
        for line, _, _ in built.values():
            line.update(tf)
    if tf is not None:
        for line, _, _ in built.values():
            if hasattr(line, "finish"):
                line.finish(tf)
    elapsed = time.perf_counter() - t0
    return _totals(built), elapsed, sum(tracked.skipped)


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    sequences = [s for s in mot15.load_sequences(args.data) if s.name in LINES]
    log = (lambda m: print(m, file=sys.stderr)) if not args.quiet else None
    dets = T.detect_as_asked(sequences, args, log)
    feed = args.feed if args.feed is not None else daemon_min_score()
    rows = []
    seconds = {}
    skipped = {}
    sum_abs = sum_gate = sum_gt = 0
    for sd in dets:
        width, height = sd.size
        pixel_lines = {
            name: to_pixels(list(rel), width, height) for name, rel in LINES[sd.seq.name].items()
        }
        counted, seconds[sd.seq.name], _ = edged_counts(sd, pixel_lines, feed)
        gated, _, skipped[sd.seq.name] = edged_counts(sd, pixel_lines, feed, gated=True)
        via_line = gt_line_counts(sd, pixel_lines)
        for name, pts in pixel_lines.items():
            gt = gt_counts(sd.seq, pts)
            for direction in gt:
                g, e = gt[direction], counted[name].get(direction, 0)
                eg = gated[name].get(direction, 0)
                sum_abs += abs(e - g)
                sum_gate += abs(eg - g)
                sum_gt += g
                rows.append(
                    {
                        "sequence": sd.seq.name,
                        "line": name,
                        "points_rel": [list(p) for p in LINES[sd.seq.name][name]],
                        "direction": direction,
                        "gt": g,
                        "gt_via_line": via_line[name][direction],
                        "edged": e,
                        "error_pct": None if g == 0 else 100.0 * (e - g) / g,
                        "edged_gate": eg,
                    }
                )
    return {
        "feed_min_score": feed,
        "tracker": daemon_params().model_dump(),
        "line_defaults": LineConfig(points=[(0.0, 0.0), (1.0, 1.0)]).model_dump(
            exclude={"points", "directions", "classes"}
        ),
        "rows": rows,
        "pooled_abs_error_pct": 100.0 * sum_abs / sum_gt if sum_gt else None,
        "pooled_abs_error_pct_gate": 100.0 * sum_gate / sum_gt if sum_gt else None,
        "skipped_frames_gate": skipped,
        "frames": {sd.seq.name: len(sd.frames) for sd in dets},
        "pooled_gt": sum_gt,
        "runtime_s": {
            "tracking_and_counting": seconds,
            "total": time.perf_counter() - t_start,
        },
    }


def table(result: dict[str, Any]) -> str:
    header = (
        f"{'sequence':<16}{'line':<8}{'direction':<15}{'GT':>5}{'GT via Line':>13}"
        f"{'edged':>7}{'error %':>9}{'edged+gate':>12}"
    )
    lines = [header, "-" * len(header)]
    for r in result["rows"]:
        err = "n/a" if r["error_pct"] is None else f"{r['error_pct']:+.1f}"
        lines.append(
            f"{r['sequence']:<16}{r['line']:<8}{r['direction']:<15}{r['gt']:>5}"
            f"{r['gt_via_line']:>13}{r['edged']:>7}{err:>9}{r['edged_gate']:>12}"
        )
    lines.append("")
    lines.append(
        f"pooled |edged − GT| / GT: {result['pooled_abs_error_pct']:.1f} % of {result['pooled_gt']}"
        f" crossings (feed ≥ {result['feed_min_score']:g}); "
        f"total {result['runtime_s']['total']:.1f} s"
    )
    skipped = ", ".join(
        f"{s} {n}/{result['frames'][s]}" for s, n in result["skipped_frames_gate"].items()
    )
    lines.append(
        f"with the motion gate (detect.motion defaults, the lines as region of interest): "
        f"{result['pooled_abs_error_pct_gate']:.1f} %; frames skipped: {skipped}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=T.DATA)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--feed", type=float, default=None, help="min score fed to the tracker (default: 0.35)"
    )
    parser.add_argument("--threads", type=int, default=2, help="detector intra-op threads")
    parser.add_argument("--no-cache", action="store_true", help="run the detector again")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "int8"),
        help="the detector's (auto: the daemon's default, INT8 where the CPU runs it faster)",
    )
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
