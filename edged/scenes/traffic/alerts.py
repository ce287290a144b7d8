"""Traffic alerts: per passage wrong way, stopped vehicle and speeding; per lane congestion.

Wrong way: the vehicle is ``distance_m`` back from the furthest point of its passage,
reached at least ``min_s`` ago; it ends when it has driven ``distance_m`` the right way
again. Stopped: slower than ``speed`` for ``after_s``, until faster than ``resume_speed``.
Speeding: above the lane's limit for ``speeding_s``. Congestion: at least ``min_vehicles``
in the lane at a mean speed below ``speed`` for ``after_s``, clear after ``clear_s``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from edged.analytics.alerts import Alerts
from edged.analytics.speed import Motion, convert, to_mps
from edged.analytics.tracked import TrackedFrame
from edged.config.scene_traffic import TrafficConfig
from edged.core.event import Event
from edged.core.hold import Hold
from edged.scenes.traffic.state import Lane, Passage, PassageAlerts, Vehicle

PASSAGE_ALERTS = ("wrong_way", "stopped_vehicle", "speeding")


class TrafficAlerts:
    def __init__(self, camera: str, config: TrafficConfig, lanes: Collection[str]) -> None:
        self.config = config
        self.unit = config.unit
        self.alerts = Alerts(camera)
        st = config.stopped
        # (stopped below, moving again above) in m/s
        self.stop_speeds = (
            None
            if st is None
            else (to_mps(st.speed, self.unit), to_mps(st.resume_speed or st.speed, self.unit))
        )
        c = config.congestion
        self.congested: dict[str, Hold[bool]] = (
            {name: Hold({True: c.after_s, False: c.clear_s}, state=False) for name in lanes}
            if c is not None
            else {}
        )

    def new_passage(self) -> PassageAlerts:
        """The alert states of a new passage: nothing reported."""
        st = self.config.stopped
        return PassageAlerts(
            None if st is None else Hold({True: st.after_s, False: 0.0}, state=False),
            Hold({True: self.config.speeding_s, False: 0.0}, state=False),
        )

    def observe(
        self, tf: TrackedFrame, lane: Lane, v: Vehicle, p: Passage, motion: Motion | None
    ) -> list[Event]:
        """The passage's alerts after this frame's observation of it."""
        now = tf.media_ts
        out: list[Event] = []
        if p.s > p.s_max:
            p.s_max, p.t_s_max = p.s, now
        details = {"lane": lane.name, "track_id": p.vid, "label": v.label}
        subject = f"{lane.name}/{p.vid}"
        state = p.alerts
        ww = self.config.wrong_way
        if ww is not None:
            if not state.wrong_way:
                state.wrong_way = p.s_max - p.s >= ww.distance_m and now - p.t_s_max >= ww.min_s
                p.s_low = p.s
            else:
                p.s_low = min(p.s_low, p.s)
                if p.s - p.s_low >= ww.distance_m:  # it turned round and drives the right way
                    state.wrong_way = False
                    p.s_max, p.t_s_max = p.s, now
            out += self.alerts.update(
                "wrong_way",
                subject,
                state.wrong_way,
                now,
                tf.wall_ts,
                {**details, "direction": lane.named, **self._speed(p.speed)},
            )
        if motion is None:
            return out
        stopped, speeds = state.stopped, self.stop_speeds
        if stopped is not None and speeds is not None:
            threshold = speeds[1] if stopped.state else speeds[0]
            if stopped.update(bool(motion.speed < threshold), now):
                out += self.alerts.update(
                    "stopped_vehicle",
                    subject,
                    bool(stopped.state),
                    now,
                    tf.wall_ts,
                    {**details, **self._speed(motion.speed)},
                )
        limit = lane.limit_mps
        if limit is not None and state.speeding.update(bool(motion.speed > limit), now):
            out += self.alerts.update(
                "speeding",
                subject,
                bool(state.speeding.state),
                now,
                tf.wall_ts,
                {
                    **details,
                    "limit": round(convert(limit, self.unit), 1),
                    **self._speed(p.speed_max, "max_speed"),
                },
            )
        return out

    def end(self, tf: TrackedFrame, p: Passage, reason: str) -> list[Event]:
        """End the passage's alerts (it closed, or became another vehicle's)."""
        out: list[Event] = []
        subject = f"{p.lane}/{p.vid}"
        for kind in PASSAGE_ALERTS:
            out += self.alerts.update(
                kind,
                subject,
                False,
                tf.media_ts,
                tf.wall_ts,
                {"reason": reason, **self._speed(p.speed_max, "max_speed")}
                if kind == "speeding"
                else {"reason": reason},
            )
        p.alerts.ended()
        return out

    def congestion(self, tf: TrackedFrame, present: Callable[[str], list[Passage]]) -> list[Event]:
        """Congestion per lane, from the passages ``present`` in it."""
        cfg = self.config.congestion
        if cfg is None:
            return []
        out: list[Event] = []
        slow = to_mps(cfg.speed, self.unit)
        for name, hold in self.congested.items():
            here = present(name)
            speeds = [p.speed for p in here if p.speed is not None]
            mean = float(np.mean(speeds)) if speeds else None
            raw = len(here) >= cfg.min_vehicles and mean is not None and mean < slow
            if hold.update(raw, tf.media_ts):
                out += self.alerts.update(
                    "congestion",
                    name,
                    bool(hold.state),
                    tf.media_ts,
                    tf.wall_ts,
                    {"lane": name, "vehicles": len(here), **self._speed(mean, "mean_speed")},
                )
        return out

    def finish(self, tf: TrackedFrame) -> list[Event]:
        """The stream ended: every alert ends."""
        out: list[Event] = []
        for name, hold in self.congested.items():
            hold.force(False)
            out += self.alerts.update("congestion", name, False, tf.media_ts, tf.wall_ts)
        return out + self.alerts.end_all(tf.media_ts, tf.wall_ts)

    def _speed(self, mps: float | None, key: str = "speed") -> dict[str, Any]:
        return {key: None if mps is None else round(convert(mps, self.unit), 1), "unit": self.unit}
