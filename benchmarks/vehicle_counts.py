"""Vehicles counted by a generic line with the daemon's default settings, against hand
counts, on the two traffic clips:

    python -m benchmarks.vehicle_counts [--json] [--slits DIR] [--precision auto|fp32|int8]
        [--set KEY=VALUE ...]

Each clip gets a camera as a new user writes it from the README: ``detect.classes:
[vehicle]`` and one line, nothing else set (``--set`` overrides a camera setting, e.g.
``detect.min_score=0.35`` for what the old defaults gave). The daemon runs
the clip as fast as it goes (``edged run --print-events``) and its ``line_crossing`` events
are counted.

The truth was counted by eye on slit-scan images (``--slits DIR`` writes them again): the
line's pixels in every frame, side by side in time, so that each vehicle crossing it is one
streak — counted when the middle of the vehicle crosses (the box's bottom centre, the line's
anchor, for the top-down street; the whole vehicle for the freeway, seen from behind).

- ``samples/traffic-street-topdown.mp4`` (shipped; 480 frames, 23.98 fps): column x = 320,
  rows 165–340 — the two lower lanes, left to right: 10 + 7 = 17. The upper lane's 10th, a
  red car, reaches the column only in the clip's last frames (its streak is cut by the end
  of the clip): in the last frame its body spans x ≈ 265–410, so its middle (≈ 338) is past
  the column, which it crossed about two frames before the end. It was first counted out
  (16); the last frame, measured, puts it in.
- ``../shared/datasets/scenes/traffic-freeway-overpass.mp4`` (evaluation only, never
  committed; 984 frames, 29.97 fps): row y = 200, columns 90–600 — the five lanes moving
  away: 18 + 10 + 7 + 17 = 52 in the four quarters of the clip.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "engines" / "nanodet-g-416.onnx"
SCENES = ROOT.parent / "shared" / "datasets" / "scenes"


@dataclass(frozen=True)
class Clip:
    camera: str
    path: Path
    line: list[list[float]]
    direction: str  # the "in" direction, the one the vehicles take
    truth: int


CLIPS = [
    Clip(
        "street",
        ROOT / "samples" / "traffic-street-topdown.mp4",
        [[320, 165], [320, 340]],
        "left_to_right",
        17,
    ),
    Clip(
        "freeway",
        SCENES / "traffic-freeway-overpass.mp4",
        [[90, 200], [600, 200]],
        "bottom_to_top",
        52,
    ),
]


def config(clip: Clip, journal: Path, precision: str = "auto") -> dict[str, Any]:
    return {
        "device_id": "bench",
        "journal": {"path": str(journal)},
        "models": {"coco": {"path": str(MODEL), "precision": precision}},
        "cameras": {
            clip.camera: {
                "source": {"uri": str(clip.path), "realtime": False},
                "detect": {"model": "coco", "classes": ["vehicle"]},
                "lines": {
                    "count": {"points": clip.line, "directions": {"in": clip.direction}},
                },
            }
        },
    }


def count(clip: Clip, tmp: Path, sets: list[str], precision: str) -> dict[str, int]:
    path = tmp / f"{clip.camera}.yaml"
    path.write_text(yaml.safe_dump(config(clip, tmp / f"{clip.camera}.db", precision)))
    scoped = [f"cameras.{clip.camera}.{s}" for s in sets]
    args = [a for s in ["mqtt=null", *scoped] for a in ("--set", s)]
    proc = subprocess.run(
        [sys.executable, "-m", "edged", "run", str(path), "--print-events", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{clip.camera}: edged run failed:\n{proc.stderr[-2000:]}")
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    crossed = collections.Counter(e["direction"] for e in events if e["kind"] == "line_crossing")
    return {"in": crossed["in"], "out": crossed["out"]}


def slit(clip: Clip, out: Path) -> Path:
    """The slit-scan image of the clip's line (time runs along the other axis)."""
    import av
    import cv2
    import numpy as np

    (x1, y1), (x2, y2) = clip.line
    strips = []
    with av.open(str(clip.path)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="bgr24")
            if x1 == x2:
                strips.append(image[int(y1) : int(y2), int(x1)])
            else:
                strips.append(image[int(y1), int(x1) : int(x2)])
    picture = np.stack(strips, axis=1 if x1 == x2 else 0)
    path = out / f"{clip.camera}-slit.png"
    cv2.imwrite(str(path), picture)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--slits", type=Path, help="write each clip's slit-scan image here")
    parser.add_argument(
        "--set", action="append", default=[], help="a camera override: detect.min_score=0.35"
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "int8"),
        default="auto",
        help="the model's precision (auto, the default: INT8 where the CPU runs it faster)",
    )
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for clip in CLIPS:
            if not clip.path.is_file():
                print(f"{clip.camera}: {clip.path} not here, skipped", file=sys.stderr)
                continue
            if args.slits is not None:
                args.slits.mkdir(parents=True, exist_ok=True)
                print(f"{clip.camera}: {slit(clip, args.slits)}", file=sys.stderr)
            got = count(clip, Path(tmp), args.set, args.precision)
            error = 100.0 * (got["in"] + got["out"] - clip.truth) / clip.truth
            rows.append({"clip": clip.camera, "truth": clip.truth, **got, "error_pct": error})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'clip':10} {'truth':>6} {'in':>5} {'out':>5} {'error':>8}")
    for r in rows:
        print(f"{r['clip']:10} {r['truth']:6d} {r['in']:5d} {r['out']:5d} {r['error_pct']:+7.1f}%")


if __name__ == "__main__":
    main()
