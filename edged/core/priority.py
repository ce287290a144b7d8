"""Thread priorities: inference first; decoding takes the cycles it leaves."""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger(__name__)

# On a box where the detector's threads fill every core, a decode thread that takes a core
# mid-inference stalls ONNX Runtime's parallel loops, which wait for their slowest thread; at
# a lower priority it runs in the gaps between their kernels instead. Analytics keeps the
# normal priority: the inference worker hands it results through a bounded queue, and a
# starved consumer would stall inference in turn.
BACKGROUND_NICE = 5


def background() -> None:
    """Lower the calling thread's priority (Linux: per thread; elsewhere a no-op)."""
    if not hasattr(os, "setpriority") or not hasattr(threading, "get_native_id"):
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, max(current, BACKGROUND_NICE))
    except OSError as exc:
        log.warning(
            "could not lower the priority of thread %s: %s", threading.current_thread().name, exc
        )
