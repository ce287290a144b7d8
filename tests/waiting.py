"""Waiting on a condition with a timeout, for tests (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def poll(check: Callable[[], Any], timeout: float) -> Any:
    """The first truthy ``check()`` within ``timeout`` (re-checked every 0.1 s), else fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {check.__doc__ or check}")
        time.sleep(0.1)
