"""A debounced state: a new value becomes the state only once it has held long enough."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, Literal, TypeVar

T = TypeVar("T")

Clock = Literal["elapsed", "observed"]


class Hold(Generic[T]):
    """The state behind a noisy condition or measurement.

    Each ``update`` reports the raw value now. A *run* is a stretch of updates with one raw
    value; a raw value other than the state becomes the state once its run has lasted its
    wait: ``wait_s`` is one wait for every value, or one per value (``{True: on_s, False:
    off_s}``: on_s to start, off_s to stop).

    ``clock`` says how long a run has lasted, on the caller's clock:

    - ``"elapsed"``: ``now - since``, whether or not anything was observed in between;
    - ``"observed"``: only the time between consecutive observations. An update with
      ``None`` (nothing observed: occluded, frozen) pauses the run rather than breaking it,
      so gaps can delay a change but neither hide one nor invent one.
    """

    def __init__(
        self,
        wait_s: float | Mapping[T, float],
        state: T | None = None,
        clock: Clock = "elapsed",
    ) -> None:
        self.wait_s = wait_s
        self.state = state
        self.clock = clock
        self.value: T | None = None  # the raw value of the current run
        self.since = 0.0  # when the current run began
        self.held_s = 0.0  # how long it has lasted, on the clock
        self._last: float | None = None  # the previous observation; None after a gap

    @property
    def candidate(self) -> T | None:
        """The value whose run may make it the state; None while the raw value is the state."""
        return None if self.value == self.state else self.value

    def update(self, value: T | None, now: float) -> bool:
        """Report the raw value at ``now`` (None: nothing observed); True when the state
        changed."""
        last, self._last = self._last, (None if value is None else now)
        if value is None:
            return False
        if value != self.value:
            self.value, self.since, self.held_s = value, now, 0.0
        elif self.clock == "elapsed":
            self.held_s = now - self.since
        elif last is not None:
            self.held_s += max(now - last, 0.0)
        if value == self.state:
            return False
        wait = self.wait_s[value] if isinstance(self.wait_s, Mapping) else self.wait_s
        if self.held_s < wait:
            return False
        self.state = value
        return True

    def force(self, state: T) -> None:
        """Make ``state`` the state at once (its change was reported some other way); the
        current run keeps its time, so a raw value that has already lasted its wait takes
        over again on the next update."""
        self.state = state
