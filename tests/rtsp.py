"""A real RTSP server for tests: ``tests/rtsp_server.py`` (GStreamer's RTSP server), run by the
system Python where the GStreamer gi bindings live, looping a clip at its own frame rate.

By default the clip is first re-encoded (PyAV, libx264) with an IDR frame every second and no
B-frames, like an IP camera's stream: samples/vtest.mp4 has a single keyframe in its 150
frames, so a client that joins the shared, looping stream mid-clip would otherwise wait up to
21 s for its first picture. ``keyframe_interval=None`` serves the clip's own bitstream.
"""

from __future__ import annotations

import functools
import os
import queue
import signal
import socket
import subprocess
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import av

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).resolve().parent / "rtsp_server.py"
HOST = "127.0.0.1"
MOUNT = "/cam"
# The elements the server's pipelines use, with the Debian package that ships each.
ELEMENTS = {
    "qtdemux": "gstreamer1.0-plugins-good",
    "h264parse": "gstreamer1.0-plugins-bad",
    "mpegtsmux": "gstreamer1.0-plugins-bad",
    "tsdemux": "gstreamer1.0-plugins-bad",
    "multifilesrc": "gstreamer1.0-plugins-good",
    "rtph264pay": "gstreamer1.0-plugins-good",
}
PACKAGES = (
    "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp gstreamer1.0-plugins-good"
    " gstreamer1.0-plugins-bad python3-gi"
)
_PROBE = f"""
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
needed = {dict(ELEMENTS)!r}
missing = [f"{{e}} ({{p}})" for e, p in needed.items() if Gst.ElementFactory.find(e) is None]
if missing:
    raise SystemExit("missing GStreamer elements: " + ", ".join(missing))
"""


def free_port(host: str = HOST) -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@functools.lru_cache(maxsize=1)
def gst_rtsp_available() -> str | None:
    """None when the system Python can run the server, else why not (and what to install)."""
    try:
        proc = subprocess.run(
            [SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"cannot run {SYSTEM_PYTHON}: {exc}; apt-get install {PACKAGES}"
    if proc.returncode == 0:
        return None
    lines = (proc.stderr.strip() or proc.stdout.strip() or f"exit {proc.returncode}").splitlines()
    return (
        f"{SYSTEM_PYTHON} cannot run GStreamer's RTSP server: {lines[-1]};"
        f" apt-get install {PACKAGES}"
    )


class RtspServer:
    """``tests/rtsp_server.py`` serving ``clip`` in a loop at ``url``; ``stop()``/``kill()`` and
    ``start()`` again restart it on the same port.

    The stream served is prepared once in ``workdir`` (which several servers may share) and
    reused across restarts; the server's stderr goes to ``workdir/rtsp-server-PORT.log``.
    """

    def __init__(
        self,
        clip: Path,
        workdir: Path,
        port: int | None = None,
        keyframe_interval: float | None = 1.0,
    ) -> None:
        self.clip = Path(clip)
        self.workdir = Path(workdir)
        self.port = port or free_port()
        self.url = f"rtsp://{HOST}:{self.port}{MOUNT}"
        self.keyframe_interval = keyframe_interval
        self.log_path = self.workdir / f"rtsp-server-{self.port}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self.returncode: int | None = None  # of the last run that ended

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """Everything the server has written to stderr, over all its runs."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 10) -> None:
        """Start the server and return once it prints READY (it then accepts connections)."""
        if self.running:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.keyframe_interval is None:
            # The server extracts the clip's own H.264 into the cache, once.
            source = [
                "--clip",
                str(self.clip),
                "--cache",
                str(self.workdir / f"{self.clip.stem}.ts"),
            ]
        else:
            stream = self.workdir / f"{self.clip.stem}-idr{self.keyframe_interval:g}s.ts"
            if not _fresh(stream, self.clip):
                reencode(self.clip, stream, self.keyframe_interval)
            source = ["--clip", str(stream)]
        cmd = [
            SYSTEM_PYTHON,
            str(SERVER_SCRIPT),
            "--port",
            str(self.port),
            "--path",
            MOUNT,
            *source,
        ]
        with open(self.log_path, "ab") as log:
            log_start = log.tell()
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log
            )
        self._proc = proc
        lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(
            target=_pump_lines, args=(proc, lines), name=f"rtsp-server-{self.port}", daemon=True
        )
        self._reader.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError(
                    f"RTSP server not READY within {timeout}s:\n{self._log_since(log_start)}"
                ) from None
            if line is None:  # stdout closed: the server exited
                self._reap()
                raise RuntimeError(
                    f"RTSP server exited with {self.returncode} before READY:\n"
                    f"{self._log_since(log_start)}"
                )
            if line.startswith("READY "):
                if line.split()[1:] == [self.url]:
                    return
                self.stop()
                raise RuntimeError(f"RTSP server announced {line.strip()!r}, not {self.url}")

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL after 3 s; waits for the process."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._reap()

    def kill(self) -> None:
        """SIGKILL: an abrupt server death, no RTSP teardown."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        self._reap()

    def _reap(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        self.returncode = proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)  # ends at EOF, which the exit just caused
            self._reader = None
        if proc.stdout is not None:
            proc.stdout.close()

    def _log_since(self, offset: int) -> str:
        with open(self.log_path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def reencode(clip: Path, out: Path, keyframe_interval: float) -> None:
    """Re-encode ``clip``'s video into MPEG-TS at ``out``: H.264 at the clip's frame rate, an IDR
    frame every ``keyframe_interval`` seconds, no B-frames. Written atomically."""
    with av.open(str(clip)) as src:
        vin = src.streams.video[0]
        rate = vin.average_rate
        if not rate:
            raise ValueError(f"{clip}: unknown frame rate")
        gop = str(max(1, round(rate * Fraction(keyframe_interval))))
        fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".part", dir=out.parent)
        os.close(fd)
        try:
            with av.open(tmp, "w", format="mpegts") as dst:
                vout = dst.add_stream(
                    "libx264",
                    rate=rate,
                    options={
                        "crf": "20",
                        "preset": "veryfast",
                        "bf": "0",
                        "g": gop,
                        "keyint_min": gop,
                        "sc_threshold": "0",
                    },
                )
                vout.width = vin.codec_context.width
                vout.height = vin.codec_context.height
                vout.pix_fmt = "yuv420p"
                for index, frame in enumerate(src.decode(vin)):
                    frame = frame.reformat(format="yuv420p")
                    frame.pts, frame.time_base = index, 1 / rate
                    dst.mux(vout.encode(frame))
                dst.mux(vout.encode(None))
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def _fresh(derived: Path, source: Path) -> bool:
    return derived.exists() and derived.stat().st_mtime >= source.stat().st_mtime


def _pump_lines(proc: subprocess.Popen[bytes], lines: queue.Queue[str | None]) -> None:
    """Forward the server's stdout lines to ``lines``; None at end of file."""
    assert proc.stdout is not None
    for raw in proc.stdout:
        lines.put(raw.decode(errors="replace"))
    lines.put(None)
