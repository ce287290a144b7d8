"""The debounced state (edged.core.hold) on its own, and against the rules it replaced:
traffic's on/off debounce and stopped/speeding timers, the shelf's observed-time hold and a
zone's minimum stay, on random inputs."""

from __future__ import annotations

import numpy as np

from edged.core.hold import Hold


def test_observed_clock_needs_hold_s_of_observed_time_and_pauses_across_gaps() -> None:
    held = Hold[int](1.0, clock="observed")
    assert not held.update(1, 0.0)  # the first value waits hold_s too
    assert not held.update(1, 0.5)
    assert held.update(1, 1.0) and held.state == 1
    assert not held.update(0, 2.0)
    assert not held.update(None, 2.5)  # frozen: the gap doesn't count...
    assert not held.update(0, 4.0)  # ...so only 0 s observed so far
    assert not held.update(0, 4.5)
    assert held.update(0, 5.0) and held.state == 0 and held.since == 2.0 and held.held_s == 1.0
    assert not held.update(1, 6.0)
    assert not held.update(0, 6.5)  # the old value again: the candidate is gone
    assert held.candidate is None
    assert not held.update(1, 7.0) and held.candidate == 1 and held.since == 7.0


def test_elapsed_clock_counts_the_time_between_sparse_updates() -> None:
    hold = Hold[int](1.0)
    assert not hold.update(3, 0.0)
    assert not hold.update(None, 0.5)  # nothing observed: time runs on regardless
    assert hold.update(3, 1.0) and hold.state == 3 and hold.held_s == 1.0


def test_on_and_off_waits_and_a_break_restarts_the_run() -> None:
    flag = Hold({True: 2.0, False: 1.0}, state=False)
    assert not flag.update(True, 0.0)
    assert not flag.update(False, 1.0)  # broken before 2 s
    assert not flag.update(True, 1.5)
    assert not flag.update(True, 3.0)
    assert flag.update(True, 3.5) and flag.state is True
    assert not flag.update(False, 4.0)
    assert not flag.update(True, 4.5)  # broken before 1 s
    assert not flag.update(False, 5.0)
    assert flag.update(False, 6.0) and flag.state is False


def test_a_zero_wait_changes_on_the_first_update() -> None:
    flag = Hold({True: 0.0, False: 0.0}, state=False)
    assert flag.update(True, 5.0) and flag.state is True
    assert flag.update(False, 5.0) and flag.state is False


def test_force_sets_the_state_and_the_run_keeps_its_time() -> None:
    flag = Hold({True: 2.0, False: 0.0}, state=False)
    flag.update(True, 0.0)
    assert flag.update(True, 2.0) and flag.state is True
    flag.force(False)  # e.g. its alert was ended elsewhere
    assert flag.candidate is True
    assert flag.update(True, 2.1) and flag.state is True  # the run lasted 2.1 s already


# -- against the rules it replaced -------------------------------------------------------


class OldDebounce:
    def __init__(self, on_s: float, off_s: float) -> None:
        self.on_s, self.off_s, self.active = on_s, off_s, False
        self.since: float | None = None

    def update(self, raw: bool, now: float) -> bool:
        if raw == self.active:
            self.since = None
        elif self.since is None:
            self.since = now
        wait = self.off_s if self.active else self.on_s
        if self.since is not None and now - self.since >= wait:
            self.active = raw
            self.since = None
        return self.active


class OldHeld:
    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self.state: int | None = None
        self.candidate: int | None = None
        self.since, self.held_s = 0.0, 0.0
        self._last: float | None = None

    def update(self, value: int | None, ts: float) -> bool:
        last, self._last = self._last, (None if value is None else ts)
        if value is None:
            return False
        if value == self.state:
            self.candidate = None
            return False
        if value != self.candidate:
            self.candidate, self.since, self.held_s = value, ts, 0.0
        elif last is not None:
            self.held_s += max(ts - last, 0.0)
        if self.held_s >= self.hold_s:
            self.state, self.candidate = value, None
            return True
        return False


def runs(seeds: int) -> list[np.random.Generator]:
    return [np.random.default_rng(seed) for seed in range(seeds)]


def times(rng: np.random.Generator, n: int) -> list[float]:
    """``n`` media times, some repeated, at uneven steps up to 1 s."""
    return np.round(np.cumsum(rng.choice([0.0, 1 / 30, 0.1, 0.5, 1.0], n)), 6).tolist()


def test_same_as_the_on_off_debounce() -> None:
    for rng in runs(20):
        on_s, off_s = rng.choice([0.0, 0.5, 1.0, 2.0], 2).tolist()
        old, new = OldDebounce(on_s, off_s), Hold({True: on_s, False: off_s}, state=False)
        for now, raw in zip(times(rng, 300), rng.random(300) < rng.random(), strict=True):
            was = old.active
            assert new.update(bool(raw), now) == (old.update(bool(raw), now) != was)
            assert new.state == old.active


def test_same_as_the_observed_time_hold() -> None:
    for rng in runs(20):
        hold_s = float(rng.choice([0.0, 0.5, 1.5]))
        old, new = OldHeld(hold_s), Hold[int](hold_s, clock="observed")
        for now, v in zip(times(rng, 300), rng.integers(-1, 3, 300).tolist(), strict=True):
            value = None if v < 0 else v
            changed = old.update(value, now)
            assert new.update(value, now) == changed
            assert (new.state, new.candidate) == (old.state, old.candidate)
            if changed or old.candidate is not None:  # when the shelf reads them
                assert (new.since, new.held_s) == (old.since, old.held_s)


def test_same_as_the_stopped_and_speeding_timers_with_resets() -> None:
    """Stopped: slower than ``stop`` for ``after_s``, until faster than ``resume``;
    speeding: above the limit for ``after_s``. The reported flag is reset now and then (a
    merged vehicle's alerts end) while the timer runs on."""
    for rng in runs(20):
        stop, resume = 5.0, float(rng.choice([5.0, 8.0]))
        after_s = float(rng.choice([0.0, 1.0]))
        slow_since: float | None = None
        fast_since: float | None = None
        stopped = speeding = False
        new_stopped = Hold({True: after_s, False: 0.0}, state=False)
        new_speeding = Hold({True: after_s, False: 0.0}, state=False)
        for now, speed, reset in zip(
            times(rng, 300), rng.uniform(0, 12, 300), rng.random(300) < 0.05, strict=True
        ):
            if reset:
                stopped = speeding = False
                new_stopped.force(False)
                new_speeding.force(False)
            if speed < stop:
                slow_since = now if slow_since is None else slow_since
            elif speed >= resume or not stopped:
                slow_since = None
            was = stopped
            stopped = slow_since is not None and now - slow_since >= after_s
            threshold = resume if new_stopped.state else stop
            assert new_stopped.update(bool(speed < threshold), now) == (stopped != was)
            assert new_stopped.state == stopped
            fast_since = (now if fast_since is None else fast_since) if speed > 9.0 else None
            was = speeding
            speeding = fast_since is not None and now - fast_since >= after_s
            assert new_speeding.update(bool(speed > 9.0), now) == (speeding != was)
            assert new_speeding.state == speeding


def test_same_as_a_zone_minimum_stay() -> None:
    for rng in runs(10):
        min_stay_s = float(rng.choice([0.0, 0.4, 1.0]))
        ts = times(rng, 100)
        entered, stay = ts[0], Hold(min_stay_s, state=False)
        for now in ts:
            was = stay.state
            changed = stay.update(True, now)
            assert stay.state == (now - entered >= min_stay_s)
            assert changed == (stay.state and not was)
