"""An error about one field of the config, found after validation (with models loaded)."""

from __future__ import annotations

from collections.abc import Iterable


def dotted(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class FieldError(ValueError):
    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(f"{dotted(loc)}: {message}")
        self.loc = loc
        self.message = message
