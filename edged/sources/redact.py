"""Credentials never appear in logs or events."""

from __future__ import annotations

import re

_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact(uri: str) -> str:
    """The URI with any ``user:password@`` replaced by ``***@``."""
    return _CREDENTIALS.sub("***@", uri)
