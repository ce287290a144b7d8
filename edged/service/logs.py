"""Log format: timestamps on a terminal or in a file; ``<N>`` priorities for the journal.

Under systemd, stderr is connected to journald and ``JOURNAL_STREAM`` names that stream
(``device:inode``). journald stamps every line itself and reads a leading ``<N>`` as the
syslog priority (sd-daemon(3)), so ``journalctl -p warning -u edged`` filters by level.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from edged.core.redact import redact_text
from edged.service.terminal import StatusAwareHandler, area_for

# sd-daemon.h: SD_ERR 3, SD_WARNING 4, SD_INFO 6, SD_DEBUG 7 (SD_CRIT 2 for CRITICAL)
PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFormatter(logging.Formatter):
    """Every URI in a line, tracebacks included, has its credentials hidden (the last guard:
    a library's message may quote a camera URI)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


class JournalFormatter(RedactingFormatter):
    """``<priority>name: message``; every further line of a message (a traceback) carries the
    prefix too, since journald reads each line as its own entry."""

    def __init__(self) -> None:
        super().__init__("%(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        prio = PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return "\n".join(f"<{prio}>{line}" for line in super().format(record).splitlines())


def to_journal(stream: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Whether ``stream`` is the journal stream systemd connected (not merely inherited: a
    child whose stderr was redirected keeps the variable but not the stream)."""
    env = os.environ if env is None else env
    value = env.get("JOURNAL_STREAM")
    if not value:
        return False
    dev, _, ino = value.partition(":")
    try:
        st = os.fstat(stream.fileno())
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError):
        return False


def setup(level: str, stream: TextIO = sys.stderr) -> None:
    handler: logging.Handler = (
        StatusAwareHandler(area_for(stream)) if stream.isatty() else logging.StreamHandler(stream)
    )
    handler.setFormatter(
        JournalFormatter() if to_journal(stream) else RedactingFormatter(PLAIN_FORMAT)
    )
    logging.basicConfig(level=level, handlers=[handler])
