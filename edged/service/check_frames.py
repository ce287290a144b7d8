"""Zones and lines drawn in pixels wholly outside the picture can never count anything.
The picture's size is known before a start for a file (its first frame) and for a USB
camera asked for a width and height; for other sources (streams, a file that cannot be read
now: the source reports that itself when it runs) there is nothing to compare with."""

from __future__ import annotations

from pathlib import Path

from shapely.geometry import LineString, Polygon, box

from edged.config.camera import CameraConfig, SourceConfig
from edged.config.geometry import is_relative
from edged.config.root import Loc
from edged.sources.capture import SourceError
from edged.sources.pyav import PyAVCapture


def first_frame_size(source: SourceConfig) -> tuple[int, int] | None:
    """(width, height) of the pictures ``source`` will give, where it can be known now."""
    if source.resolved_kind == "usb":
        if source.usb.width is None or source.usb.height is None:
            return None
        return source.usb.width, source.usb.height
    if source.resolved_kind != "file":
        return None
    path = Path(source.uri.removeprefix("file://"))
    if not path.is_file():
        return None
    try:
        capture = PyAVCapture(
            str(path),
            live=False,
            open_timeout_s=source.open_timeout_s,
            read_timeout_s=source.read_timeout_s,
            stall_timeout_s=source.stall_timeout_s,
        )
    except SourceError:
        return None
    try:
        frame = capture.read()
    except SourceError:
        return None
    finally:
        capture.close()
    if frame is None:
        return None
    height, width = frame.to_bgr().shape[:2]
    return width, height


def _line_misses(points: list[tuple[float, float]], segment: bool, picture: Polygon) -> bool:
    if segment:
        return not LineString(points).intersects(picture)
    # the infinite line misses the picture when every corner is strictly on one side of it
    (x0, y0), (x1, y1) = points
    cross = [(x1 - x0) * (cy - y0) - (y1 - y0) * (cx - x0) for cx, cy in picture.exterior.coords]
    return all(c > 0 for c in cross) or all(c < 0 for c in cross)


def frame_problems(name: str, cam: CameraConfig) -> list[tuple[Loc, str]]:
    if not cam.enabled or not (cam.zones or cam.lines):
        return []
    size = first_frame_size(cam.source)
    if size is None:
        return []
    width, height = size
    picture = box(0, 0, width, height)
    where = f"wholly outside the {width}x{height} picture of {cam.source.uri}"
    problems: list[tuple[Loc, str]] = []
    for zone, z in cam.zones.items():
        if not is_relative(z.polygon) and Polygon(z.polygon).intersection(picture).area == 0:
            problems.append((("cameras", name, "zones", zone, "polygon"), f"lies {where}"))
    for line, ln in cam.lines.items():
        if not is_relative(ln.points) and _line_misses(ln.points, ln.segment, picture):
            problems.append((("cameras", name, "lines", line, "points"), f"lies {where}"))
    return problems
