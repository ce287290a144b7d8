"""Decode cost per camera: CPU-ms per frame for 1, 4 and 8 concurrent sources of the sample
clip, read from the file and over RTSP (GStreamer's RTSP server, started here).

    python -m benchmarks.sources [--counts 1 4 8] [--seconds 6] [--json]

CPU time is this process's (user + system) over every frame decoded and converted to BGR by
all sources together; the RTSP server runs in its own process and is not counted. Files are
read as fast as possible (one pass each); RTSP streams arrive at the clip's 7 fps, so they are
measured over ``--seconds`` of wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

from edged.config.camera import SourceConfig
from edged.sources.factory import is_live, make_source
from edged.sources.slot import FrameSlot

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT / "samples" / "vtest.mp4"


def measure(config: SourceConfig, count: int, seconds: float | None) -> dict[str, float]:
    """Run ``count`` sources at once, consuming every frame handed over."""
    wake = threading.Condition()
    slots = [FrameSlot(wake, block=not is_live(config)) for _ in range(count)]
    sources = [make_source(f"cam{i}", config, slot, lambda c: None) for i, slot in enumerate(slots)]
    cpu0, wall0 = time.process_time(), time.monotonic()
    for s in sources:
        s.start()
    deadline = None if seconds is None else wall0 + seconds
    with wake:
        while not all(slot.finished for slot in slots):
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not any(slot.take() is not None for slot in slots):
                wake.wait(0.05)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    for s in sources:
        s.stop()
    for s in sources:
        s.join(5)
    frames = sum(s.decoded for s in sources)
    return {
        "sources": count,
        "frames": frames,
        "cpu_ms_per_frame": 1000 * cpu / max(frames, 1),
        "fps_per_source": frames / count / wall,
        "cpu_cores_used": cpu / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--seconds", type=float, default=6.0, help="RTSP measuring time")
    parser.add_argument("--no-rtsp", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for n in args.counts:
        rows.append(
            {"kind": "file", **measure(SourceConfig(uri=str(CLIP), realtime=False), n, None)}
        )
    if not args.no_rtsp:
        from tests.rtsp import RtspServer

        with tempfile.TemporaryDirectory() as tmp:
            server = RtspServer(CLIP, Path(tmp))
            server.start()
            try:
                live = SourceConfig(uri=server.url, open_timeout_s=5)
                for n in args.counts:
                    rows.append({"kind": "rtsp", **measure(live, n, args.seconds)})
            finally:
                server.stop()
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "clip": "samples/vtest.mp4 (768x576 H.264, 7 fps)",
        "rows": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    head = ("kind", "sources", "frames", "CPU-ms/frame", "fps/source", "cores")
    print(f"{head[0]:<5} {head[1]:>7} {head[2]:>7} {head[3]:>13} {head[4]:>11} {head[5]:>6}")
    for r in rows:
        print(
            f"{r['kind']:<5} {r['sources']:>7} {r['frames']:>7} {r['cpu_ms_per_frame']:>13.2f} "
            f"{r['fps_per_source']:>11.1f} {r['cpu_cores_used']:>6.2f}"
        )


if __name__ == "__main__":
    main()
