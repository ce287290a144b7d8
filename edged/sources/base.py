"""The source state machine shared by every kind of camera.

    connecting ──▶ streaming ──▶ ended (a file without loop)
        ▲   │          │
        │   ▼          ▼
    reconnecting ◀── stalled (no frame for stall_timeout_s, or a read failed)
        │
        ▼
     stopped (stop() in any state)

Every transition is reported through ``on_state``; retries back off exponentially with
jitter between the configured floor and ceiling, and the attempt count resets once a frame
arrives.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

import numpy as np

from edged.config.camera import SourceConfig
from edged.core import priority
from edged.core.frame import Frame
from edged.core.latency import Latency, RateMeter
from edged.core.redact import redact_text
from edged.sources.capture import Capture, SourceError
from edged.sources.slot import FrameSlot

log = logging.getLogger(__name__)


class SourceState(str, Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    ENDED = "ended"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class StateChange:
    camera: str
    state: SourceState
    reason: str = ""
    attempt: int = 0
    retry_in_s: float | None = None


Outcome = Literal["ended", "broken", "reopen", "stopped"]


class Source(ABC):
    """Runs one camera on its own thread. Frames go into ``slot``; state changes go to
    ``on_state``. ``detect_fps`` throttles what is handed over, not what is decoded, so a
    live stream never backs up."""

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
        self.decode_latency = Latency()  # decoding plus conversion of the frames handed over
        self.decode_rate = RateMeter()
        self.reconnects = 0
        self.failed: Exception | None = None
        self._seq = 0
        self._streamed = False
        # the motion gate: given a frame's brightness and stream time, whether it is handed
        # over; a frame it refuses is never converted to BGR
        self.admit: Callable[[np.ndarray, float], bool] | None = None

    @abstractmethod
    def open(self) -> Capture:
        """Open the stream or raise ``SourceError``; never blocks past the open timeout."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop from any state; the consumer sees the slot close at once, whatever the
        thread is blocked in (an open or a read ends by its own timeout)."""
        self._stop.set()
        self.slot.close()

    def join(self, timeout: float | None = None) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """``stop`` was called."""
        return self._stop.is_set()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _set(
        self,
        state: SourceState,
        reason: str = "",
        attempt: int = 0,
        retry_in_s: float | None = None,
    ) -> None:
        self.state = state
        self._on_state(StateChange(self.camera, state, reason, attempt, retry_in_s))

    def _run(self) -> None:
        priority.background()
        attempt = 0
        self._set(SourceState.CONNECTING)
        try:
            while not self._stop.is_set():
                try:
                    capture = self.open()
                except SourceError as exc:
                    attempt += 1
                    self._retry(redact_text(str(exc)), attempt)
                    continue
                if self._stop.is_set():
                    capture.close()
                    break
                try:
                    outcome, reason = self._stream(capture)
                finally:
                    capture.close()
                # a decoder's message may quote the URI it failed on
                reason = redact_text(reason)
                if outcome == "ended":
                    self._set(SourceState.ENDED, "end of stream")
                    return
                if outcome == "broken":
                    attempt = 1 if self._streamed else attempt + 1
                    self._set(SourceState.STALLED, reason, attempt)
                    self._retry(reason, attempt)
        except Exception as exc:
            # a bug or an unexpected backend error ends this camera only, loudly
            log.exception("%s: source failed", self.camera)
            self.failed = exc
        finally:
            self.slot.close()
            if self.state is not SourceState.ENDED:
                self._set(SourceState.STOPPED, "failed" if self.failed else "stopped")

    def _retry(self, reason: str, attempt: int) -> None:
        if self._stop.is_set():
            return
        delay = self.backoff(attempt)
        self.reconnects += 1
        log.warning("%s: %s; retry %d in %.1f s", self.camera, reason, attempt, delay)
        self._set(SourceState.RECONNECTING, reason, attempt, round(delay, 3))
        self._stop.wait(delay)
        if not self._stop.is_set():
            self._set(SourceState.CONNECTING, reason, attempt)

    def backoff(self, attempt: int) -> float:
        r = self.config.reconnect
        # the exponent stops growing once the ceiling is reached: 2.0 ** 1025 overflows, and a
        # camera down for a night reaches that many attempts
        doublings = min(attempt - 1, math.ceil(math.log2(r.ceiling_s / r.floor_s)) + 1)
        base = min(r.ceiling_s, r.floor_s * 2.0 ** max(doublings, 0))
        return base * random.uniform(1 - r.jitter, 1 + r.jitter)

    def _stream(self, capture: Capture) -> tuple[Outcome, str]:
        """Read until stop, a failure or stall, or the end of the stream."""
        period = 1.0 / self.config.detect_fps if self.config.detect_fps else 0.0
        next_due: float | None = None
        self._streamed = False
        last_frame = time.monotonic()
        while not self._stop.is_set():
            try:
                item = capture.read()
            except SourceError as exc:
                return "broken", str(exc)
            now = time.monotonic()
            if item is None:
                return self.at_end(capture)
            if now - last_frame > self.config.stall_timeout_s:
                # frames trickle in far too slowly (or only as undecodable packets)
                return "broken", f"stalled: no frame for {now - last_frame:.1f} s"
            last_frame = now
            self.decoded += 1
            self.decode_rate.tick()
            if not self._streamed:
                self._streamed = True
                self._set(SourceState.STREAMING)
            media_ts = self.media_time(item.pts, now)
            self.pace(media_ts)
            if period:
                if next_due is not None and media_ts < next_due - 1e-3:  # stream-time rounding
                    continue
                # drift-free while keeping up; restart the grid after a gap
                if next_due is None or next_due + period <= media_ts:
                    next_due = media_ts + period
                else:
                    next_due += period
            # a frame the gate refuses keeps its number: a gap in ``seq`` is a skipped frame
            seq, self._seq = self._seq, self._seq + 1
            try:
                admit = self.admit
                if admit is not None and not admit(item.brightness(), media_ts):
                    continue
                t0 = time.perf_counter()
                image = item.to_bgr()
            except SourceError as exc:
                return "broken", str(exc)
            self.decode_latency.observe(item.decode_s + time.perf_counter() - t0)
            wall_ts = self.wall_time(media_ts, time.time())
            frame = Frame(self.camera, seq, time.monotonic(), wall_ts, media_ts, image, item.pts)
            self.slot.put(frame, self._stop)
        return "stopped", "stopped"

    def media_time(self, pts: float | None, mono: float) -> float:
        """The timeline analytics use: the capture clock for live cameras."""
        return mono

    def wall_time(self, media_ts: float, now: float) -> float:
        """The wall-clock time payloads give the frame at ``media_ts`` captured at ``now``
        (``time.time()``): that capture time, for a camera and a file paced like one."""
        return now

    def at_end(self, capture: Capture) -> tuple[Outcome, str]:
        """What the end of the stream means: for a live camera, that the stream broke."""
        return "broken", "the stream ended"

    def pace(self, media_ts: float) -> None:
        """Wait until the frame at ``media_ts`` is due; a live camera paces itself."""
        return
