"""The right source for a camera's URI."""

from __future__ import annotations

from collections.abc import Callable

from edged.config.camera import SourceConfig
from edged.sources.base import Source, StateChange
from edged.sources.file import FileSource
from edged.sources.slot import FrameSlot
from edged.sources.stream import StreamSource, UsbSource

KINDS: dict[str, type[Source]] = {"file": FileSource, "rtsp": StreamSource, "usb": UsbSource}


def make_source(
    camera: str,
    config: SourceConfig,
    slot: FrameSlot,
    on_state: Callable[[StateChange], None],
) -> Source:
    return KINDS[config.resolved_kind](camera, config, slot, on_state)


def is_live(config: SourceConfig) -> bool:
    """Whether the camera's slot should drop stale frames (anything but a fast file read)."""
    return config.resolved_kind != "file" or config.realtime
