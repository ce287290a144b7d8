"""Settings of the traffic scene preset: lanes with their direction, a ground-plane
calibration for speeds, per-lane counts by class and direction, and wrong-way, stopped-vehicle,
congestion and speeding alerts."""

from __future__ import annotations

from itertools import combinations
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from edged.config.base import MAX_DURATION_S, StrictModel, topic_level_names
from edged.config.geometry import Points, PolygonPoints
from edged.config.scene_preset import PresetConfig
from edged.core.detections import Anchor

NamedDirection = Literal["left_to_right", "right_to_left", "top_to_bottom", "bottom_to_top"]
Unit = Literal["kmh", "mph"]
VEHICLES = ["car", "truck", "bus", "motorcycle", "bicycle"]


def _collinear(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> bool:
    cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    scale = max(abs(b[0] - a[0]) + abs(b[1] - a[1]), abs(c[0] - a[0]) + abs(c[1] - a[1]), 1e-12)
    return abs(cross) <= 1e-9 * scale * scale


def _spread(v: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(v) < 4:
        raise ValueError(f"a homography needs at least 4 points, got {len(v)}")
    if len(v) == 4 and any(_collinear(*t) for t in combinations(v, 3)):
        raise ValueError("three of the four points are on one line; the mapping is degenerate")
    return v


class CalibrationConfig(StrictModel):
    """Where ≥ 4 picture points lie on the road, in metres (any origin and axes, e.g. along and
    across the road). Four points give the exact perspective mapping; more are fitted by least
    squares."""

    image: Annotated[Points, AfterValidator(_spread)] = Field(
        description="picture points, relative (0–1) or pixels"
    )
    ground: Annotated[list[tuple[float, float]], AfterValidator(_spread)] = Field(
        description="the same points on the road plane, in metres"
    )

    @model_validator(mode="after")
    def _pairs(self) -> CalibrationConfig:
        if len(self.image) != len(self.ground):
            raise ValueError(
                f"image has {len(self.image)} points but ground has {len(self.ground)}"
            )
        return self


class LaneConfig(StrictModel):
    """A lane: the polygon its vehicles' anchors fall in, and the direction traffic may use."""

    polygon: PolygonPoints = Field(description="≥ 3 points, relative (0–1) or pixels")
    direction: NamedDirection | tuple[float, float] = Field(
        description="allowed direction: a named picture direction or a picture vector [dx, dy] "
        "(pixels, y down)"
    )
    group: str | None = Field(
        None,
        description="totals per group (e.g. one road direction) count each vehicle once even "
        "when it changes lanes; default: the lane's own name",
    )
    speed_limit: float | None = Field(
        None, gt=0, description="speeding alerts above this (the scene's unit); default: scene's"
    )

    @field_validator("direction")
    @classmethod
    def _nonzero(cls, v: str | tuple[float, float]) -> str | tuple[float, float]:
        if isinstance(v, tuple) and v[0] == 0 and v[1] == 0:
            raise ValueError("the direction vector must not be zero")
        return v


class WrongWayConfig(StrictModel):
    """A vehicle moving against its lane's direction this far and this long."""

    distance_m: float = Field(5.0, gt=0, description="metres travelled against the lane")
    min_s: float = Field(0.5, le=MAX_DURATION_S, ge=0, description="for at least this long")


class StoppedConfig(StrictModel):
    """A vehicle in a lane slower than ``speed`` for ``after_s``; the alert ends when it moves
    faster than ``resume_speed`` (default: ``speed``) or leaves."""

    speed: float = Field(5.0, gt=0, description="below this (the scene's unit) is stopped")
    after_s: float = Field(
        10.0, le=MAX_DURATION_S, ge=0, description="stopped this long before the alert"
    )
    resume_speed: float | None = Field(
        None, gt=0, description="the alert ends above this speed (default: speed)"
    )

    @model_validator(mode="after")
    def _hysteresis(self) -> StoppedConfig:
        if self.resume_speed is not None and self.resume_speed < self.speed:
            raise ValueError("resume_speed must not be below speed")
        return self


class CongestionConfig(StrictModel):
    """A lane with at least ``min_vehicles`` whose mean speed is below ``speed``, for
    ``after_s``; it clears when that has not been so for ``clear_s``."""

    min_vehicles: int = Field(3, ge=1)
    speed: float = Field(20.0, gt=0, description="mean speed below this (the scene's unit)")
    after_s: float = Field(10.0, le=MAX_DURATION_S, ge=0)
    clear_s: float = Field(5.0, le=MAX_DURATION_S, ge=0)


class TrafficConfig(PresetConfig):
    preset: Literal["traffic"]
    alerts: ClassVar[tuple[str, ...]] = ("wrong_way", "stopped_vehicle", "speeding", "congestion")
    event_kinds: ClassVar[tuple[str, ...]] = ("traffic_passage", "traffic_totals")

    classes: list[str] = Field(
        default_factory=lambda: list(VEHICLES), description="the labels that are vehicles"
    )
    unit: Unit = Field("kmh", description="speeds in config and payloads: kmh or mph")
    anchor: Anchor = Field(Anchor.BOTTOM_CENTER, description="the box point that lies on the road")
    calibration: CalibrationConfig
    lanes: Annotated[dict[str, LaneConfig], AfterValidator(topic_level_names)] = Field(min_length=1)
    speed_window_s: float = Field(
        1.0, le=MAX_DURATION_S, gt=0, description="speeds are fitted over this much media time"
    )
    min_travel_m: float = Field(
        5.0, gt=0, description="a lane passage counts when the vehicle moved this far along it"
    )
    exit_grace_s: float = Field(
        0.5,
        le=MAX_DURATION_S,
        ge=0,
        description="outside the lane this long ends a passage (bridges jitter)",
    )
    stitch_s: float = Field(
        1.5,
        le=MAX_DURATION_S,
        ge=0,
        description="a new track that appears in a lane where a vehicle lost up to this long "
        "ago would be by now continues that vehicle (0: never)",
    )
    stitch_m: float = Field(
        3.0, gt=0, description="how far from that predicted place it may appear (metres)"
    )
    merge_iou: float | None = Field(
        0.7,
        gt=0,
        le=1,
        description="tracks whose boxes overlap this much (e.g. car and truck boxes of one "
        "vehicle) are one vehicle; null: never merge",
    )
    speed_limit: float | None = Field(
        None, gt=0, description="speeding alerts above this (the scene's unit) in every lane"
    )
    speeding_s: float = Field(1.0, le=MAX_DURATION_S, ge=0, description="above the limit this long")
    wrong_way: WrongWayConfig | None = WrongWayConfig()
    stopped: StoppedConfig | None = StoppedConfig()
    congestion: CongestionConfig | None = CongestionConfig()

    @field_validator("classes")
    @classmethod
    def _some_classes(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("name at least one vehicle class")
        return v
