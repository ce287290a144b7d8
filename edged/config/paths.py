"""Relative paths in a config file mean relative to that file's folder."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationInfo


def resolve(path: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is None or path.is_absolute():
        return path
    return (Path(base) / path).resolve()


def existing_file(path: Path | None, info: ValidationInfo) -> Path | None:
    """A file the config names (TLS material, credentials): resolved, and there."""
    if path is None:
        return None
    found = resolve(path, info)
    if not found.is_file():
        raise ValueError(f"{found} is not a file")
    return found
