"""The live status line and log lines on one terminal: the status owns the last line, and a
log line clears it first and draws it again below, so the two never run together."""

from __future__ import annotations

import logging
import threading
from typing import TextIO

_CLEAR = "\r\x1b[2K"


class StatusArea:
    """The bottom line of ``out`` (a terminal), shared by the status and the log handler;
    both write under one lock, from any thread."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self._lock = threading.Lock()
        self._shown = ""

    def show(self, line: str) -> None:
        with self._lock:
            self._shown = line
            self.out.write(_CLEAR + line)
            self.out.flush()

    def write_above(self, text: str) -> None:
        """``text`` (whole lines) above the status line."""
        with self._lock:
            self.out.write((_CLEAR if self._shown else "") + text + self._shown)
            self.out.flush()

    def close(self) -> None:
        """Leave the last status on its own line."""
        with self._lock:
            if self._shown:
                self.out.write("\n")
                self.out.flush()
            self._shown = ""


class StatusAwareHandler(logging.StreamHandler):
    """A log handler for a terminal that also shows a ``StatusArea``."""

    def __init__(self, area: StatusArea) -> None:
        super().__init__(area.out)
        self.area = area

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.area.write_above(self.format(record) + self.terminator)
        except Exception:  # logging's own contract: a handler reports, never raises
            self.handleError(record)


_areas: dict[int, StatusArea] = {}


def area_for(out: TextIO) -> StatusArea:
    """The one status area of a terminal stream (the log handler's and the status's)."""
    return _areas.setdefault(id(out), StatusArea(out))
