"""Zones and lines drawn in pixels wholly outside the picture can never count anything.
The picture's size is known before a start for a file (its first frame) and for a USB
camera asked for a width and height; for other sources (streams, a file that cannot be read
now: the source reports that itself when it runs) there is nothing to compare with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edged.config.camera import CameraConfig, SourceConfig
from edged.config.geometry import is_relative, line_misses, polygon_misses
from edged.config.root import Loc
from edged.sources.capture import Decoded, SourceError
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
        frame = first_frame(source, path)
    except SourceError:
        return None
    if frame is None:
        return None
    height, width = frame.to_bgr().shape[:2]
    return width, height


def first_frame(source: SourceConfig, path: Path) -> Decoded | None:
    """The file's first decoded frame (None: it has none); SourceError if it cannot be read."""
    capture = PyAVCapture(
        str(path),
        live=False,
        open_timeout_s=source.open_timeout_s,
        read_timeout_s=source.read_timeout_s,
        stall_timeout_s=source.stall_timeout_s,
    )
    try:
        return capture.read()
    finally:
        capture.close()


def frame_problems(
    name: str, cam: CameraConfig, size: tuple[int, int] | None = None
) -> list[tuple[Loc, str]]:
    """``size``: the picture's, when the caller decoded it already (else found here)."""
    if not cam.enabled or not (cam.zones or cam.lines):
        return []
    size = size or first_frame_size(cam.source)
    if size is None:
        return []
    width, height = size
    where = f"wholly outside the {width}x{height} picture of {cam.source.uri}"
    problems: list[tuple[Loc, str]] = []
    for zone, z in cam.zones.items():
        if not is_relative(z.polygon) and polygon_misses(np.asarray(z.polygon), width, height):
            problems.append((("cameras", name, "zones", zone, "polygon"), f"lies {where}"))
    for line, ln in cam.lines.items():
        if not is_relative(ln.points) and line_misses(
            np.asarray(ln.points), ln.segment, width, height
        ):
            problems.append((("cameras", name, "lines", line, "points"), f"lies {where}"))
    return problems
