"""How the detector uses the cores best: intra-op threads in one session against frames in
flight on several one-thread sessions, and batching, measured in one run.

    python -m benchmarks.cores [--cores 2] [--seconds 4] [--rounds 3] [--json]

For FP32 and the shipped INT8 variant, on real preprocessed frames of the sample clip:
  - ``intra``: one session with ``--cores`` intra-op threads, one frame per run (today's
    default for one camera);
  - ``batch``: the same session, ``--cores`` frames per run (several cameras batched);
  - ``sessions``: ``--cores`` sessions of one thread each, one Python thread per session,
    each running one frame at a time (ONNX Runtime releases the GIL in ``run``), as if
    frames of one or several cameras were in flight at once.
Frames per second over ``--seconds``, rounds interleaved so drift hits all alike; medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from edged.config.model import ModelConfig
from edged.models.detector import load_detector
from tests.paths import CLIP, MODEL

INT8 = MODEL.with_name("nanodet-g-416-int8.onnx")


def session(path: Path, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def inputs(n: int) -> np.ndarray:
    det = load_detector(ModelConfig(path=MODEL, backend="cpu", precision="fp32"))
    cap = cv2.VideoCapture(str(CLIP))
    out = np.empty((n, *det.adapter.input_shape), np.float32)
    for i in range(n):
        ok, frame = cap.read()
        assert ok
        det.adapter.preprocess(frame, out[i])
    cap.release()
    return out


def run_for(seconds: float, step: Callable[[], int]) -> float:
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        done += step()
    return done / (time.perf_counter() - start)


def intra(path: Path, cores: int, x: np.ndarray, seconds: float, batch: int) -> float:
    s = session(path, cores)
    name = s.get_inputs()[0].name
    feed = {name: x[:batch]}
    s.run(None, feed)

    def step() -> int:
        s.run(None, feed)
        return batch

    return run_for(seconds, step)


def sessions(path: Path, cores: int, x: np.ndarray, seconds: float) -> float:
    ss = [session(path, 1) for _ in range(cores)]
    name = ss[0].get_inputs()[0].name
    for s in ss:
        s.run(None, {name: x[:1]})
    counts = [0] * cores
    start = time.perf_counter()

    def work(k: int) -> None:
        feed = {name: x[k : k + 1]}
        while time.perf_counter() - start < seconds:
            ss[k].run(None, feed)
            counts[k] += 1

    threads = [threading.Thread(target=work, args=(k,)) for k in range(cores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    x = inputs(max(args.cores, 2))
    results: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):
        for label, path in (("fp32", MODEL), ("int8", INT8)):
            r = results.setdefault(label, {"intra": [], "batch": [], "sessions": []})
            r["intra"].append(intra(path, args.cores, x, args.seconds, 1))
            r["batch"].append(intra(path, args.cores, x, args.seconds, args.cores))
            r["sessions"].append(sessions(path, args.cores, x, args.seconds))
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in results.items()}
    if args.json:
        print(json.dumps(med, indent=2))
        return
    print(f"frames/s on {args.cores} cores (medians of {args.rounds} interleaved rounds)")
    print(f"{'model':6} {'intra ×1':>10} {'batch ×' + str(args.cores):>10} {'sessions':>10}")
    for label, m in med.items():
        print(f"{label:6} {m['intra']:10.1f} {m['batch']:10.1f} {m['sessions']:10.1f}")


if __name__ == "__main__":
    main()
