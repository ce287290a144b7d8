"""Latency and rate meters filled on the hot path and read at scrape time.

Each meter has one writer thread (a camera's source, its analytics thread, a model's worker,
the publisher), so an observation is a few plain adds without a lock; a reader may see a
sample counted in ``count`` a moment before it shows in ``sum``, which no dashboard notices.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque

import numpy as np

# 100 µs … 10 s, 1-2.5-5 steps: a decode of a few ms and a broker round trip both resolve
BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
# percentiles for the stats topic come from the last RECENT samples (exact, not bucketed)
RECENT = 1024

# the stages one frame goes through, in order; ``motion`` (the motion gate's measure) only
# while the gate has a say, ``segment`` only on a camera that runs a person segmenter.
# ``publish`` is the broker's PUBACK round trip, measured per event by the publisher
# (device-wide), so it is not among a camera's stages
STAGES = (
    "decode",
    "motion",
    "preprocess",
    "inference",
    "postprocess",
    "segment",
    "tracking",
    "analytics",
    "journal",
)


class Latency:
    """A histogram with Prometheus's ``le`` buckets, plus the most recent samples."""

    __slots__ = ("_recent", "count", "counts", "sum")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0
        self._recent = np.zeros(RECENT)

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.sum += seconds
        self._recent[self.count % RECENT] = seconds
        self.count += 1

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative (le, count) pairs, ``+Inf`` last, as Prometheus wants them."""
        out, total = [], 0
        for bound, n in zip((*BUCKETS, float("inf")), list(self.counts), strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
        return out

    def samples(self) -> np.ndarray:
        """A copy of the recent samples (the last ``RECENT``), in no particular order."""
        return self._recent[: min(self.count, RECENT)].copy()

    def summary(self) -> dict[str, float | int] | None:
        """p50, p99 and mean in milliseconds over the recent samples; None before any."""
        recent = self.samples()
        if len(recent) == 0:
            return None
        p50, p99 = np.percentile(recent, [50, 99])
        return {
            "n": self.count,
            "p50_ms": round(float(p50) * 1000, 3),
            "p99_ms": round(float(p99) * 1000, 3),
            "mean_ms": round(float(recent.mean()) * 1000, 3),
        }


def stage_summary(stages: dict[str, Latency]) -> dict[str, dict[str, float | int]]:
    """p50/p99/mean per stage that has samples, for the stats topic."""
    out = {}
    for stage, latency in stages.items():
        summary = latency.summary()
        if summary is not None:
            out[stage] = summary
    return out


class RateMeter:
    """Events per second over the last ``window_s`` (or since the first event, if later)."""

    def __init__(self, window_s: float = 5.0, keep: int = 1024) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=keep)

    def tick(self) -> None:
        self._times.append(time.monotonic())

    @property
    def last(self) -> float | None:
        """Monotonic time of the latest event, None before the first."""
        times = self._times
        return times[-1] if times else None

    def rate(self) -> float:
        now = time.monotonic()
        times = list(self._times)  # one C-level copy: consistent against the writer
        if not times:
            return 0.0
        recent = sum(1 for t in times if t > now - self.window_s)
        # fewer seconds of history than the window (just started, or a full buffer at a
        # high rate): measure over what is held
        span = min(self.window_s, now - times[0])
        return recent / span if span > 0 else 0.0
