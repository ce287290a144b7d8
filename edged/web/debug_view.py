"""The console's pictures: each camera's latest annotated frame as JPEG (or its raw still, for
the editor), and an MJPEG stream of them. A frame is drawn only when asked for, from the
latest frame and tracks the analytics keep by reference, so nobody watching costs nothing.
A camera without a frame answers with a placeholder that says why (no signal, reconnecting
and the reason), never with silence."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from edged.camera.analytics import CameraAnalytics
from edged.core.frame import Frame
from edged.core.redact import redact_text
from edged.pipeline import Pipeline
from edged.pipeline.camera import CameraRuntime
from edged.web.annotate import EVERYTHING, Layers, LineView, ZoneView, annotate
from edged.web.health import camera_health
from edged.web.placeholder import placeholder
from edged.web.server import Request

BOUNDARY = "edgedframe"
# a placeholder part is sent again this often, so a viewer sees a changed reason
PLACEHOLDER_EVERY_S = 1.0


def layers(query: str) -> tuple[Layers, bool]:
    """The overlay toggles of a picture's URL (``?boxes=0&zones=0&lines=0``), and whether
    it asks for the raw still (``?raw=1``: nothing drawn)."""
    q = parse_qs(query)

    def on(name: str) -> bool:
        return q.get(name, ["1"])[-1] not in ("0", "false", "off")

    raw = q.get("raw", ["0"])[-1] in ("1", "true", "on")
    return Layers(boxes=on("boxes"), zones=on("zones"), lines=on("lines")), raw


class DebugView:
    def __init__(self, pipeline: Pipeline, jpeg_quality: int, stream_fps: float) -> None:
        self.pipeline = pipeline
        self.jpeg_quality = jpeg_quality
        self.period_s = 1.0 / stream_fps
        # per camera and way of drawing: the frame last drawn and its JPEG, shared by
        # everyone watching
        self._drawn: dict[tuple[str, Layers, bool], tuple[Frame, bytes]] = {}
        self._lock = threading.Lock()

    def route(self, req: Request, path: str) -> bool:
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "cameras":
            return False
        _, camera, page = parts
        if page not in ("latest.jpg", "stream.mjpeg"):
            return False
        config = self.pipeline.config.cameras.get(camera)
        if config is None or not config.enabled:
            req.send(404, "text/plain; charset=utf-8", f"no camera {camera!r}\n".encode())
            return True
        shown, raw = layers(urlsplit(req.path).query)
        if page == "latest.jpg":
            jpeg = self.jpeg(camera, shown, raw)
            if jpeg is None:
                req.send(200, "image/jpeg", self.waiting(camera))
            else:
                req.send(200, "image/jpeg", jpeg)
        else:
            self.stream(req, camera, shown, raw)
        return True

    def waiting(self, camera: str) -> bytes:
        """The placeholder of a camera with no frame to show, saying why."""
        cam = self.pipeline.cameras.get(camera)
        if cam is None:
            return placeholder(camera, "not running", "it could not start: see the log")
        h = camera_health(cam, stale_s=float("inf"))
        if h.state == "streaming":
            return placeholder(camera, "waiting for the first frame", "")
        title = "ended" if h.state == "ended" else "no signal"
        return placeholder(camera, title, redact_text(h.reason))

    def jpeg(self, camera: str, shown: Layers = EVERYTHING, raw: bool = False) -> bytes | None:
        """The newest processed frame, annotated with ``shown`` (or nothing drawn: ``raw``);
        None before the first one, or when the camera is not running."""
        cam = self.pipeline.cameras.get(camera)
        latest = None if cam is None else cam.analytics.latest
        if cam is None or latest is None:
            return None
        frame, tracked = latest
        key = (camera, shown, raw)
        with self._lock:
            drawn = self._drawn.get(key)
            if drawn is not None and drawn[0] is frame:
                return drawn[1]
        frame, picture = private_picture(cam, frame)
        if raw:
            image = picture
        else:
            fps = cam.process_rate.rate()
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(frame.wall_ts))
            objects = len(tracked.objects)
            header = f"{camera}  #{frame.seq}  {stamp}  {objects} tracks  {fps:.1f} fps"
            zones, lines = views(cam.analytics)
            image = annotate(picture, tracked, zones, lines, header, shown)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError(f"{camera}: JPEG encoding failed")
        jpeg = buf.tobytes()
        with self._lock:
            self._drawn[key] = (frame, jpeg)
        return jpeg

    def stream(self, req: Request, camera: str, shown: Layers, raw: bool) -> None:
        """multipart/x-mixed-replace, one part per new frame, at most ``stream_fps``, until
        the viewer leaves or the server closes."""
        req.send_response(200)
        req.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        req.send_header("Cache-Control", "no-store")
        req.send_header("Connection", "close")
        req.end_headers()
        req.close_connection = True
        sent: bytes | None = None
        waited = -float("inf")
        stopping = req.server.stopping
        while not stopping.is_set():
            jpeg = self.jpeg(camera, shown, raw)
            if jpeg is None and time.monotonic() - waited >= PLACEHOLDER_EVERY_S:
                jpeg, waited = self.waiting(camera), time.monotonic()
            if jpeg is not None and jpeg is not sent:
                part = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n"
                ).encode()
                try:
                    req.wfile.write(part + jpeg + b"\r\n")
                    req.wfile.flush()
                except OSError:
                    return  # the viewer went away
                sent = jpeg
            stopping.wait(self.period_s)


def private_picture(cam: CameraRuntime, frame: Frame) -> tuple[Frame, np.ndarray]:
    """The frame to draw on, blurred as the camera's ``snapshots.privacy`` says: every picture
    that leaves the process is, not only the saved snapshots. When the camera has moved on to
    a newer frame meanwhile, that one is drawn (its detections are the ones to blur by)."""
    shots = cam.snapshots
    if shots is None or shots.config.privacy.blur == "off":
        return frame, frame.image
    seen = cam.seen
    if seen is None:
        raise RuntimeError(f"{cam.name}: a processed frame without its detections")
    shown, detections, people = seen
    return shown, shots.private_image(shown.image, detections, people)


def views(analytics: CameraAnalytics) -> tuple[list[ZoneView], list[LineView]]:
    """What to draw of the zones and lines, read while the analytics thread goes on."""
    zones = [
        ZoneView(z.name, np.asarray(z.polygon.exterior.coords)[:-1], z.counts())
        for z in list(analytics.zones)
    ]
    lines = []
    for ln in list(analytics.lines):
        p1 = ln.p0 + ln.d
        lines.append(
            LineView(
                ln.name,
                (float(ln.p0[0]), float(ln.p0[1])),
                (float(p1[0]), float(p1[1])),
                sum(dict(ln.totals["in"]).values()),
                sum(dict(ln.totals["out"]).values()),
                ln.in_side,
            )
        )
    return zones, lines
