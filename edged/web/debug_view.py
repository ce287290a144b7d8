"""The debug view's pages: an index, each camera's latest annotated frame as JPEG, and an
MJPEG stream of them. A frame is drawn only when asked for, from the latest frame and tracks
the analytics keep by reference, so nobody watching costs nothing."""

from __future__ import annotations

import html
import threading
import time

import cv2
import numpy as np

from edged.camera.analytics import CameraAnalytics
from edged.core.frame import Frame
from edged.pipeline import Pipeline
from edged.pipeline.camera import CameraRuntime
from edged.web.annotate import LineView, ZoneView, annotate
from edged.web.server import Request

BOUNDARY = "edgedframe"


class DebugView:
    def __init__(self, pipeline: Pipeline, jpeg_quality: int, stream_fps: float) -> None:
        self.pipeline = pipeline
        self.jpeg_quality = jpeg_quality
        self.period_s = 1.0 / stream_fps
        # per camera: the frame last drawn and its JPEG, shared by everyone watching
        self._drawn: dict[str, tuple[Frame, bytes]] = {}
        self._lock = threading.Lock()

    def route(self, req: Request, path: str) -> bool:
        if path in ("/", "/cameras", "/cameras/"):
            req.send(200, "text/html; charset=utf-8", self.index().encode())
            return True
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "cameras":
            return False
        _, camera, page = parts
        if page not in ("latest.jpg", "stream.mjpeg"):
            return False
        if camera not in self.pipeline.cameras:
            req.send(404, "text/plain; charset=utf-8", f"no camera {camera!r}\n".encode())
        elif page == "latest.jpg":
            jpeg = self.jpeg(camera)
            if jpeg is None:
                req.send(503, "text/plain; charset=utf-8", b"no frame processed yet\n")
            else:
                req.send(200, "image/jpeg", jpeg)
        else:
            self.stream(req, camera)
        return True

    def index(self) -> str:
        items = "\n".join(
            f'<li><a href="/cameras/{n}/stream.mjpeg">{n}</a> '
            f'(<a href="/cameras/{n}/latest.jpg">latest frame</a>)<br>'
            f'<img src="/cameras/{n}/stream.mjpeg" width="640" alt="{n}"></li>'
            for n in (html.escape(name, quote=True) for name in self.pipeline.cameras)
        )
        return (
            "<!doctype html><meta charset=utf-8><title>edged cameras</title>"
            f"<h1>{html.escape(self.pipeline.config.device_id)}</h1><ul>{items}</ul>"
        )

    def jpeg(self, camera: str) -> bytes | None:
        """The newest processed frame, annotated; None before the first one."""
        cam = self.pipeline.cameras[camera]
        latest = cam.analytics.latest
        if latest is None:
            return None
        frame, tracked = latest
        with self._lock:
            drawn = self._drawn.get(camera)
            if drawn is not None and drawn[0] is frame:
                return drawn[1]
        frame, picture = private_picture(cam, frame)
        fps = cam.process_rate.rate()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(frame.wall_ts))
        header = f"{camera}  #{frame.seq}  {stamp}  {len(tracked.objects)} tracks  {fps:.1f} fps"
        zones, lines = views(cam.analytics)
        image = annotate(picture, tracked, zones, lines, header)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise RuntimeError(f"{camera}: JPEG encoding failed")
        jpeg = buf.tobytes()
        with self._lock:
            self._drawn[camera] = (frame, jpeg)
        return jpeg

    def stream(self, req: Request, camera: str) -> None:
        """multipart/x-mixed-replace, one part per new frame, at most ``stream_fps``, until
        the viewer leaves or the server closes."""
        req.send_response(200)
        req.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        req.send_header("Cache-Control", "no-store")
        req.send_header("Connection", "close")
        req.end_headers()
        req.close_connection = True
        sent: bytes | None = None
        stopping = req.server.stopping
        while not stopping.is_set():
            jpeg = self.jpeg(camera)
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
            )
        )
    return zones, lines
