"""What the traffic scene keeps: its lanes, the vehicles it sees, and each vehicle's passage
through a lane with that passage's alert states."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from shapely.geometry import Polygon

from edged.core.hold import Hold


@dataclass(slots=True)
class Lane:
    name: str
    polygon: Polygon
    direction: np.ndarray  # unit vector on the road plane
    named: str | list[float]
    group: str
    limit_mps: float | None
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {"forward": {}, "reverse": {}}
    )


@dataclass(slots=True)
class Vehicle:
    vid: int  # the id of its first track: what payloads call the vehicle's track_id
    tracks: set[int]  # live tracks
    votes: dict[str, float] = field(default_factory=dict)
    counted_lanes: set[str] = field(default_factory=set)
    counted_groups: set[str] = field(default_factory=set)
    last_seen: float = 0.0
    history: set[int] = field(default_factory=set)  # every track it ever had

    @property
    def label(self) -> str:
        return max(self.votes.items(), key=lambda kv: kv[1])[0]


@dataclass(slots=True)
class PassageAlerts:
    """A passage's alert states, each the state last reported: the wrong-way latch, and the
    stopped (None when that alert is off) and speeding conditions held over time."""

    stopped: Hold[bool] | None
    speeding: Hold[bool]
    wrong_way: bool = False

    def ended(self) -> None:
        """Its alerts were ended: none is active, and the held conditions keep their time."""
        self.wrong_way = False
        if self.stopped is not None:
            self.stopped.force(False)
        self.speeding.force(False)


@dataclass(slots=True)
class Passage:
    lane: str
    vid: int
    entered: float  # media time
    entered_wall: float
    s_first: float  # position along the lane (metres) when it entered
    s: float
    last_seen: float
    alerts: PassageAlerts
    s_max: float = 0.0
    t_s_max: float = 0.0
    s_low: float = 0.0
    outside_since: float | None = None
    qualified: bool = False  # moved min_travel_m along the lane
    counted: str | None = None  # the direction it was counted in
    label: str | None = None  # the label it was counted as
    # speed statistics over the passage (m/s), time-weighted
    speed: float | None = None
    v_along: float | None = None  # m/s along the lane's direction
    speed_ts: float | None = None
    speed_sum: float = 0.0
    speed_time: float = 0.0
    speed_max: float = 0.0
