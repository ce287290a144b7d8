"""The daemon's pipeline measured in one run: its cost over the detector, frame-to-event
latency through a real broker, many cameras, a hand-written supervision + trackers peer,
and memory over a long run.

    python -m benchmarks.pipeline [--json] [--clip PATH] [--threads 2] [--rounds 9]
        [--seconds 5] [--latency-seconds 25] [--cameras 1,2,4,8] [--memory-frames 10000]
        [--only throughput,latency,cameras,memory,idle] [--idle-seconds 20] [--idle-cameras 1,4]

throughput: one camera, the clip looped as fast as possible (``realtime: false``). Three
contenders run in turn within each round, so drift on a shared machine hits all alike:
  - detector alone: ``Detector.detect`` (preprocess → ONNX Runtime → decode/NMS) on frames
    decoded beforehand, one at a time, cycling through the clip;
  - edged: the daemon's own threads (file source, inference worker, tracker, zones, lines,
    SQLite journal; no broker), on the same FP32 model file, thread count and clip;
  - edged with its defaults: the same with ``precision: auto`` (the INT8 variant on a CPU
    with VNNI), what a user gets;
  - peer: what a user writes with supervision and roboflow ``trackers`` — one loop: cv2 decode
    → the same detector → ``ByteTrackTracker`` → ``sv.PolygonZone`` and ``sv.LineZone`` →
    one JSON line per frame to a file.
  Each is timed over ``--seconds`` after a warm-up of 20 frames (steady state: model load,
  first run and decoder open excluded). Reported: medians over rounds of FPS, of this
  process's CPU time per frame (all threads; steadier than FPS when others load the
  machine), and of the per-round ratios edged ÷ detector (target ≥ 0.95), edged ÷ peer
  (target ≥ 1.3) and edged with its defaults ÷ peer (target ≥ 2.0), with the 1-minute load
  average seen. The detector alone and the peer run FP32.
latency: the clip at its own rate (``realtime: true``) with the demo's zone and line, a
  Mosquitto started here, QoS 1: capture time of the frame an event is about (``frame_ts``)
  → the broker's PUBACK, over every event kind except ``line_crossing`` (whose ``frame_ts``
  is the crossing, confirmed ``cancel_s`` later by design). Target: p99 ≤ 2 × the
  detector's median latency + 20 ms, the detector's latency being the inference p50 of the
  same run (``detector_p50_ms``, from the throughput rounds, is kept for reference). Run
  twice: with Mosquitto's ``set_tcp_nodelay true`` and with its default (Nagle on), where
  the last PUBACK of a burst can wait for edged's delayed ACK (≈ 40 ms).
cameras: N copies of the clip at their own rate, ``detect_fps: 5``: processed FPS per camera,
  frames dropped, mean batch size, and this process's CPU use (psutil) over the window.
memory: 1 and 8 cameras (``--memory-cameras``) looping the clip as fast as possible for
  ``--memory-frames`` frames of all of them; resident memory after a warm-up of 300 frames
  and then every 1000 frames, and its trend from the 2000th frame on (least squares, MiB per
  10 000 frames): glibc's malloc arenas fill to their working size over the first thousands
  of frames, then resident memory moves within a band (8 cameras, 30 000 frames: 404 MiB
  after 300, 406–427 from 2 000 on).
idle (``--only idle``; motion gating): a real still scene — the still stretch of
  ``samples/shelf-bottles.mp4`` (2.85–4.96 s) forward and back, H.264 at 30 fps — looped at its
  rate on 1 camera with the gate on and off, on with ``detect_fps: 10``, and off with
  ``detect_fps`` at the keep-alive rate (every frame decoded, one detected every 2 s: the floor
  no gate can go below), and on ``--idle-cameras`` with it on: this process's CPU per camera
  in % of one core over ``--idle-seconds``, frames detected and skipped per second, the
  motion measure's cost. Then the still scene for 4.3, 6.4 and 8.5 s
  followed by a hand reaching in: how many frames after the first moving one the detector
  takes a frame, and the ms from that frame's capture to the detector taking it.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import psutil

from edged.config import Config
from edged.config.camera import MotionConfig
from edged.config.model import ModelConfig
from edged.models.detector import Detector, DetectRequest, load_detector
from edged.outputs.journal import Journal
from edged.outputs.mqtt import MqttPublisher
from edged.outputs.sink import EventSink
from edged.pipeline import Pipeline

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "engines" / "nanodet-g-416.onnx"
SAMPLE = ROOT / "samples" / "vtest.mp4"
# the same footage, 795 frames instead of 150 (evaluation data beside the checkout)
LONG_CLIP = ROOT.parent / "shared" / "datasets" / "mot15" / "PETS09-S2L1" / "vtest.avi"
MIN_SCORE = 0.35
CLASSES = ["person"]
# the demo's geometry (relative): the paved area and the line across the walkway
ZONE = [[0.45, 0.38], [0.75, 0.38], [0.75, 0.62], [0.45, 0.62]]
LINE = [[0.55, 0.58], [1.0, 0.58]]
WARMUP = 20
TARGETS = {"edged_over_detector": 0.95, "edged_over_peer": 1.3, "default_over_peer": 2.0}


def camera(clip: Path, **source: Any) -> dict[str, Any]:
    return {
        "source": {"uri": str(clip), **source},
        "detect": {"model": "coco", "classes": CLASSES, "min_score": MIN_SCORE},
        "zones": {"plaza": {"polygon": ZONE, "anchor": "bottom_center"}},
        "lines": {"walkway": {"points": LINE, "directions": {"in": "bottom_to_top"}}},
    }


def make_config(
    tmp: Path, threads: int, cameras: dict[str, Any], precision: str = "auto", **extra: Any
) -> Config:
    """The daemon's config; ``precision`` auto is the default a user gets."""
    model = {"path": str(MODEL), "backend": "cpu", "threads": threads, "precision": precision}
    return Config.model_validate(
        {
            "device_id": "bench",
            "journal": {"path": str(tmp / f"events-{time.monotonic_ns()}.db")},
            "models": {"coco": model},
            "cameras": cameras,
            **extra,
        }
    )


@contextlib.contextmanager
def running(config: Config, publisher: bool = False) -> Iterator[tuple[Pipeline, Any]]:
    """The daemon's pipeline (and publisher) started; stopped and closed on exit."""
    journal = Journal(config.journal)
    sink = EventSink(journal)
    pub = None
    if publisher:
        assert config.mqtt is not None
        pub = MqttPublisher(config.mqtt, config.device_id, journal)
        pub.start()
        if not pub.wait_connected(10):
            raise RuntimeError("the benchmark's broker did not accept the publisher")
    pipeline = Pipeline(config, sink)
    pipeline.start()
    try:
        yield pipeline, pub
    finally:
        pipeline.stop(5)
        if pub is not None:
            pub.stop(drain_timeout=5)
        journal.close()


def wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"benchmark: {what} not within {timeout} s")
        time.sleep(0.01)


# -- throughput ----------------------------------------------------------------------------


def decode_all(clip: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    return frames, fps


def detector_alone(det: Detector, frames: list[np.ndarray], seconds: float) -> dict[str, float]:
    for image in frames[:WARMUP]:
        det.detect([DetectRequest(image, MIN_SCORE, 0.5)])
    times = []
    n, start, cpu = 0, time.perf_counter(), cpu_seconds()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        det.detect([DetectRequest(frames[n % len(frames)], MIN_SCORE, 0.5)])
        times.append(time.perf_counter() - t0)
        n += 1
    return {
        "fps": n / (time.perf_counter() - start),
        "p50_ms": 1000 * statistics.median(times),
        "p99_ms": 1000 * float(np.percentile(times, 99)),
        "cpu_ms_per_frame": 1000 * (cpu_seconds() - cpu) / n,
    }


def cpu_seconds() -> float:
    """This process's CPU time, all threads."""
    t = psutil.Process().cpu_times()
    return float(t.user + t.system)


def edged_fps(
    tmp: Path, clip: Path, threads: int, seconds: float, precision: str = "auto"
) -> dict[str, float]:
    cams = {"cam": camera(clip, realtime=False, loop=True)}
    config = make_config(tmp, threads, cams, precision)
    with running(config) as (pipeline, _):
        cam = pipeline.cameras["cam"]
        wait(lambda: cam.processed >= WARMUP, 60, "warm-up")
        n0, t0, cpu0 = cam.processed, time.perf_counter(), cpu_seconds()
        time.sleep(seconds)
        n1, t1, cpu1 = cam.processed, time.perf_counter(), cpu_seconds()
    return {
        "fps": (n1 - n0) / (t1 - t0),
        "cpu_cores": (cpu1 - cpu0) / (t1 - t0),
        "cpu_ms_per_frame": 1000 * (cpu1 - cpu0) / max(n1 - n0, 1),
    }


def peer_fps(det: Detector, clip: Path, seconds: float, out: Path) -> dict[str, float | int]:
    """A single loop, as the supervision and trackers docs put one together."""
    import supervision as sv
    from trackers import ByteTrackTracker

    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    person = det.labels.index("person")
    tracker = ByteTrackTracker(frame_rate=fps)
    zone = sv.PolygonZone(
        polygon=(np.array(ZONE) * [w, h]).astype(np.int64),
        triggering_anchors=(sv.Position.BOTTOM_CENTER,),
    )
    (x0, y0), (x1, y1) = (np.array(LINE) * [w, h]).tolist()
    line = sv.LineZone(
        start=sv.Point(x0, y0),
        end=sv.Point(x1, y1),
        triggering_anchors=(sv.Position.BOTTOM_CENTER,),
    )
    n, frame, start, cpu = 0, 0, None, 0.0
    with open(out, "w") as sink:
        while start is None or time.perf_counter() - start < seconds:
            ok, image = cap.read()
            if not ok:  # loop the clip, like the pipeline does
                cap.release()
                cap = cv2.VideoCapture(str(clip))
                continue
            found = det.detect([DetectRequest(image, MIN_SCORE, 0.5)])[0].detections
            keep = found.class_id == person
            detections = sv.Detections(
                xyxy=found.xyxy[keep],
                confidence=found.score[keep],
                class_id=found.class_id[keep].astype(int),
            )
            tracked = tracker.update(detections)
            tracked = tracked[tracked.tracker_id >= 0]
            inside = zone.trigger(tracked)
            crossed_in, crossed_out = line.trigger(tracked)
            record = {
                "frame": frame,
                "ts": time.time(),
                "tracks": [
                    {"id": int(t), "box": [round(float(v), 1) for v in b]}
                    for t, b in zip(tracked.tracker_id, tracked.xyxy, strict=True)
                ],
                "zone": {"plaza": int(zone.current_count), "inside": int(inside.sum())},
                "line": {
                    "in": tracked.tracker_id[crossed_in].tolist(),
                    "out": tracked.tracker_id[crossed_out].tolist(),
                    "in_total": line.in_count,
                    "out_total": line.out_count,
                },
            }
            sink.write(json.dumps(record) + "\n")
            n += 1
            frame += 1
            if start is None and n == WARMUP:
                n, start, cpu = 0, time.perf_counter(), cpu_seconds()
    cap.release()
    return {
        "fps": n / (time.perf_counter() - start),
        "cpu_ms_per_frame": 1000 * (cpu_seconds() - cpu) / max(n, 1),
        "crossings": line.in_count + line.out_count,
    }


def throughput(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    frames, clip_fps = decode_all(args.clip)
    # the detector alone and the peer run FP32, as a hand-rolled pipeline would; edged runs
    # FP32 (its overhead over the same detector) and its default (what a user gets)
    det = load_detector(
        ModelConfig(path=MODEL, backend="cpu", threads=args.threads, precision="fp32")
    )
    rounds = []
    for r in range(args.rounds):
        alone = detector_alone(det, frames, args.seconds)
        edged = edged_fps(tmp, args.clip, args.threads, args.seconds, "fp32")
        default = edged_fps(tmp, args.clip, args.threads, args.seconds)
        peer = peer_fps(det, args.clip, args.seconds, tmp / "peer.jsonl")
        row = {
            "detector_fps": alone["fps"],
            "detector_p50_ms": alone["p50_ms"],
            "detector_p99_ms": alone["p99_ms"],
            "detector_cpu_ms": alone["cpu_ms_per_frame"],
            "edged_fps": edged["fps"],
            "edged_cpu_cores": edged["cpu_cores"],
            "edged_cpu_ms": edged["cpu_ms_per_frame"],
            "default_fps": default["fps"],
            "default_cpu_ms": default["cpu_ms_per_frame"],
            "peer_fps": peer["fps"],
            "peer_cpu_ms": peer["cpu_ms_per_frame"],
            "edged_over_detector": edged["fps"] / alone["fps"],
            "edged_over_peer": edged["fps"] / peer["fps"],
            "default_over_peer": default["fps"] / peer["fps"],
            "load_1min": os.getloadavg()[0],
        }
        rounds.append(row)
        progress(f"round {r}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    return {"frames_in_clip": len(frames), "clip_fps": clip_fps, "rounds": rounds, "median": med}


# -- latency -------------------------------------------------------------------------------


class Mosquitto:
    """A broker of the benchmark's own on a free localhost port."""

    def __init__(self, workdir: Path, nodelay: bool) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.access(binary, os.X_OK):
            raise RuntimeError("the latency benchmark needs mosquitto: apt-get install mosquitto")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"set_tcp_nodelay {'true' if nodelay else 'false'}\n"
        )
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

        def listening() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return True
            return False

        wait(listening, 10, "mosquitto listening")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)


def latency(
    args: argparse.Namespace, tmp: Path, detector_ms: float, nodelay: bool
) -> dict[str, Any]:
    broker = Mosquitto(tmp, nodelay)
    try:
        config = make_config(
            tmp,
            args.threads,
            {"cam": camera(args.clip, realtime=True, loop=True)},
            mqtt={"host": "127.0.0.1", "port": broker.port, "qos": 1},
        )
        with running(config, publisher=True) as (pipeline, pub):
            time.sleep(args.latency_seconds)
            stages = {
                stage: meter.summary() for stage, meter in pipeline.cameras["cam"].stages.items()
            }
            fps = pipeline.cameras["cam"].process_rate.rate()
            ages = {k: v.samples() for k, v in list(pub.event_latency.items())}
            publish = pub.ack_latency.summary()
    finally:
        broker.stop()
    used = np.concatenate([v for k, v in ages.items() if k != "line_crossing"])
    p50, p99 = (float(x) * 1000 for x in np.percentile(used, [50, 99]))
    # the detector's latency in this very run: the machine's load changes by the minute
    inference = stages["inference"]
    assert inference is not None
    target = 2 * float(inference["p50_ms"]) + 20
    return {
        "broker_tcp_nodelay": nodelay,
        "events": len(used),
        "kinds": {k: len(v) for k, v in sorted(ages.items())},
        "p50_ms": p50,
        "p99_ms": p99,
        "max_ms": float(used.max()) * 1000,
        "detector_p50_ms": detector_ms,
        "target_p99_ms": target,
        "fps": fps,
        "publish_ack": publish,
        "stages": stages,
    }


# -- many cameras --------------------------------------------------------------------------


def cameras(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    for n in args.cameras:
        cams = {
            f"cam{i}": camera(args.clip, realtime=True, loop=True, detect_fps=5) for i in range(n)
        }
        config = make_config(tmp, args.threads, cams)
        with running(config) as (pipeline, _):
            runtimes = list(pipeline.cameras.values())
            wait(lambda rt=runtimes: all(c.processed >= 5 for c in rt), 60, "warm-up")
            worker = next(iter(pipeline.workers.values()))
            proc = psutil.Process()
            n0 = [c.processed for c in runtimes]
            d0 = [c.slot.dropped for c in runtimes]
            b0 = dict(worker.batch_sizes)
            cpu0, t0 = proc.cpu_times(), time.perf_counter()
            time.sleep(args.camera_seconds)
            cpu1, t1 = proc.cpu_times(), time.perf_counter()
            n1 = [c.processed for c in runtimes]
            d1 = [c.slot.dropped for c in runtimes]
            b1 = dict(worker.batch_sizes)
        dt = t1 - t0
        fps = [(b - a) / dt for a, b in zip(n0, n1, strict=True)]
        runs = {k: b1.get(k, 0) - b0.get(k, 0) for k in b1}
        cores = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / dt
        row = {
            "cameras": n,
            "fps_per_camera_min": min(fps),
            "fps_per_camera_median": statistics.median(fps),
            "fps_total": sum(fps),
            "dropped": sum(b - a for a, b in zip(d0, d1, strict=True)),
            "mean_batch": sum(k * v for k, v in runs.items()) / max(sum(runs.values()), 1),
            "cpu_cores": cores,
            "cpu_percent_of_machine": 100 * cores / (os.cpu_count() or 1),
        }
        rows.append(row)
        progress(f"{n} camera(s): " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
    return rows


# -- memory --------------------------------------------------------------------------------


TREND_FROM = 2000  # frames: the allocator's arenas have filled by then


def memory(args: argparse.Namespace, tmp: Path, n: int) -> dict[str, Any]:
    """``n`` cameras looping the clip as fast as they can; resident memory as the frames of
    all of them add up."""
    cams = {f"cam{i}": camera(args.clip, realtime=False, loop=True) for i in range(n)}
    config = make_config(tmp, args.threads, cams)
    proc = psutil.Process()
    marks: list[tuple[int, float]] = []
    with running(config) as (pipeline, _):

        def processed() -> int:
            return sum(c.processed for c in pipeline.cameras.values())

        warm = 300
        for target in [warm, *range(1000, args.memory_frames + 1, 1000)]:
            wait(lambda t=target: processed() >= t, 3600, f"{target} frames")
            marks.append((processed(), proc.memory_info().rss / 2**20))
    start, end = marks[0][1], marks[-1][1]
    later = np.array([m for m in marks if m[0] >= TREND_FROM], np.float64)
    trend = float(np.polyfit(later[:, 0], later[:, 1], 1)[0]) * 10_000 if len(later) >= 3 else None
    return {
        "cameras": n,
        "frames": marks[-1][0],
        "rss_start_mib": start,
        "rss_end_mib": end,
        "rss_max_mib": max(m for _, m in marks),
        "growth_mib": end - start,
        "trend_mib_per_10k_frames": trend,
        "marks": marks,
    }


# -- an idle camera ------------------------------------------------------------------------

SHELF = ROOT / "samples" / "shelf-bottles.mp4"
# frames of the shelf clip where nothing moves (2.85–4.96 s: the camera's noise and exposure
# pumping, no hand, no shadow), and a hand reaching in (6.9–7.9 s)
SHELF_STILL = range(85, 149)
SHELF_HAND = range(206, 236)
IDLE_FPS = 30


def shelf_clip(path: Path, passes: int, hand: bool) -> int:
    """An H.264 clip at 30 fps: the shelf's still stretch forward, backward, forward… (a long
    still scene without a jump, looping cleanly), then the hand if ``hand``; returns the number
    of still frames."""
    import av

    wanted = set(SHELF_STILL) | set(SHELF_HAND)
    frames: dict[int, np.ndarray] = {}
    with av.open(str(SHELF)) as src:
        for i, f in enumerate(src.decode(video=0)):
            if i in wanted:
                frames[i] = f.to_ndarray(format="bgr24")
            if i >= max(wanted):
                break
    order = list(SHELF_STILL)
    still = [i for k in range(passes) for i in (order if k % 2 == 0 else order[::-1])]
    sequence = still + (list(SHELF_HAND) if hand else [])
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=IDLE_FPS)
        stream.height, stream.width = frames[sequence[0]].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for i in sequence:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frames[i], format="bgr24")))
        out.mux(stream.encode(None))
    return len(still)


def idle_camera(clip: Path, gated: bool, **source: Any) -> dict[str, Any]:
    return {
        "source": {"uri": str(clip), "realtime": True, **source},
        "detect": {
            "model": "coco",
            "classes": CLASSES,
            "min_score": MIN_SCORE,
            "motion": {"enabled": gated},
        },
    }


def idle_cpu(
    args: argparse.Namespace,
    tmp: Path,
    clip: Path,
    n: int,
    gated: bool,
    detect_fps: float | None = None,
) -> dict[str, Any]:
    """CPU of this process (the pipeline's threads) with ``n`` cameras on the looped still
    clip, over ``--idle-seconds`` after a warm-up."""
    cams = {f"cam{i}": idle_camera(clip, gated, loop=True, detect_fps=detect_fps) for i in range(n)}
    with running(make_config(tmp, args.threads, cams)) as (pipeline, _):
        runtimes = list(pipeline.cameras.values())
        wait(lambda: all(c.processed >= 1 for c in runtimes), 60, "first frames")
        time.sleep(3.0)  # past the start: the model's first runs, the decoders' buffers
        before = [(c.source.decoded, c.processed, c.gate.skipped) for c in runtimes]
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        time.sleep(args.idle_seconds)
        cpu1, t1 = cpu_seconds(), time.perf_counter()
        after = [(c.source.decoded, c.processed, c.gate.skipped) for c in runtimes]
        motion = [c.gate.latency.summary() for c in runtimes]
        decode = [c.stages["decode"].summary() for c in runtimes]
    dt = t1 - t0
    done = [
        tuple(b - a for a, b in zip(x, y, strict=True)) for x, y in zip(before, after, strict=True)
    ]
    return {
        "cameras": n,
        "gated": gated,
        "detect_fps": detect_fps,
        "cpu_percent_of_one_core_per_camera": 100 * (cpu1 - cpu0) / dt / n,
        "decoded_fps": sum(d[0] for d in done) / dt / n,
        "detected_fps": sum(d[1] for d in done) / dt / n,
        "skipped_fps": sum(d[2] for d in done) / dt / n,
        "motion_p50_ms": motion[0]["p50_ms"] if motion[0] else None,
        "motion_p99_ms": motion[0]["p99_ms"] if motion[0] else None,
        "decode_p50_ms": decode[0]["p50_ms"] if decode[0] else None,
    }


def first_detection(args: argparse.Namespace, tmp: Path, passes: int) -> dict[str, Any]:
    """A still scene, then a hand: how long after the first moving frame the detector sees a
    frame, in frames and in ms from that frame's capture to the detector taking it."""
    clip = tmp / f"still-then-hand-{passes}.mp4"
    n_still = shelf_clip(clip, passes, hand=True)
    config = make_config(tmp, args.threads, {"cam": idle_camera(clip, True)})
    taken: list[tuple[int, float, float]] = []  # seq, capture, taken (monotonic)
    with running(config) as (pipeline, _):
        cam = pipeline.cameras["cam"]
        take = cam.take

        def recording() -> Any:
            item = take()
            if item is not None:
                taken.append((item[0].seq, item[0].mono_ts, time.monotonic()))
            return item

        cam.take = recording  # type: ignore[method-assign]
        wait(lambda: pipeline.finished, 120, "the clip")
        skipped = cam.gate.skipped
    seq, captured, started = next(t for t in taken if t[0] >= n_still)
    return {
        "still_s": n_still / IDLE_FPS,
        "detected_while_still": sum(1 for t in taken if t[0] < n_still),
        "skipped": skipped,
        "delay_frames": seq - n_still,
        "frame_interval_ms": 1000 / IDLE_FPS,
        "capture_to_detector_ms": 1000 * (started - captured),
    }


def idle(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    clip = tmp / "still.mp4"
    shelf_clip(clip, 2, hand=False)
    rows = [
        idle_cpu(args, tmp, clip, 1, True),
        idle_cpu(args, tmp, clip, 1, False),
        idle_cpu(args, tmp, clip, 1, True, detect_fps=10),
        # the floor of any gate: every frame decoded, one detected per keep-alive period
        idle_cpu(args, tmp, clip, 1, False, detect_fps=1 / MotionConfig().keep_alive_s),
    ]
    rows += [idle_cpu(args, tmp, clip, n, True) for n in args.idle_cameras if n != 1]
    for r in rows:
        progress("idle: " + ", ".join(f"{k} {v}" for k, v in r.items()))
    delays = [first_detection(args, tmp, passes) for passes in (2, 3, 4)]
    for d in delays:
        progress("first detection: " + ", ".join(f"{k} {v}" for k, v in d.items()))
    return {"cpu": rows, "first_detection": delays}


# -- report --------------------------------------------------------------------------------


def progress(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True, file=sys.stderr)


def machine() -> str:
    return f"{os.cpu_count()}-core {platform.machine()}, no GPU used (ONNX Runtime CPU)"


def table(result: dict[str, Any]) -> str:
    lines = [f"edged pipeline benchmark, {result['date']}, {result['machine']}"]
    lines.append(f"clip {result['clip']} ({result['threads']} ORT threads)")
    t = result.get("throughput")
    if t:
        m = t["median"]
        lines += [
            "",
            f"throughput (medians of {len(t['rounds'])} interleaved rounds, realtime: false;"
            f" 1-min load {min(r['load_1min'] for r in t['rounds']):.1f}–"
            f"{max(r['load_1min'] for r in t['rounds']):.1f})",
            "                     FPS   CPU ms/frame",
            f"  detector alone   {m['detector_fps']:6.1f}   {m['detector_cpu_ms']:6.1f}"
            f"   (detect p50 {m['detector_p50_ms']:.1f} ms, p99 {m['detector_p99_ms']:.1f} ms)",
            f"  edged, FP32      {m['edged_fps']:6.1f}   {m['edged_cpu_ms']:6.1f}"
            f"   ({m['edged_cpu_cores']:.2f} cores busy)",
            f"  edged, defaults  {m['default_fps']:6.1f}   {m['default_cpu_ms']:6.1f}"
            "   (precision auto)",
            f"  peer (sv+trk)    {m['peer_fps']:6.1f}   {m['peer_cpu_ms']:6.1f}   (FP32)",
            f"  edged FP32 ÷ detector {m['edged_over_detector']:7.3f}   (target ≥ 0.95)",
            f"  edged FP32 ÷ peer     {m['edged_over_peer']:7.3f}   (target ≥ 1.3)",
            f"  edged default ÷ peer  {m['default_over_peer']:7.3f}   (target ≥ 2.0)",
        ]
    for key in ("latency", "latency_default_broker"):
        lat = result.get(key)
        if not lat:
            continue
        broker = "set_tcp_nodelay true" if lat["broker_tcp_nodelay"] else "default settings"
        lines += [
            "",
            f"frame → PUBACK at the clip's rate ({lat['fps']:.1f} fps, {lat['events']} events,"
            f" Mosquitto with {broker})",
            f"  p50 {lat['p50_ms']:.1f} ms   p99 {lat['p99_ms']:.1f} ms"
            f"   max {lat['max_ms']:.1f} ms   (target p99 ≤ 2 × inference p50"
            f" {lat['stages']['inference']['p50_ms']:.1f} + 20 = {lat['target_p99_ms']:.1f} ms)",
        ]
        parts = [
            f"{stage} {v['p50_ms']:.1f}/{v['p99_ms']:.1f}"
            for stage, v in lat["stages"].items()
            if v is not None
        ]
        ack = lat["publish_ack"]
        parts.append(f"publish→PUBACK {ack['p50_ms']:.1f}/{ack['p99_ms']:.1f}")
        lines.append("  per frame, p50/p99 ms: " + "  ".join(parts[:4]))
        lines.append("                         " + "  ".join(parts[4:]))
    cams = result.get("cameras")
    if cams:
        lines += [
            "",
            "cameras at detect_fps 5 (realtime)",
            "  cameras  fps/camera min  median  total  dropped  mean batch  CPU of machine",
        ]
        for r in cams:
            lines.append(
                f"  {r['cameras']:>7}  {r['fps_per_camera_min']:14.2f}  "
                f"{r['fps_per_camera_median']:6.2f}  {r['fps_total']:5.1f}  {r['dropped']:>7}"
                f"  {r['mean_batch']:10.2f}  {r['cpu_percent_of_machine']:12.0f} %"
            )
    idle_result = result.get("idle")
    if idle_result:
        lines += [
            "",
            f"an idle camera: the shelf clip's still stretch, H.264 {IDLE_FPS} fps, looped"
            " (realtime), no zones",
            "  cameras  gate  detect_fps  CPU % of one core per camera  decoded/s  detected/s"
            "  skipped/s  motion p50/p99 ms",
        ]
        for r in idle_result["cpu"]:
            motion = (
                "-"
                if r["motion_p50_ms"] is None
                else f"{r['motion_p50_ms']:.2f}/{r['motion_p99_ms']:.2f}"
            )
            fps = "-" if r["detect_fps"] is None else f"{r['detect_fps']:g}"
            lines.append(
                f"  {r['cameras']:>7}  {'on' if r['gated'] else 'off':>4}  {fps:>10}"
                f"  {r['cpu_percent_of_one_core_per_camera']:28.1f}  {r['decoded_fps']:9.1f}"
                f"  {r['detected_fps']:10.2f}  {r['skipped_fps']:9.1f}  {motion:>17}"
            )
        lines.append("  first detection after motion starts (still, then a hand reaching in):")
        for d in idle_result["first_detection"]:
            lines.append(
                f"    after {d['still_s']:.1f} s still ({d['detected_while_still']} keep-alive"
                f" detections, {d['skipped']} skipped): {d['delay_frames']} frames late"
                f" (interval {d['frame_interval_ms']:.1f} ms), capture → detector"
                f" {d['capture_to_detector_ms']:.1f} ms"
            )
    for mem in result.get("memory", []):
        lines += [
            "",
            f"resident memory, {mem['cameras']} camera(s): {mem['rss_start_mib']:.0f} MiB after"
            f" 300 frames, {mem['rss_end_mib']:.0f} MiB after {mem['frames']} (max"
            f" {mem['rss_max_mib']:.0f}, growth {mem['growth_mib']:+.1f} MiB)",
        ]
        if mem.get("trend_mib_per_10k_frames") is not None:
            lines.append(
                f"  trend from frame {TREND_FROM}: {mem['trend_mib_per_10k_frames']:+.1f} MiB"
                " per 10 000 frames"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON after the table")
    parser.add_argument("--clip", type=Path, default=LONG_CLIP if LONG_CLIP.is_file() else SAMPLE)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seconds", type=float, default=5.0, help="per contender and round")
    parser.add_argument("--latency-seconds", type=float, default=25.0)
    parser.add_argument("--camera-seconds", type=float, default=12.0)
    parser.add_argument(
        "--cameras", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 8]
    )
    parser.add_argument("--memory-frames", type=int, default=10_000, help="of all cameras")
    parser.add_argument(
        "--memory-cameras", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8]
    )
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument(
        "--idle-cameras", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4]
    )
    parser.add_argument(
        "--only", default="throughput,latency,cameras,memory", help="also: idle (motion gating)"
    )
    args = parser.parse_args(argv)
    parts = set(args.only.split(","))
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "clip": str(
            args.clip.relative_to(ROOT.parent)
            if args.clip.is_relative_to(ROOT.parent)
            else args.clip
        ),
        "threads": args.threads,
    }
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        detector_ms = None
        if "throughput" in parts:
            result["throughput"] = throughput(args, tmp)
            detector_ms = result["throughput"]["median"]["detector_p50_ms"]
        if "latency" in parts:
            if detector_ms is None:
                frames, _ = decode_all(args.clip)
                det = load_detector(
                    ModelConfig(path=MODEL, backend="cpu", threads=args.threads, precision="fp32")
                )
                detector_ms = detector_alone(det, frames[:100], 5.0)["p50_ms"]
            for key, nodelay in (("latency", True), ("latency_default_broker", False)):
                result[key] = lat = latency(args, tmp, detector_ms, nodelay)
                progress(f"{key}: p50 {lat['p50_ms']:.1f} p99 {lat['p99_ms']:.1f} ms")
        if "cameras" in parts:
            result["cameras"] = cameras(args, tmp)
        if "memory" in parts:
            result["memory"] = [memory(args, tmp, n) for n in args.memory_cameras]
        if "idle" in parts:
            result["idle"] = idle(args, tmp)
    print(table(result))
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
