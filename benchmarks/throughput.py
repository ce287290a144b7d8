"""Pipeline FPS ÷ detector-alone FPS on the sample clip, measured in one run.

    python -m benchmarks.throughput [--threads 2] [--repeat 3] [--json]

Detector alone: decode is excluded; the same frames go through preprocess → ONNX Runtime →
decode/NMS in a loop. Pipeline: the daemon's own threads (file source as fast as possible,
inference worker, tracker, zones, lines, journal), no broker. Both use the same model,
thread count and frames; the ratio is what the pipeline costs on top of detection.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import cv2

from edged.config import load
from edged.config.model import ModelConfig
from edged.models.detector import DetectRequest, load_detector
from edged.outputs.journal import Journal
from edged.outputs.sink import EventSink
from edged.pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "configs" / "demo.yaml"
CLIP = ROOT / "samples" / "vtest.mp4"


def read_frames() -> list:
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            return frames
        frames.append(image)


def detector_fps(threads: int, frames: list) -> float:
    det = load_detector(ModelConfig(path=ROOT / "engines" / "nanodet-g-416.onnx", threads=threads))
    det.detect([DetectRequest(f, 0.35, 0.5) for f in frames[:5]])  # warm-up
    start = time.perf_counter()
    for image in frames:
        det.detect([DetectRequest(image, 0.35, 0.5)])
    return len(frames) / (time.perf_counter() - start)


def pipeline_fps(threads: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        config = load(
            DEMO,
            overrides=[
                "cameras.walkway.source.realtime=false",
                f"models.coco.threads={threads}",
                f"journal.path={tmp}/events.db",
            ],
        )
        config = config.model_copy(update={"mqtt": None})
        journal = Journal(config.journal)
        sink = EventSink(journal)
        pipeline = Pipeline(config, sink)
        start = time.perf_counter()
        pipeline.start()
        pipeline.wait(600)
        elapsed = time.perf_counter() - start
        processed = pipeline.stats()["walkway"].processed
        pipeline.stop()
        journal.close()
        return processed / elapsed, sink.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    frames = read_frames()
    rows = []
    for _ in range(args.repeat):
        det = detector_fps(args.threads, frames)
        pipe, events = pipeline_fps(args.threads)
        rows.append(
            {"detector_fps": det, "pipeline_fps": pipe, "ratio": pipe / det, "events": events}
        )
    best = max(rows, key=lambda r: r["ratio"])
    result = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "threads": args.threads,
        "frames": len(frames),
        "runs": rows,
        "median_ratio": sorted(r["ratio"] for r in rows)[len(rows) // 2],
        "best": best,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'run':>3} {'detector fps':>13} {'pipeline fps':>13} {'ratio':>6} {'events':>7}")
    for i, r in enumerate(rows):
        print(
            f"{i:>3} {r['detector_fps']:>13.1f} {r['pipeline_fps']:>13.1f} "
            f"{r['ratio']:>6.3f} {r['events']:>7}"
        )
    ratio = result["median_ratio"]
    print(f"median ratio {ratio:.3f} ({args.threads} ORT threads, {len(frames)} frames)")


if __name__ == "__main__":
    main()
