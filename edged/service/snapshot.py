"""``edged snapshot``: one picture of a camera, as its config opens it, written as a JPEG;
with ``grid`` a coordinate grid and the camera's zones and lines are drawn on it, to read off
coordinates for new ones.

The picture is the raw frame: the camera's privacy blur (``snapshots.privacy``) blurs what
its detector finds, and no detector runs here.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from pathlib import Path

import cv2
import numpy as np

from edged.analytics.lines import in_direction, in_side
from edged.config import Config, ConfigError
from edged.config.camera import CameraConfig
from edged.config.geometry import to_pixels
from edged.core import grid as drawing
from edged.core.redact import redact
from edged.sources.capture import SourceError
from edged.sources.factory import make_source
from edged.sources.slot import FrameSlot

log = logging.getLogger(__name__)

JPEG_QUALITY = 90


class SnapshotError(Exception):
    """No picture came: the message names the camera and says why."""


def camera_of(config: Config, name: str) -> CameraConfig:
    """The camera ``name`` of ``config``; ConfigError naming the cameras there are."""
    cam = config.cameras.get(name)
    if cam is None:
        there = ", ".join(sorted(config.cameras)) or "none"
        raise ConfigError([f"no camera {name!r} in the config (its cameras: {there})"])
    return cam


def first_picture(name: str, cam: CameraConfig, timeout_s: float) -> np.ndarray:
    """The first decoded frame (BGR) of the camera's source, opened as the daemon opens it;
    SnapshotError when the source cannot be opened or read, or gives no frame within
    ``timeout_s`` (the source's own open and read timeouts may be longer: they are not
    waited for)."""
    got: queue.Queue[np.ndarray | SourceError] = queue.Queue(maxsize=1)
    source = make_source(name, cam.source, FrameSlot(threading.Condition()), lambda _: None)

    def read() -> None:
        try:
            capture = source.open()
            try:
                decoded = capture.read()
                if decoded is None:
                    raise SourceError("the stream ended before its first frame")
                got.put(decoded.to_bgr())
            finally:
                capture.close()
        except SourceError as exc:
            got.put(exc)

    # a daemon thread: an open or read stuck past the timeout does not keep the process
    threading.Thread(target=read, name=f"snapshot-{name}", daemon=True).start()
    where = redact(cam.source.uri)
    try:
        result = got.get(timeout=timeout_s)
    except queue.Empty:
        raise SnapshotError(
            f"camera {name}: no frame from {where} within {timeout_s:g} s"
        ) from None
    if isinstance(result, SourceError):
        raise SnapshotError(f"camera {name}: {result}")
    return result


def draw_grid(name: str, cam: CameraConfig, image: np.ndarray) -> None:
    """The coordinate grid, and the camera's zones and lines with each line's ``in`` arrow."""
    height, width = image.shape[:2]
    drawing.grid(image)
    zones = [(zone, to_pixels(z.polygon, width, height)) for zone, z in cam.zones.items()]
    lines = []
    for line, ln in cam.lines.items():
        points = to_pixels(ln.points, width, height)
        try:
            side = in_side(points, in_direction(points, ln.directions.in_, ln.directions.out))
        except ValueError as exc:
            # drawn anyway: the picture is how such a line gets fixed (edged check says more)
            log.warning("%s: line %s has no 'in' arrow: %s", name, line, exc)
            side = None
        lines.append(drawing.LineMark(line, points, side))
    drawing.geometry(image, zones, lines)


def snapshot(config: Config, name: str, output: str | None, grid: bool, timeout_s: float) -> str:
    """Take camera ``name``'s picture and write it to ``output`` (None: ``<name>.jpg``; ``-``:
    stdout); what was written, for the user. ConfigError for an unknown camera,
    SnapshotError when no picture came, OSError when it cannot be written."""
    cam = camera_of(config, name)
    image = first_picture(name, cam, timeout_s)
    height, width = image.shape[:2]
    if grid:
        draw_grid(name, cam, image)
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise SnapshotError(f"camera {name}: the {width}x{height} picture could not be encoded")
    if output == "-":
        sys.stdout.buffer.write(jpeg.tobytes())
        sys.stdout.buffer.flush()
        where = "stdout"
    else:
        path = Path(output or f"{name}.jpg")
        path.write_bytes(jpeg.tobytes())
        where = str(path)
    said = f"{name}: {width}x{height} picture written to {where}"
    if cam.snapshots is not None and cam.snapshots.privacy.blur != "off":
        said += " (the raw frame: the camera's privacy blur needs its detector, not run here)"
    return said
