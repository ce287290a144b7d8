"""Progress of a TensorRT build: its ``IProgressMonitor`` callbacks as reports to a Python
callback, which may cancel the build."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class BuildProgress:
    """One report from TensorRT's builder: a phase started, a step of it completed, or the
    phase finished; ``elapsed_s`` since the build started."""

    event: str  # start | step | finish
    phase: str
    parent: str | None
    step: int
    steps: int
    elapsed_s: float

    def __str__(self) -> str:
        where = f"{self.parent} › {self.phase}" if self.parent else self.phase
        if self.event == "step":
            return f"[{self.elapsed_s:7.1f} s] {where}: {self.step}/{self.steps}"
        return f"[{self.elapsed_s:7.1f} s] {where}: {self.event}"


ProgressCallback = Callable[[BuildProgress], "bool | None"]


class ProgressRelay:
    """The Python side of ``trt.IProgressMonitor``: turns TensorRT's callbacks into
    :class:`BuildProgress` reports. The callback may return False to cancel the build; an
    exception in it cancels the build and is raised again after it."""

    def __init__(self, callback: ProgressCallback, started: float | None = None) -> None:
        self.callback = callback
        self.started = time.monotonic() if started is None else started
        self.cancelled = False
        self.error: BaseException | None = None
        self._steps: dict[str, int] = {}
        self._parents: dict[str, str | None] = {}

    def _emit(self, event: str, phase: str, step: int) -> None:
        if self.error is not None:
            return
        report = BuildProgress(
            event,
            phase,
            self._parents.get(phase),
            step,
            self._steps.get(phase, 0),
            time.monotonic() - self.started,
        )
        try:
            if self.callback(report) is False:
                self.cancelled = True
        except Exception as exc:  # must not unwind through TensorRT's C++ frames
            self.error = exc
            self.cancelled = True

    def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
        self._steps[phase_name] = int(num_steps)
        self._parents[phase_name] = parent_phase or None
        self._emit("start", phase_name, 0)

    def step_complete(self, phase_name: str, step: int) -> bool:
        self._emit("step", phase_name, int(step) + 1)
        return not self.cancelled

    def phase_finish(self, phase_name: str) -> None:
        self._emit("finish", phase_name, self._steps.get(phase_name, 0))


def progress_monitor(trt: Any, callback: ProgressCallback, started: float) -> ProgressRelay:
    """A ``trt.IProgressMonitor`` of the TensorRT module ``trt`` relaying to ``callback``."""

    class Monitor(ProgressRelay, trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            ProgressRelay.__init__(self, callback, started)

    return Monitor()
