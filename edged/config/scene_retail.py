"""Settings of the retail_shelf scene preset: stock per shelf slot, counted by the detector's
product classes and/or watched by a model-free monitor, shopper dwell at the shelf and the
checkout queue."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from edged.config.base import MAX_DURATION_S, StrictModel, topic_level_names
from edged.config.geometry import PolygonPoints
from edged.config.paths import resolve
from edged.config.scene_preset import PresetConfig
from edged.core.detections import Anchor

Method = Literal["detector", "monitor", "both"]


class SlotConfig(StrictModel):
    """One shelf slot: where it is, how many items it holds when full, when it is low."""

    polygon: PolygonPoints = Field(description="≥ 3 points, relative (0–1) or pixels")
    expected: int = Field(ge=1, description="items in the slot when it is full")
    low_below: int | None = Field(
        None,
        ge=1,
        description="a low_stock alert while 0 < count < low_below (0 is an empty_slot alert)",
    )
    method: Method | None = Field(None, description="how to count (default: the scene's)")
    products: list[str] | None = Field(
        None, description="product groups counted here (default: every group)"
    )

    @model_validator(mode="after")
    def _low_not_above_full(self) -> SlotConfig:
        if self.low_below is not None and self.low_below > self.expected:
            raise ValueError(f"low_below ({self.low_below}) exceeds expected ({self.expected})")
        return self


class MonitorConfig(StrictModel):
    """The model-free slot monitor: learns each slot's stocked look (its edges) and measures
    the share of the slot's structured cells whose edges are gone."""

    learn_s: float = Field(
        2.0,
        le=MAX_DURATION_S,
        gt=0,
        description="learn the stocked look over this much unoccluded, still time at start",
    )
    reference_image: Path | None = Field(
        None, description="a picture of the fully stocked shelf instead of learning at start"
    )
    cell_px: int = Field(10, ge=2, le=64, description="cell size in source pixels")
    edge_threshold: float = Field(
        0.25, gt=0, description="gradient magnitude that is an edge, per unit of median brightness"
    )
    tolerance_px: int = Field(
        6, ge=0, le=32, description="an edge found this far from where it was still counts"
    )
    min_cell_edges: int = Field(
        3, ge=1, description="a cell with fewer reference edge pixels has no structure to lose"
    )
    empty_at: float = Field(
        0.75,
        gt=0,
        le=1,
        description="missing share of a slot that means empty (the share its stock covers)",
    )
    adapt_s: float = Field(
        10.0,
        le=MAX_DURATION_S,
        ge=0,
        description="time constant for following lighting and moved products (0: never adapt)",
    )
    motion_threshold: float = Field(
        0.08, gt=0, description="brightness change (per unit of median brightness) that moves"
    )
    motion_share: float = Field(
        0.02, gt=0, le=1, description="share of a slot moving that freezes it"
    )

    @field_validator("reference_image")
    @classmethod
    def _relative_to_config(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        return None if v is None else resolve(v, info)


class ShelfZoneConfig(StrictModel):
    """Where shoppers stand (or reach) at the shelf; a dwell event when one leaves."""

    polygon: PolygonPoints = Field(description="≥ 3 points, relative (0–1) or pixels")
    classes: list[str] = Field(default_factory=lambda: ["person"])
    anchor: Anchor = Anchor.CENTER
    min_dwell_s: float = Field(
        0.0, le=MAX_DURATION_S, ge=0, description="shorter visits are not reported"
    )


class CheckoutConfig(StrictModel):
    """The checkout queue: a camera zone (by name) whose occupancy is the queue length."""

    zone: str = Field(description="a zone of this camera")
    alert_at: int | None = Field(
        None, ge=1, description="a long_queue alert while at least this many wait"
    )


class RetailShelfConfig(PresetConfig):
    preset: Literal["retail_shelf"]
    alerts: ClassVar[tuple[str, ...]] = ("empty_slot", "low_stock", "long_queue")
    event_kinds: ClassVar[tuple[str, ...]] = ("stock_change", "shopper_dwell", "checkout_queue")

    method: Method = Field("both", description="how slots are counted unless a slot says")
    fuse: Literal["max", "min"] = Field(
        "max",
        description="method both: max (stocked if either method sees it) or min "
        "(empty if either method says so)",
    )
    hold_s: float = Field(
        1.5,
        le=MAX_DURATION_S,
        ge=0,
        description="a new count must hold this long (media time) to be reported",
    )
    settle_s: float = Field(
        0.5,
        le=MAX_DURATION_S,
        ge=0,
        description="a slot stays frozen this long after the last occlusion",
    )
    products: dict[str, list[str]] = Field(
        default_factory=lambda: {"bottle": ["bottle"]},
        description="product groups: name → detector labels that count as that product",
    )
    product_iou: float = Field(
        0.5, gt=0, le=1, description="boxes of one group overlapping this much are one item"
    )
    occluders: list[str] = Field(
        default_factory=lambda: ["person"],
        description="tracked classes whose boxes over a slot freeze it",
    )
    occlusion_share: float = Field(
        0.02, ge=0, le=1, description="share of a slot an occluder must cover to freeze it"
    )
    monitor: MonitorConfig = MonitorConfig()
    slots: Annotated[dict[str, SlotConfig], AfterValidator(topic_level_names)] = Field(min_length=1)
    shelf_zone: ShelfZoneConfig | None = Field(None, description="shopper dwell at the shelf")
    checkout: CheckoutConfig | None = Field(None, description="checkout queue length")

    @model_validator(mode="after")
    def _known_groups(self) -> RetailShelfConfig:
        for name, slot in self.slots.items():
            unknown = sorted(set(slot.products or []) - set(self.products))
            if unknown:
                raise ValueError(
                    f"slot {name!r} names unknown product groups {unknown} "
                    f"(defined: {', '.join(sorted(self.products)) or 'none'})"
                )
        for group, labels in self.products.items():
            if not labels:
                raise ValueError(f"product group {group!r} names no labels")
        return self
