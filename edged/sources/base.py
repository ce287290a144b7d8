"""The source state machine shared by every kind of camera."""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

import numpy as np

from edged.config.camera import SourceConfig
from edged.frame import Frame
from edged.sources.slot import FrameSlot

log = logging.getLogger(__name__)


class SourceState(str, Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    STOPPED = "stopped"


class SourceError(Exception):
    """The source cannot be opened or read; ``retry`` says whether trying again may help."""

    def __init__(self, message: str, retry: bool = True) -> None:
        super().__init__(message)
        self.retry = retry


@dataclass(frozen=True, slots=True)
class StateChange:
    camera: str
    state: SourceState
    reason: str
    attempt: int


Outcome = Literal["ended", "broken", "reopen", "stopped"]

_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


def redact(uri: str) -> str:
    """The URI with any ``user:password@`` replaced, for logs and events."""
    return _CREDENTIALS.sub("***@", uri)


class Capture(ABC):
    """An open stream: ``read`` returns the next picture and its stream time, None at the end."""

    fps: float | None

    @abstractmethod
    def read(self) -> tuple[np.ndarray, float | None] | None: ...

    @abstractmethod
    def close(self) -> None: ...


class Source(ABC):
    """Runs one camera on its own thread: open → stream → (reconnect | end) → stopped.

    Frames go into ``slot``; state changes go to ``on_state``. ``detect_fps`` throttles what
    is handed over, not what is decoded, so the stream is never left to back up.
    """

    backoff_floor_s = 0.5
    backoff_ceiling_s = 30.0

    def __init__(
        self,
        camera: str,
        config: SourceConfig,
        slot: FrameSlot,
        on_state: Callable[[StateChange], None],
    ) -> None:
        self.camera = camera
        self.config = config
        self.slot = slot
        self._on_state = on_state
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"source-{camera}", daemon=True)
        self.state = SourceState.CONNECTING
        self.decoded = 0
        self.failed: Exception | None = None

    @abstractmethod
    def open(self) -> Capture:
        """Open the stream or raise ``SourceError``."""

    @property
    def live(self) -> bool:
        """Live sources drop stale frames; files read as fast as possible do not."""
        return True

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.slot.close()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _set(self, state: SourceState, reason: str = "", attempt: int = 0) -> None:
        if state is self.state and state is not SourceState.RECONNECTING:
            return
        self.state = state
        self._on_state(StateChange(self.camera, state, reason, attempt))

    def _run(self) -> None:
        attempt = 0
        try:
            while not self._stop.is_set():
                try:
                    capture = self.open()
                except SourceError as exc:
                    if not exc.retry:
                        log.error("%s: %s", self.camera, exc)
                        self._set(SourceState.STOPPED, str(exc))
                        return
                    attempt += 1
                    delay = self._backoff(attempt)
                    log.warning("%s: %s; retry %d in %.1f s", self.camera, exc, attempt, delay)
                    self._set(SourceState.RECONNECTING, str(exc), attempt)
                    self._stop.wait(delay)
                    continue
                attempt = 0
                self._set(SourceState.STREAMING)
                try:
                    outcome = self._stream(capture)
                except SourceError as exc:
                    log.error("%s: %s", self.camera, exc)
                    self._set(SourceState.STOPPED, str(exc))
                    return
                finally:
                    capture.close()
                if outcome == "ended":
                    self._set(SourceState.ENDED, "end of stream")
                    return
                if outcome == "broken" and not self._stop.is_set():
                    attempt += 1
                    self._set(SourceState.RECONNECTING, "stream interrupted", attempt)
                    self._stop.wait(self._backoff(attempt))
        except Exception as exc:
            # a bug or an unexpected decoder error ends this camera only, loudly
            log.exception("%s: source failed", self.camera)
            self.failed = exc
        finally:
            self.slot.close()
            if self.state is not SourceState.ENDED:
                self._set(SourceState.STOPPED, "stopped")

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_ceiling_s, self.backoff_floor_s * 2 ** (attempt - 1))
        return base * random.uniform(0.8, 1.2)

    def _stream(self, capture: Capture) -> Outcome:
        """Read until stop, a read failure, or the end of the stream."""
        period = 1.0 / self.config.detect_fps if self.config.detect_fps else 0.0
        next_due: float | None = None
        seq = 0
        while not self._stop.is_set():
            try:
                item = capture.read()
            except SourceError as exc:
                log.warning("%s: %s", self.camera, exc)
                return "broken"
            if item is None:
                return self.at_end(capture)
            image, pts = item
            self.decoded += 1
            self.pace(pts)
            frame = Frame(self.camera, seq, time.monotonic(), time.time(), image, pts)
            seq += 1
            if period:
                t = frame.media_ts
                if next_due is not None and t < next_due - 1e-3:  # rounding in stream time
                    continue
                # drift-free while keeping up; restart the grid after a gap
                next_due = (
                    t + period if next_due is None or next_due + period <= t else next_due + period
                )
            self.slot.put(frame, self._stop)
        return "stopped"

    def at_end(self, capture: Capture) -> Outcome:
        """What the end of the stream means: for a live camera, that the stream broke."""
        return "broken"

    def pace(self, pts: float | None) -> None:
        """Wait until the frame at stream time ``pts`` is due; a live camera paces itself."""
        return
