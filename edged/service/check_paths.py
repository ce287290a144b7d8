"""The files and folders the daemon writes from its start: the journal, and each camera's
snapshot folder. Each must be a folder that exists or can be made, and takes new files; an
existing journal must be a file this user can write. Nothing is created here."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from edged.config import Config
from edged.config.root import Loc


def _unwritable(folder: Path) -> str | None:
    """Why a new file cannot be made in the existing folder ``folder``, or None."""
    try:
        # an unnamed file (O_TMPFILE where the file system has it): nothing is left behind
        with tempfile.TemporaryFile(dir=folder):
            return None
    except OSError as exc:
        return f"cannot write in {folder}: {exc.strerror or exc}"


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot hold new files once made (``mkdir -p``), or None."""
    existing = next(p for p in (folder, *folder.parents) if os.path.lexists(p))
    if not existing.is_dir():
        if existing == folder:
            return f"{folder} is not a folder"
        return f"{folder} cannot be created: {existing} is not a folder"
    why = _unwritable(existing)
    if why is None or existing == folder:
        return why
    return f"{folder} cannot be created: {why}"


def journal_problem(path: Path) -> str | None:
    """Why the journal cannot be opened for writing at ``path``, or None."""
    if path.is_dir():
        return f"{path} is a folder; the journal is one SQLite file (e.g. {path}/events.db)"
    why = folder_problem(path.parent)
    if why is not None or not os.path.lexists(path):
        return why
    if not path.is_file():
        return f"{path} is not a regular file; the journal is one SQLite file"
    try:
        with open(path, "r+b"):
            pass
    except OSError as exc:
        return f"cannot write {path}: {exc.strerror or exc}"
    # a file that is not SQLite, or a damaged one, is no problem: the daemon moves it aside
    # (nothing is deleted) and starts a fresh journal with what it could read
    return None


def path_problems(config: Config) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    why = journal_problem(config.journal.path)
    if why is not None:
        problems.append((("journal", "path"), why))
    for name, cam in config.cameras.items():
        if not cam.enabled or cam.snapshots is None or cam.snapshots.dir is None:
            continue
        # the snapshot writer keeps each camera's files in <dir>/<camera>
        why = folder_problem(cam.snapshots.dir / name)
        if why is not None:
            problems.append((("cameras", name, "snapshots", "dir"), why))
    return problems
