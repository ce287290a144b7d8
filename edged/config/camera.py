"""One camera: where its frames come from, what to detect, how to track, what to count."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from edged.config.base import (
    MAX_DURATION_S,
    PositiveSeconds,
    Seconds,
    StrictModel,
    topic_level_names,
)
from edged.config.events import ObjectUpdatesConfig
from edged.config.geometry import Points, PolygonPoints, is_relative
from edged.config.paths import resolve
from edged.config.scenes import SceneConfig
from edged.config.snapshots import SnapshotConfig
from edged.core.detections import Anchor

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
# beyond any camera: 16K pictures, 1000 frames a second
MAX_SIDE = 16384
MAX_FPS = 1000.0


class ReconnectConfig(StrictModel):
    """Exponential backoff between attempts: floor, doubling up to the ceiling, ±jitter."""

    floor_s: PositiveSeconds = 1.0
    ceiling_s: PositiveSeconds = 30.0
    jitter: float = Field(0.2, ge=0, lt=1, description="± this fraction of each delay")

    @model_validator(mode="after")
    def _ordered(self) -> ReconnectConfig:
        if self.ceiling_s < self.floor_s:
            raise ValueError("ceiling_s must not be below floor_s")
        return self


class UsbConfig(StrictModel):
    """What to ask a V4L2 device for; the driver may pick the nearest mode it has."""

    width: int | None = Field(None, gt=0, le=MAX_SIDE)
    height: int | None = Field(None, gt=0, le=MAX_SIDE)
    fps: float | None = Field(None, gt=0, le=MAX_FPS)
    fourcc: Literal["MJPG", "YUYV", "H264"] | None = None


class SourceConfig(StrictModel):
    uri: str = Field(description="file path, rtsp://…, http(s)://…, /dev/videoN or a USB index")
    kind: Literal["auto", "file", "rtsp", "usb"] = "auto"
    detect_fps: float | None = Field(
        None, gt=0, le=MAX_FPS, description="detect at most this often"
    )
    realtime: bool = Field(True, description="files: pace at the clip's rate (false: fast)")
    loop: bool = Field(False, description="files: start again at the end")
    transport: Literal["tcp", "udp"] = Field("tcp", description="RTSP transport")
    open_timeout_s: PositiveSeconds = Field(10.0, description="give up opening after this long")
    read_timeout_s: PositiveSeconds = Field(5.0, description="a read blocked this long fails")
    stall_timeout_s: PositiveSeconds = Field(10.0, description="no frame this long: reconnect")
    reconnect: ReconnectConfig = ReconnectConfig()
    usb: UsbConfig = UsbConfig()

    @field_validator("uri")
    @classmethod
    def _file_relative_to_config(cls, v: str, info: ValidationInfo) -> str:
        if _SCHEME.match(v) or v.isdigit() or v.startswith("/dev/"):
            return v
        return str(resolve(Path(v), info))

    @property
    def resolved_kind(self) -> Literal["file", "rtsp", "usb"]:
        """``rtsp`` stands for every network stream FFmpeg can open (RTSP, HTTP, HLS…)."""
        if self.kind != "auto":
            return self.kind
        if self.uri.isdigit() or self.uri.startswith("/dev/video"):
            return "usb"
        if self.network_address:
            return "rtsp"
        return "file"

    @property
    def network_address(self) -> bool:
        """The uri names a network stream (a scheme other than ``file://``)."""
        return bool(_SCHEME.match(self.uri)) and not self.uri.lower().startswith("file://")


class MotionConfig(StrictModel):
    """Motion-gated detection: while nothing moves in the camera's region of interest (its
    zones, lines and scene areas; the whole picture when it has none) and nothing is tracked,
    the detector runs only every ``keep_alive_s``."""

    enabled: bool = True
    keep_alive_s: PositiveSeconds = Field(
        2.0, description="while still, detect this often (stream time), to see what stands still"
    )
    threshold: int = Field(
        14,
        ge=1,
        le=255,
        description="grey levels (0–255) a pixel of the blurred, downscaled picture must change "
        "from the running background, beyond the picture's overall change, to count",
    )
    min_area: float = Field(
        0.001,
        gt=0,
        le=1,
        description="share of the picture that must change inside the region of interest "
        "to count as motion",
    )
    margin: float = Field(
        0.05,
        ge=0,
        le=1,
        description="the region of interest reaches this far around each zone, line and scene "
        "area (share of the picture diagonal), so what approaches them is seen",
    )


# a line in pixels shorter than this was meant relative (see LineConfig)
MIN_PIXEL_LINE = 4.0
# what a label with no floor in its model's manifest is detected with by default; MOT15's
# people with the shipped NanoDet (benchmarks/eval_mot.py)
DEFAULT_MIN_SCORE = 0.35
# tracker thresholds that follow a detection's floor: the ratios of ByteTrack's settings to
# the floor that MOT15 was tuned at (0.5 and 0.6 over 0.35)
HIGH_OVER_FLOOR = 0.5 / DEFAULT_MIN_SCORE
NEW_OVER_FLOOR = 0.6 / DEFAULT_MIN_SCORE


class DetectConfig(StrictModel):
    model: str
    classes: list[str] | None = Field(None, description="labels to keep; all when absent")
    min_score: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="the least score kept, every class (default: the model's floor per label, "
        f"{DEFAULT_MIN_SCORE} for labels it has none for)",
    )
    min_scores: dict[str, Annotated[float, Field(ge=0.0, le=1.0)]] = Field(
        default_factory=dict, description="per label: the least score kept, over min_score"
    )
    min_area: float | None = Field(
        None, ge=0.0, description="the least box area kept (pixels², or a share of the picture ≤ 1)"
    )
    max_area: float | None = Field(
        None, gt=0.0, description="the largest box area kept (pixels², or a share ≤ 1)"
    )
    nms_iou: float = Field(0.5, gt=0.0, le=1.0)
    resize: Literal["model", "stretch", "letterbox"] = Field(
        "model",
        description="how a picture is fitted to the model's input: as the model's manifest "
        "says, stretched to fill it, or letterboxed (its shape kept)",
    )
    region: Literal["full", "roi"] = Field(
        "full",
        description="roi: detect in the box around the zones, lines and scene areas (plus "
        "roi_margin) at the model's full input size; full: the whole picture",
    )
    roi_margin: float = Field(0.05, ge=0.0, le=1.0, description="share of the picture diagonal")
    tiles: tuple[Annotated[int, Field(ge=1, le=4)], Annotated[int, Field(ge=1, le=4)]] = Field(
        (1, 1),
        description="columns × rows the picture (or region) is cut into, each a model input, "
        "merged by NMS (one batched run where the model takes a batch)",
    )
    tile_overlap: float = Field(
        0.15, ge=0.0, lt=1.0, description="how far tiles reach into their neighbours (share)"
    )
    same_object: list[list[str]] | None = Field(
        None,
        description="labels the detector gives one object by turns (car and truck): their boxes "
        "overlapping by nms_iou are one, the best kept (default: the vehicle group's labels "
        "the model knows; [] never)",
    )
    motion: MotionConfig = Field(
        MotionConfig(), description="motion gating of the detector (enabled: false: every frame)"
    )


class TrackerConfig(StrictModel):
    high_thresh: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description=f"first-stage score (default: {HIGH_OVER_FLOOR:.3g} × the detection's floor)",
    )
    low_thresh: float = Field(0.1, ge=0.0, le=1.0)
    new_track_thresh: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description=f"score to start a track (default: {NEW_OVER_FLOOR:.3g} × the detection's "
        "floor)",
    )
    min_hits: int = Field(2, ge=1)
    # 2 s and 0.1 were chosen on MOT15 (benchmarks/eval_mot.py): at 7–25 fps people pass
    # behind each other for over a second, and a stricter first match breaks their tracks.
    lost_track_buffer_s: float = Field(2.0, le=MAX_DURATION_S, ge=0.0)
    match_iou: float = Field(
        0.1, gt=0.0, le=1.0, description="first-stage minimum IoU × detection score"
    )
    class_aware: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> TrackerConfig:
        if self.high_thresh is not None and self.low_thresh > self.high_thresh:
            raise ValueError("low_thresh must not exceed high_thresh")
        return self


class ZoneConfig(StrictModel):
    polygon: PolygonPoints = Field(description="≥ 3 points, relative (0–1) or pixels")
    anchor: Anchor = Anchor.BOTTOM_CENTER
    classes: list[str] | None = None
    min_stay_s: Seconds = Field(0.0, description="inside this long before it counts")
    loiter_s: PositiveSeconds | None = Field(
        None, description="a loitering alert for an object staying this long"
    )
    crowd_threshold: int | None = Field(
        None, ge=1, description="a crowding alert while at least this many are inside"
    )
    queue: bool = Field(False, description="report queue length and estimated wait")
    occupancy_ratio: bool = Field(
        False, description="report the share of the zone covered by people (needs segment)"
    )


Direction = Literal["left_to_right", "right_to_left", "top_to_bottom", "bottom_to_top"]


class LineDirections(StrictModel):
    """Which crossing counts as ``in``; ``out`` is the opposite unless given."""

    model_config = StrictModel.model_config | {"populate_by_name": True}

    in_: Direction | None = Field(None, alias="in")
    out: Direction | None = None

    @model_validator(mode="after")
    def _distinct(self) -> LineDirections:
        if self.in_ is not None and self.in_ == self.out:
            raise ValueError("'in' and 'out' name the same direction")
        return self


class LineConfig(StrictModel):
    points: Points = Field(description="two points, relative (0–1) or pixels")
    anchor: Anchor = Anchor.BOTTOM_CENTER
    classes: list[str] | None = None
    directions: LineDirections = LineDirections()
    hysteresis: float = Field(
        0.01,
        ge=0,
        le=0.2,
        description="a side counts only this far from the line, as a share of the picture "
        "diagonal (jitter and stopping on the line change nothing)",
    )
    cancel_s: Seconds = Field(
        1.0, description="a crossing back within this long cancels instead of counting"
    )
    segment: bool = Field(True, description="false: the infinite line through the points")

    @field_validator("points")
    @classmethod
    def _two_points(cls, v: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(v) != 2:
            raise ValueError(f"a line needs exactly 2 points, got {len(v)}")
        if v[0] == v[1]:
            raise ValueError("the two points of a line must differ")
        length = math.dist(v[0], v[1])
        if not is_relative(v) and length < MIN_PIXEL_LINE:
            # [[1, 0], [2, 1]] meant as shares of the picture reads as pixels (2 is above 1)
            raise ValueError(
                f"is {length:.1f} px long: a value above 1 makes every point pixels; a line "
                f"in pixels needs at least {MIN_PIXEL_LINE:g} px, a relative one every value "
                "within 0–1"
            )
        return v


class SegmentConfig(StrictModel):
    """A person segmenter run on every detected frame, for zone occupancy ratios."""

    model: str
    threshold: float = Field(0.5, gt=0, lt=1, description="person probability that counts")
    min_change: float = Field(
        0.05, ge=0, le=1, description="report a zone's ratio when it moves this much"
    )


class CameraConfig(StrictModel):
    enabled: bool = True
    source: SourceConfig
    detect: DetectConfig
    segment: SegmentConfig | None = None
    scene: SceneConfig | None = Field(None, description="a scene preset's analytics and alerts")
    tracker: TrackerConfig = TrackerConfig()
    updates: ObjectUpdatesConfig = ObjectUpdatesConfig()
    snapshots: SnapshotConfig | None = Field(None, description="absent: no snapshots")
    zones: Annotated[dict[str, ZoneConfig], AfterValidator(topic_level_names)] = Field(
        default_factory=dict
    )
    lines: Annotated[dict[str, LineConfig], AfterValidator(topic_level_names)] = Field(
        default_factory=dict
    )


def alert_kinds(camera: CameraConfig) -> list[str]:
    """The alerts the camera can raise (topic ``<camera>/alerts/<kind>``): its zones' and
    its scene preset's."""
    kinds: set[str] = set()
    for zone in camera.zones.values():
        if zone.loiter_s is not None:
            kinds.add("loitering")
        if zone.crowd_threshold is not None:
            kinds.add("crowding")
    if camera.scene is not None:
        kinds.update(camera.scene.alerts)
    return sorted(kinds)
