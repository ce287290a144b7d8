"""File sources that cannot run: a file that is not there, is not a video, or a network
address given ``kind: file``. The daemon would retry such a camera forever ("file not
found"); ``edged check`` (and a reload) says so at once. Streams and USB cameras are
checked only when they run: they may come and go."""

from __future__ import annotations

from pathlib import Path

from edged.config.camera import CameraConfig
from edged.config.root import Loc
from edged.service.check_frames import first_frame
from edged.sources.capture import SourceError

Size = tuple[int, int]


def source_problems(
    name: str, cam: CameraConfig, decode: bool = True
) -> tuple[list[tuple[Loc, str]], Size | None]:
    """The camera's source problems, and its picture's (width, height) when its first frame
    was decoded. ``decode``: also open the file and decode that frame (not while cameras
    run: a reload of a running daemon opening files beside its decoders hung in PyAV)."""
    source = cam.source
    if not cam.enabled or source.resolved_kind != "file":
        return [], None
    loc: Loc = ("cameras", name, "source", "uri")
    if source.network_address:
        why = f"kind is file, but {source.uri} is a network address (kind: rtsp or auto)"
        return [(loc, why)], None
    path = Path(source.uri.removeprefix("file://"))
    if not path.exists():
        return [(loc, f"file not found: {path}")], None
    if not path.is_file():
        return [(loc, f"{path} is not a file")], None
    if not decode:
        return [], None
    try:
        frame = first_frame(source, path)
    except SourceError as exc:
        return [(loc, str(exc))], None
    if frame is None:
        return [(loc, f"{path}: no decodable frame")], None
    height, width = frame.to_bgr().shape[:2]
    return [], (width, height)
