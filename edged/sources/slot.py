"""The one-slot mailbox between a source and the inference worker."""

from __future__ import annotations

import threading

from edged.core.frame import Frame


class FrameSlot:
    """Holds at most one frame.

    ``latest`` (live cameras): a new frame replaces an untaken one, which is counted in
    ``dropped``, so a slow consumer always gets the newest picture and latency stays bounded.
    ``block`` (files read as fast as possible): ``put`` waits until the slot is empty, so no
    frame is skipped. ``wake`` is notified on every put and on close, so one consumer can wait
    on many slots.
    """

    def __init__(self, wake: threading.Condition, block: bool = False) -> None:
        self._wake = wake
        self.block = block
        self._frame: Frame | None = None
        self._closed = False
        self.dropped = 0
        self.put_count = 0

    def put(self, frame: Frame, stop: threading.Event) -> None:
        with self._wake:
            if self.block:
                while self._frame is not None and not self._closed and not stop.is_set():
                    self._wake.wait(0.1)
            elif self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self.put_count += 1
            self._wake.notify_all()

    def take(self) -> Frame | None:
        """The waiting frame, or None; never blocks. Call with or without the wake lock held."""
        with self._wake:
            frame, self._frame = self._frame, None
            if frame is not None:
                self._wake.notify_all()
            return frame

    def close(self) -> None:
        """No more frames will come (end of stream or stop)."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()

    @property
    def waiting(self) -> bool:
        """A frame is there to take."""
        return self._frame is not None

    @property
    def finished(self) -> bool:
        """Closed and nothing left to take."""
        return self._closed and self._frame is None
