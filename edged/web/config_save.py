"""The editor's save: a camera's zones and lines written into the config file, checked by
the same rules as ``edged check`` before the file is touched, the previous file kept as a
backup, then applied by the reload that SIGHUP triggers."""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edged.config import ConfigError
from edged.config.edit import Geometry, set_geometry
from edged.web.recent import RecentEvents

log = logging.getLogger(__name__)

BACKUPS_KEPT = 10
RELOAD_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class ConfigFile:
    """The file the daemon runs from. ``check`` loads a file as ``edged check`` would (the
    daemon's own ``--set`` overrides included) and raises ``ConfigError``."""

    path: Path
    check: Callable[[Path], object]


@dataclass(frozen=True, slots=True)
class Saved:
    ok: bool
    errors: list[str] = field(default_factory=list)
    backup: str | None = None
    reload: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "errors": self.errors, "backup": self.backup, "reload": self.reload}


class ConfigSaver:
    """``reload`` asks the daemon's main loop for the reload SIGHUP asks for; its outcome
    comes back as the ``config_reload`` event that ``recent`` keeps."""

    def __init__(self, file: ConfigFile, recent: RecentEvents, reload: Callable[[], None]) -> None:
        self.file = file
        self.recent = recent
        self.reload = reload
        self._lock = threading.Lock()  # one save at a time: each reads what the last wrote

    def save(self, camera: str, geometry: Geometry) -> Saved:
        with self._lock:
            path = self.file.path
            try:
                text = path.read_text(encoding="utf-8")
                new = set_geometry(text, camera, geometry)
            except OSError as exc:
                return Saved(False, [f"cannot read {path}: {exc.strerror}"])
            except ConfigError as exc:
                return Saved(False, [f"{path}: {p}" for p in exc.problems])
            try:
                candidate = self._candidate(path, new)
            except OSError as exc:
                return Saved(False, [_unwritable(path, exc)])
            try:
                try:
                    self.file.check(candidate)
                except ConfigError as exc:
                    # the messages name the candidate; the user knows the file by its name
                    problems = [p.replace(str(candidate), str(path)) for p in exc.problems]
                    return Saved(False, problems)
                backup = self._backup(path, text)
                os.replace(candidate, path)
            except OSError as exc:
                return Saved(False, [_unwritable(path, exc)])
            finally:
                candidate.unlink(missing_ok=True)
            seen = self.recent.reloads
            log.info("console: %s saved for camera %s (backup %s); reloading", path, camera, backup)
            self.reload()
            outcome = self.recent.reload_after(seen, RELOAD_WAIT_S)
            if outcome is None:
                return Saved(
                    False, [f"saved, but no reload within {RELOAD_WAIT_S:g} s"], str(backup)
                )
            ok = outcome.get("status") == "ok" and camera not in outcome.get("failed", {})
            return Saved(ok, list(outcome.get("errors", [])), str(backup), outcome)

    def _candidate(self, path: Path, text: str) -> Path:
        """The new text beside the file (its relative paths mean the same), same mode."""
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".new", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(name, path.stat().st_mode & 0o7777)
        return Path(name)

    def _backup(self, path: Path, text: str) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        backup = path.with_name(f"{path.name}.{stamp}.bak")
        n = 1
        while backup.exists():
            n += 1
            backup = path.with_name(f"{path.name}.{stamp}-{n}.bak")
        backup.write_text(text, encoding="utf-8")
        old = sorted(path.parent.glob(f"{path.name}.*.bak"), key=lambda p: p.stat().st_mtime)
        for doomed in old[:-BACKUPS_KEPT]:
            doomed.unlink(missing_ok=True)
        return backup


def _unwritable(path: Path, exc: OSError) -> str:
    return (
        f"cannot write {path} or beside it ({exc.strerror}); copy the YAML into the file by"
        " hand, or let edged write there (systemd: ReadWritePaths= for its folder)"
    )
