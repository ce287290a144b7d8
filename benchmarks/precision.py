"""FP32 vs INT8 vs FP16 of the shipped detector: latency and person AP50, in one run.

    python -m benchmarks.precision [--json] [--data ../shared/datasets/mot15]
        [--method minmax|entropy|percentile|auto] [--extra entropy,percentile,minmax-head]
        [--threads 1,2] [--batches 1,2,4,8] [--rounds 5] [--keep DIR]

Models. The shipped FP32 model has a dynamic batch (``engines/make_variants.sh``). ``int8``
(``quantize_int8``) and FP16 (``convert_fp16``) are made from it here, so every variant runs
at batch 1 and above; ``int8`` is calibrated on 100 frames of the scene clips whose licences
allow it (traffic-street-topdown, shelf-bottles; the freeway clip is evaluation-only) plus
the first 50 frames of each sequence, as MEASURED.md did. ``int8-shipped`` is the shipped
``engines/nanodet-g-416-int8.onnx`` (calibrated on the shipped samples only, head
convolutions FP32), what ``precision: auto`` runs on a CPU with VNNI.

Latency: median wall time of ``session.run`` alone on real preprocessed frames, ONNX Runtime
CPU EP set up as the daemon does (intra-op threads as given, one inter-op thread, spinning
off, all graph optimisations), in ms per frame (per call ÷ batch). Variants are timed in
interleaved blocks (``--rounds`` rounds of 10 runs each, the first of each block dropped) so
that drift on a shared machine hits them alike; compare ratios within one run.

Accuracy: person AP50 on MOTChallenge 2015 sequences (see ``benchmarks.mot15``), detector at
score ≥ 0.05, NMS 0.5, 2 threads. ``--decode person`` (default) decodes the person scores
only, as the MEASURED.md reference did; ``all`` decodes all 80 classes as the daemon does and
keeps people, where the adapter's cap of 1000 candidates per frame (every frame here has
1800+ class scores ≥ 0.05) drops some low-score people. Ground-truth boxes are taken as
written (``--gt-shift`` moves MOTChallenge's 1-based pixels to 0-based, −0.3…+0.3 pt).
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from benchmarks import mot15
from edged.models.detector import DetectRequest
from edged.tools.calibration import collect_frames
from edged.tools.fp16 import convert_fp16
from edged.tools.int8 import quantize_int8
from edged.tools.model_files import load_cpu_detector

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "engines" / "nanodet-g-416.onnx"
DATA = ROOT.parent / "shared" / "datasets" / "mot15"
SCENES = ROOT.parent / "shared" / "datasets" / "scenes"
CALIBRATION_SCENES = ("traffic-street-topdown.mp4", "shelf-bottles.mp4")
REFERENCE_AP50 = {  # MEASURED.md, FP32
    "PETS09-S2L1": 0.904,
    "TUD-Campus": 0.654,
    "TUD-Stadtmitte": 0.769,
    "pooled": 0.862,
}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_fp16")
                return [f for f in wanted if f in flags]
    except OSError:
        pass
    return []


# ---------------------------------------------------------------------------- latency


def session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def time_variants(
    paths: dict[str, Path],
    tensors: np.ndarray,
    threads: int,
    batches: dict[str, list[int]],
    rounds: int,
    block: int = 10,
) -> dict[str, dict[int, float]]:
    """Median ms per frame of ``session.run`` per variant and batch size, interleaved."""
    sessions = {name: session(p, threads) for name, p in paths.items()}
    input_name = next(iter(sessions.values())).get_inputs()[0].name
    samples: dict[str, dict[int, list[float]]] = {n: {} for n in paths}
    all_batches = sorted({b for bs in batches.values() for b in bs})
    for b in all_batches:
        feed = {input_name: np.ascontiguousarray(tensors[:b])}
        names = [n for n in paths if b in batches[n]]
        for name in names:  # warm-up: first runs allocate and pick kernels
            for _ in range(3):
                sessions[name].run(None, feed)
        for _ in range(rounds):
            for name in names:
                times = []
                for _ in range(block):
                    t0 = time.perf_counter()
                    sessions[name].run(None, feed)
                    times.append(time.perf_counter() - t0)
                samples[name].setdefault(b, []).extend(times[1:])
    return {
        name: {b: 1000 * statistics.median(t) / b for b, t in per.items()}
        for name, per in samples.items()
    }


# ---------------------------------------------------------------------------- accuracy


class PersonOnly:
    """An engine wrapper zeroing every class score but the person's, so the adapter decodes
    people only (score outputs are those whose last axis has one entry per label)."""

    def __init__(self, engine: Any, labels: int, person: int) -> None:
        self.engine, self.labels, self.person = engine, labels, person

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.engine.run(feeds)
        for name, value in out.items():
            if value.ndim >= 2 and value.shape[-1] == self.labels:
                kept = value[..., self.person].copy()
                value = np.zeros_like(value)
                value[..., self.person] = kept
                out[name] = value
        return out


def person_detections(
    model: Path, sequences: list[mot15.MotSequence], decode: str, threads: int = 2
) -> dict[str, list[mot15.FrameDetections]]:
    det = load_cpu_detector(model, threads)
    person = det.labels.index("person")
    if decode == "person":
        det.engine = PersonOnly(det.engine, len(det.labels), person)
    result = {}
    for seq in sequences:
        frames = []
        for image in seq.frames():
            d = det.detect([DetectRequest(image, 0.05, 0.5)])[0].detections
            keep = d.class_id == person
            frames.append(mot15.FrameDetections(d.xyxy[keep], d.score[keep]))
        result[seq.name] = frames
    return result


def ap_table(
    sequences: list[mot15.MotSequence], dets: dict[str, list[mot15.FrameDetections]]
) -> dict[str, float]:
    table = {s.name: mot15.ap50([(s, dets[s.name])]) for s in sequences}
    table["pooled"] = mot15.ap50([(s, dets[s.name]) for s in sequences])
    return table


# ---------------------------------------------------------------------------- main


def calibration_frames(sequences: list[mot15.MotSequence], scenes: int, per_seq: int) -> list:
    clips = [str(SCENES / c) for c in CALIBRATION_SCENES if (SCENES / c).is_file()]
    frames = collect_frames(clips, scenes) if clips and scenes else []
    for seq in sequences:
        frames.extend(seq.frames(per_seq))
    return frames


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    sequences = mot15.load_sequences(args.data, shift=-1.0 if args.gt_shift else 0.0)
    notes: list[str] = []

    dynamic = MODEL
    frames = calibration_frames(sequences, args.scene_frames, args.seq_frames)
    int8 = quantize_int8(dynamic, work / "nanodet-g-416-int8.onnx", frames, method=args.method)
    fp16 = convert_fp16(dynamic, work / "nanodet-g-416-fp16.onnx", frames=frames[::5])
    reports = {"int8": int8, "fp16": fp16}
    variants: dict[str, Path] = {
        "fp32": MODEL,
        "int8": int8.output,
        "int8-shipped": MODEL.with_name("nanodet-g-416-int8.onnx"),
        "fp16": fp16.output,
    }
    for extra in args.extra:
        method, _, option = extra.partition("-")
        r = quantize_int8(
            dynamic,
            work / f"nanodet-g-416-int8-{extra}.onnx",
            frames,
            method=method,
            keep_head_fp32=option == "head",
        )
        reports[f"int8-{extra}"] = r
        variants[f"int8-{extra}"] = r.output

    # latency: the main variants at every batch, extras at batch 1
    probe = load_cpu_detector(MODEL, 1)
    tensors = np.empty((max(args.batches), *probe.adapter.input_shape), np.float32)
    pool = list(itertools.islice(sequences[0].frames(), 0, 400, 400 // len(tensors)))
    for i in range(len(tensors)):
        probe.adapter.preprocess(pool[i % len(pool)], tensors[i])
    batches = {n: [1] for n in variants}
    for n in ("fp32", "int8", "int8-shipped", "fp16"):
        batches[n] = list(args.batches)
    latency = {t: time_variants(variants, tensors, t, batches, args.rounds) for t in args.threads}

    ap = {}
    for name in ["fp32", "int8", "int8-shipped", "fp16", *(f"int8-{e}" for e in args.extra)]:
        ap[name] = ap_table(sequences, person_detections(variants[name], sequences, args.decode))

    result: dict[str, Any] = {
        "machine": {
            "cpu": cpu_name(),
            "flags": cpu_flags(),
            "onnxruntime": ort.__version__,
            "python": platform.python_version(),
        },
        "settings": {
            "threads": args.threads,
            "batches": args.batches,
            "rounds": args.rounds,
            "method": args.method,
            "decode": args.decode,
            "gt_shift": args.gt_shift,
            "calibration_frames": len(frames),
            "data": str(args.data),
        },
        "variants": {},
        "reference_ap50": REFERENCE_AP50,
        "reports": {k: r.to_dict() for k, r in reports.items()},
        "notes": notes,
    }
    for name, path in variants.items():
        lat = {str(t): {str(b): round(v, 3) for b, v in latency[t][name].items()} for t in latency}
        best = {str(t): min(latency[t][name].items(), key=lambda kv: kv[1]) for t in latency}
        result["variants"][name] = {
            "file": path.name,
            "bytes": path.stat().st_size,
            "latency_ms_per_frame": lat,
            "best_batch": {t: {"batch": b, "ms": round(v, 3)} for t, (b, v) in best.items()},
            "speedup_vs_fp32_batch1": {
                str(t): round(latency[t]["fp32"][1] / latency[t][name][1], 3) for t in latency
            },
            "ap50": {k: round(v, 4) for k, v in ap[name].items()} if name in ap else None,
        }
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def table(result: dict[str, Any]) -> str:
    threads = result["settings"]["threads"]
    seqs = list(next(v["ap50"] for v in result["variants"].values() if v["ap50"]).keys())
    head = ["variant", "MB"]
    for t in threads:
        head += [f"b1 {t}T ms", f"×FP32 {t}T", f"best {t}T ms/fr"]
    head += [s.replace("TUD-", "") for s in seqs]
    rows = [head]
    for name, v in result["variants"].items():
        row = [name, f"{v['bytes'] / 1e6:.1f}"]
        for t in threads:
            lat = v["latency_ms_per_frame"][str(t)]
            best = v["best_batch"][str(t)]
            row += [
                f"{lat['1']:.2f}",
                f"{v['speedup_vs_fp32_batch1'][str(t)]:.2f}",
                f"{best['ms']:.2f} (b{best['batch']})" if len(lat) > 1 else "-",
            ]
        row += [f"{v['ap50'][s]:.3f}" if v["ap50"] else "-" for s in seqs]
        rows.append(row)
    ref = result["reference_ap50"]
    rows.append(
        [
            "MEASURED.md fp32",
            "",
            *[""] * (3 * len(threads)),
            *(f"{ref[s]:.3f}" if s in ref else "" for s in seqs),
        ]
    )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [
        "  ".join(
            c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))
        )
        for r in rows
    ]
    m = result["machine"]
    lines.insert(0, f"{m['cpu']} ({', '.join(m['flags'])}), ONNX Runtime {m['onnxruntime']}")
    lines.append(
        "ms: median session.run per frame; ×FP32: FP32 batch-1 time ÷ this one's; "
        "best: lowest ms/frame over batch sizes"
    )
    for name, r in result["reports"].items():
        if name == "int8" and len(r["trials"]) > 1:
            lines.append(f"auto picked {r['method']}:")
            for method, a in r["trials"].items():
                f1 = 2 * a["precision"] * a["recall"] / max(a["precision"] + a["recall"], 1e-9)
                total = f1 - (1 - a["mean_best_iou"]) - a["mean_abs_score_delta"]
                lines.append(
                    f"  {method:<10} agreement {total:.3f} = F1 {f1:.3f} (recall "
                    f"{a['recall']:.3f}, precision {a['precision']:.3f}) − (1 − mean best IoU "
                    f"{a['mean_best_iou']:.3f}) − |score Δ| {a['mean_abs_score_delta']:.4f} "
                    f"on {a['frames']} held-out frames"
                )
    lines.append(f"took {result['seconds']:.0f} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--data", type=Path, default=DATA, help="MOT15 sequences")
    parser.add_argument("--method", default="minmax", help="INT8 calibration method or auto")
    parser.add_argument(
        "--extra",
        type=lambda s: [x for x in s.split(",") if x],
        default=[],
        help="more INT8 variants: entropy, percentile, minmax-head (head convs kept FP32)",
    )
    parser.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument(
        "--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 8]
    )
    parser.add_argument("--rounds", type=int, default=5, help="timing rounds of 10 runs")
    parser.add_argument("--decode", choices=("person", "all"), default="person")
    parser.add_argument("--gt-shift", action="store_true", help="1-based → 0-based GT boxes")
    parser.add_argument("--scene-frames", type=int, default=100)
    parser.add_argument("--seq-frames", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="keep the models made in this directory")
    args = parser.parse_args(argv)
    if 1 not in args.batches:
        args.batches = [1, *args.batches]
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = run(args, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="edged-precision-") as tmp:
            result = run(args, Path(tmp))
    print(json.dumps(result, indent=2) if args.json else table(result))


if __name__ == "__main__":
    main()
