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


def source_problems(name: str, cam: CameraConfig, decode: bool = True) -> list[tuple[Loc, str]]:
    """``decode``: also open the file and decode its first frame (not while cameras run: a
    reload of a running daemon opening files beside its decoders hung in PyAV)."""
    source = cam.source
    if not cam.enabled or source.resolved_kind != "file":
        return []
    loc: Loc = ("cameras", name, "source", "uri")
    if source.network_address:
        return [(loc, f"kind is file, but {source.uri} is a network address (kind: rtsp or auto)")]
    path = Path(source.uri.removeprefix("file://"))
    if not path.exists():
        return [(loc, f"file not found: {path}")]
    if not path.is_file():
        return [(loc, f"{path} is not a file")]
    if not decode:
        return []
    try:
        frame = first_frame(source, path)
    except SourceError as exc:
        return [(loc, str(exc))]
    if frame is None:
        return [(loc, f"{path}: no decodable frame")]
    return []
