"""The retail_shelf preset: the model-free slot monitor and the detector count on synthetic
frames (pictures drawn here, tracked objects made here), then the daemon end to end on the
shipped shelf clip against a ground truth read off its frames."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from edged.analytics.tracked import TrackedFrame
from edged.config.camera import CameraConfig
from edged.config.errors import FieldError
from edged.config.loader import ConfigError, load
from edged.config.scene_retail import MonitorConfig, RetailShelfConfig
from edged.core.detections import Detections
from edged.core.event import Event
from edged.core.frame import Frame
from edged.outputs.schema import event_kinds
from edged.scenes.retail_shelf import RetailShelf
from edged.scenes.shelf_monitor import SlotMonitor, prepare, union_rect
from tests.daemon import run_clip
from tests.paths import ROOT

LABELS = ["person", "bottle", "vase", "cup"]
PERSON, BOTTLE, VASE, CUP = range(4)
W, H = 320, 240
# two slots side by side, in pixels; products are drawn inside them
SLOTS = {"a": (20, 40, 150, 200), "b": (170, 40, 300, 200)}


def rect_polygon(r: tuple[int, int, int, int]) -> list[list[int]]:
    x0, y0, x1, y1 = r
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def camera_config(
    classes: list[str] | None = None,
    zones: dict[str, Any] | None = None,
    **scene: Any,
) -> CameraConfig:
    scene.setdefault(
        "slots", {n: {"polygon": rect_polygon(r), "expected": 1} for n, r in SLOTS.items()}
    )
    return CameraConfig.model_validate(
        {
            "source": {"uri": "/dev/null", "kind": "file"},
            "detect": {"model": "coco", "classes": classes or LABELS},
            "scene": {"preset": "retail_shelf", **scene},
            "zones": zones or {},
        }
    )


# -- pictures -----------------------------------------------------------------------------


def background(seed: int = 0) -> np.ndarray:
    """A smooth wall (a gentle gradient) with sensor noise: no structure of its own."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(110, 140, W, dtype=np.float32)[None, :].repeat(H, 0)
    img = ramp + rng.normal(0, 2.0, (H, W)).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def draw_product(img: np.ndarray, x: int, y: int, w: int = 30, h: int = 100) -> None:
    """A bottle-like item: a dark outline, a lighter body and label stripes."""
    cv2.rectangle(img, (x, y), (x + w, y + h), 40, 2)
    cv2.rectangle(img, (x + 3, y + 3), (x + w - 3, y + h - 3), 190, -1)
    for k in range(y + 30, y + h - 10, 12):
        cv2.line(img, (x + 3, k), (x + w - 3, k), 70, 2)
    cv2.rectangle(img, (x + 8, y - 12), (x + w - 8, y), 30, -1)  # the cap


def shelf(
    items: dict[str, int],
    *,
    shift: int = 0,
    gain: float = 1.0,
    seed: int = 0,
    hand: tuple[int, int, int, int] | None = None,
) -> np.ndarray:
    """``items``: per slot, how many products stand in it (left to right, up to 3)."""
    img = background(seed)
    for name, n in items.items():
        x0, y0, _, _ = SLOTS[name]
        for k in range(n):
            draw_product(img, x0 + 8 + 40 * k + shift, y0 + 40)
    if hand is not None:
        x0, y0, x1, y1 = hand
        img[y0:y1, x0:x1] = 90  # a flat, skin-ish blob: hides what is behind it
    if gain != 1.0:
        img = np.clip(img.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)


def detections(boxes: list[tuple[int, float, tuple[float, float, float, float]]]) -> Detections:
    """(class, score, xyxy) per tracked object; track ids 1, 2, …"""
    if not boxes:
        d = Detections.empty()
        d.track_id = np.zeros(0, np.int64)
        return d
    return Detections(
        xyxy=np.array([b for _, _, b in boxes], np.float32),
        score=np.array([s for _, s, _ in boxes], np.float32),
        class_id=np.array([c for c, _, _ in boxes], np.int32),
        track_id=np.arange(1, len(boxes) + 1, dtype=np.int64),
    )


def tracked(ts: float, objects: Detections | None = None, ended: list[int] | None = None):
    objs = objects if objects is not None else detections([])
    return TrackedFrame("cam", ts, 1_700_000_000.0 + ts, objs, ended or [], LABELS)


class Run:
    """Drives a RetailShelf with pictures and objects as functions of media time."""

    def __init__(self, config: CameraConfig) -> None:
        self.scene = RetailShelf("cam", config, LABELS, W, H)
        self.events: list[tuple[float, Event]] = []

    def play(
        self,
        t0: float,
        t1: float,
        fps: float,
        image: Callable[[float], np.ndarray],
        objects: Callable[[float], Detections] | None = None,
        generic: Callable[[float], list[Event]] | None = None,
    ) -> None:
        n = round((t1 - t0) * fps)
        for i in range(n):
            ts = t0 + i / fps
            frame = Frame("cam", i, ts, ts, ts, image(ts))
            tf = tracked(ts, objects(ts) if objects else None)
            evs = generic(ts) if generic else []
            for e in self.scene.update(frame, tf, evs):
                self.events.append((ts, e))

    def changes(self, slot: str | None = None) -> list[tuple[float, Any, Any]]:
        return [
            (ts, e.payload["before"], e.payload["after"])
            for ts, e in self.events
            if e.kind == "stock_change" and (slot is None or e.payload["slot"] == slot)
        ]

    def alerts(self) -> list[tuple[float, str, str, str]]:
        return [
            (ts, e.payload["alert"], e.payload["subject"], e.payload["state"])
            for ts, e in self.events
            if e.kind == "alert"
        ]


# -- the monitor alone --------------------------------------------------------------------


def make_monitor(**settings: Any) -> tuple[SlotMonitor, tuple[int, int, int, int]]:
    poly = np.array(rect_polygon(SLOTS["a"]), np.float64)
    rect = union_rect([poly], W, H)
    return SlotMonitor(poly, rect, MonitorConfig(**settings), expected=1), rect


def test_monitor_learns_the_stocked_look_then_measures_what_is_missing() -> None:
    mon, rect = make_monitor(learn_s=1.0)
    ts = 0.0
    for k in range(10):  # 0.9 s of frames: still learning
        ts = k * 0.1
        assert mon.measure(prepare(shelf({"a": 1}, seed=k), rect, 0.25), ts, True, False) is None
    assert not mon.learned
    ts += 0.1
    mon.measure(prepare(shelf({"a": 1}, seed=99), rect, 0.25), ts, True, False)
    assert mon.learned

    def missing(img: np.ndarray) -> float:
        nonlocal ts
        ts += 0.1
        m = mon.measure(prepare(img, rect, 0.25), ts, False, False)  # not still: no adapting
        assert m is not None
        return m

    assert missing(shelf({"a": 1}, seed=5)) < 0.05
    assert mon.structured_cells > 10
    gone = missing(shelf({"a": 0}, seed=6))
    assert gone > 0.9 and mon.count(gone) == 0
    # the lights dim by a third, or the product stands 4 px off: still there
    assert missing(shelf({"a": 1}, gain=0.67, seed=7)) < 0.1
    assert missing(shelf({"a": 1}, shift=4, seed=8)) < 0.1
    # a flat hand in front of the lower half hides half the product's structure
    half = missing(shelf({"a": 1}, hand=(20, 120, 150, 200), seed=9))
    assert 0.3 < half < 0.8


def test_monitor_does_not_learn_while_occluded_or_moving() -> None:
    mon, rect = make_monitor(learn_s=0.5)
    for k in range(20):  # two seconds, never still
        mon.measure(prepare(shelf({"a": 1}, seed=k), rect, 0.25), k * 0.1, False, False)
    assert not mon.learned


def test_monitor_reference_follows_a_full_slot_but_not_an_empty_one() -> None:
    mon, rect = make_monitor(learn_s=0.3, adapt_s=1.0, tolerance_px=2)
    ts = 0.0
    for k in range(5):
        ts = k * 0.1
        mon.measure(prepare(shelf({"a": 1}, seed=k), rect, 0.25), ts, True, False)
    moved = shelf({"a": 1}, shift=8)  # put back 8 px off: beyond the tolerance
    first = mon.measure(prepare(moved, rect, 0.25), ts + 0.1, True, True)
    assert first is not None and first > 0.2
    for k in range(2, 60):  # six seconds, the slot reported full
        last = mon.measure(prepare(moved, rect, 0.25), ts + k * 0.1, True, True)
    assert last is not None and last < 0.1
    # an empty slot never becomes the reference, however long it is watched
    empty = shelf({"a": 0})
    for k in range(60, 160):
        gone = mon.measure(prepare(empty, rect, 0.25), ts + k * 0.1, True, False)
    assert gone is not None and gone > 0.9


def test_motion_ignores_an_exposure_change_but_sees_a_hand() -> None:
    mon, rect = make_monitor()
    assert mon.motion(prepare(shelf({"a": 1}, seed=1), rect, 0.25)) == 0.0
    assert mon.motion(prepare(shelf({"a": 1}, gain=1.15, seed=2), rect, 0.25)) < 0.01
    hand = shelf({"a": 1}, gain=1.15, seed=3, hand=(30, 60, 90, 150))
    assert mon.motion(prepare(hand, rect, 0.25)) > 0.2


# -- the monitor in the scene -------------------------------------------------------------


def monitor_scene(**scene: Any) -> CameraConfig:
    settings: dict[str, Any] = {"method": "monitor", "hold_s": 1.0, "settle_s": 0.5}
    settings.update(scene)
    settings.setdefault("monitor", {"learn_s": 1.0})
    return camera_config(**settings)


def test_removed_product_is_reported_after_hold_s_and_alerted_until_put_back() -> None:
    run = Run(monitor_scene())
    stocked = {"a": 1, "b": 1}
    run.play(0.0, 5.0, 10, lambda t: shelf(stocked, seed=int(t * 10)))
    # learned in 1 s, then 1 s of hold: the first state of each slot, nothing else
    assert [(b, a) for _, b, a in run.changes()] == [(None, 1), (None, 1)]
    assert all(1.9 <= ts <= 2.2 for ts, _, _ in run.changes())
    run.events.clear()

    run.play(5.0, 12.0, 10, lambda t: shelf({"a": 0, "b": 1}, seed=int(t * 10)))
    # the picture changed at 5.0 (motion: frozen until 5.5), then 1 s of hold
    assert [(b, a) for _, b, a in run.changes("a")] == [(1, 0)]
    ts = run.changes("a")[0][0]
    assert 6.4 <= ts <= 6.7
    assert run.alerts() == [(ts, "empty_slot", "a", "start")]
    started = next(e for _, e in run.events if e.kind == "alert")
    change = next(e for _, e in run.events if e.kind == "stock_change")
    assert change.topic == "cam/shelf/a" and change.retain
    assert change.payload["method"] == "monitor" and change.payload["missing_share"] > 0.9
    assert change.payload["since_media_ts"] == pytest.approx(5.5, abs=0.11)
    assert run.changes("b") == []
    run.events.clear()

    run.play(12.0, 16.0, 10, lambda t: shelf(stocked, seed=int(t * 10)))
    assert [(b, a) for _, b, a in run.changes("a")] == [(0, 1)]
    ended = [e for _, e in run.events if e.kind == "alert"]
    assert [e.payload["state"] for e in ended] == ["end"]
    assert ended[0].payload["alert_id"] == started.payload["alert_id"]
    assert ended[0].payload["duration_s"] == pytest.approx(13.5 - 6.5, abs=0.3)


def test_low_stock_then_empty_alerts_in_order() -> None:
    slots = {"a": {"polygon": rect_polygon(SLOTS["a"]), "expected": 3, "low_below": 2}}
    run = Run(monitor_scene(slots=slots, monitor={"learn_s": 1.0, "empty_at": 0.9}))
    run.play(0.0, 3.0, 10, lambda t: shelf({"a": 3}, seed=int(t * 10)))
    run.play(3.0, 6.0, 10, lambda t: shelf({"a": 2}, seed=int(t * 10)))
    run.play(6.0, 9.0, 10, lambda t: shelf({"a": 1}, seed=int(t * 10)))
    run.play(9.0, 12.0, 10, lambda t: shelf({"a": 0}, seed=int(t * 10)))
    run.play(12.0, 15.0, 10, lambda t: shelf({"a": 3}, seed=int(t * 10)))
    assert [(b, a) for _, b, a in run.changes()] == [(None, 3), (3, 2), (2, 1), (1, 0), (0, 3)]
    assert [(k, s) for _, k, _, s in run.alerts()] == [
        ("low_stock", "start"),
        ("low_stock", "end"),  # an alert that ends goes first
        ("empty_slot", "start"),
        ("empty_slot", "end"),
    ]


def test_a_shopper_in_front_of_the_slot_freezes_it_instead_of_emptying_it() -> None:
    run = Run(monitor_scene())
    stocked = {"a": 1, "b": 1}
    run.play(0.0, 3.0, 10, lambda t: shelf(stocked, seed=int(t * 10)))
    run.events.clear()
    # a person stands still in front of slot a for 4 s (four times hold_s): a flat blob
    # hides the product, no motion after the first frame, but the tracked box covers it
    hand = (15, 30, 155, 210)
    person = detections([(PERSON, 0.8, (10, 20, 160, 230))])
    run.play(3.0, 7.0, 10, lambda t: shelf(stocked, seed=int(t * 10), hand=hand), lambda t: person)
    # then a hand waves over slot b, with no box at all: motion alone freezes it
    run.play(
        7.0,
        11.0,
        10,
        lambda t: shelf(stocked, seed=int(t * 10), hand=(180 + int(t * 37) % 60, 50, 260, 190)),
    )
    run.play(11.0, 14.0, 10, lambda t: shelf(stocked, seed=int(t * 10)))
    assert run.changes() == []
    assert run.alerts() == []


def test_a_still_hand_without_a_box_looks_like_an_empty_slot() -> None:
    """The same still blob with no tracked box is, to the monitor, a product gone: this is
    what the occluder gate above prevents (and why hands must be a detected class)."""
    run = Run(monitor_scene())
    stocked = {"a": 1, "b": 1}
    run.play(0.0, 3.0, 10, lambda t: shelf(stocked, seed=int(t * 10)))
    hand = (15, 30, 155, 210)
    run.play(3.0, 7.0, 10, lambda t: shelf(stocked, seed=int(t * 10), hand=hand))
    assert [(b, a) for _, b, a in run.changes("a")][-1] == (1, 0)


@pytest.mark.parametrize("fps", [3, 5, 10, 30])
def test_hold_is_media_time_at_any_frame_rate(fps: int) -> None:
    run = Run(monitor_scene())
    run.play(0.0, 4.0, fps, lambda t: shelf({"a": 1, "b": 1}, seed=int(t * 30)))
    run.play(4.0, 9.0, fps, lambda t: shelf({"a": 0, "b": 1}, seed=int(t * 30)))
    (ts, before, after), *rest = run.changes("a")[1:]
    assert (before, after) == (1, 0) and rest == []
    # removed at 4.0: frozen by the motion until 4.5, then 1 s held — give or take the
    # frame interval, never a number of frames
    assert 5.5 - 1e-6 <= ts <= 5.5 + 2.0 / fps + 1e-6


def test_brief_occlusions_pause_the_hold_instead_of_hiding_the_change() -> None:
    run = Run(monitor_scene(hold_s=1.0, settle_s=0.2))
    run.play(0.0, 3.0, 10, lambda t: shelf({"a": 1}, seed=int(t * 10)))

    def busy(t: float) -> np.ndarray:  # every second, 0.3 s of a waving hand over slot a
        hand = (30 + int(t * 50) % 40, 50, 120, 180) if (t % 1.0) < 0.3 else None
        return shelf({"a": 0}, seed=int(t * 10), hand=hand)

    run.play(3.0, 12.0, 10, busy)
    changes = run.changes("a")
    assert [(b, a) for _, b, a in changes][1:] == [(1, 0)]
    # each second the slot is seen still from x.6 (the hand leaves at x.4, settle 0.2) to
    # x.9: 0.2 s counted per window, so hold_s is reached in the fifth window — a run that
    # restarted at every occlusion would never get there
    assert changes[1][0] == pytest.approx(7.8)


# -- the detector count, and both fused ---------------------------------------------------


def box_in(slot: str, dx: float = 0.0) -> tuple[float, float, float, float]:
    x0, y0, _, _ = SLOTS[slot]
    return (x0 + 10 + dx, y0 + 30, x0 + 45 + dx, y0 + 150)


def test_detector_counts_products_by_group_once_each() -> None:
    config = camera_config(
        method="detector",
        hold_s=0.5,
        products={"bottle": ["bottle", "vase"], "cup": ["cup"]},
        slots={
            "a": {"polygon": rect_polygon(SLOTS["a"]), "expected": 2, "products": ["bottle"]},
            "b": {"polygon": rect_polygon(SLOTS["b"]), "expected": 2, "products": ["cup"]},
        },
    )
    run = Run(config)
    blank = shelf({})

    def objs(t: float) -> Detections:
        out = [
            (BOTTLE, 0.5, box_in("a")),
            (VASE, 0.45, box_in("a", 1)),  # the same bottle, seen as a vase too
            (BOTTLE, 0.4, box_in("a", 50)),
            (CUP, 0.6, box_in("b")),
            (BOTTLE, 0.6, box_in("b", 50)),  # a bottle in the cup slot: not counted
        ]
        if t >= 3.0:
            out = out[:2] + out[3:]  # the second bottle taken
        if 5.0 <= t < 5.1:
            out = out[2:]  # one frame missing a detection: flicker, no change
        return detections(out)

    run.play(0.0, 8.0, 10, lambda t: blank, objs)
    assert [(ts, b, a) for ts, b, a in run.changes("a")] == [
        (pytest.approx(0.6), None, 2),  # the first frame waits for track confirmation
        (pytest.approx(3.5), 2, 1),
    ]
    assert [(b, a) for _, b, a in run.changes("b")] == [(None, 1)]
    assert run.alerts() == []


def test_detector_slot_is_frozen_under_a_person_box() -> None:
    run = Run(camera_config(method="detector", hold_s=0.5, products={"bottle": ["bottle"]}))
    blank = shelf({})
    run.play(0.0, 2.0, 10, lambda t: blank, lambda t: detections([(BOTTLE, 0.5, box_in("a"))]))
    # a person reaches over slot a for 3 s: the bottle is hidden, the slot is frozen
    run.play(2.0, 5.0, 10, lambda t: blank, lambda t: detections([(PERSON, 0.7, (0, 0, 160, 240))]))
    assert [(b, a) for _, b, a in run.changes("a")] == [(None, 1)]
    run.play(5.0, 8.0, 10, lambda t: blank, lambda t: detections([]))  # really gone
    assert [(b, a) for _, b, a in run.changes("a")] == [(None, 1), (1, 0)]
    # the last frame with the person is 4.9: frozen until 5.4 (settle_s), then held 0.5 s
    assert run.changes("a")[-1][0] == pytest.approx(4.9 + 0.5 + 0.5)


@pytest.mark.parametrize(("fuse", "expected"), [("max", [(None, 1)]), ("min", [(None, 0)])])
def test_both_methods_fused(fuse: str, expected: list[tuple[Any, Any]]) -> None:
    """The monitor learned slot a stocked and still sees it; the detector doesn't know the
    product (no box). max: stocked, as either method sees it; min: empty."""
    config = monitor_scene(method="both", fuse=fuse, products={"bottle": ["bottle"]})
    run = Run(config)
    run.play(0.0, 5.0, 10, lambda t: shelf({"a": 1, "b": 1}, seed=int(t * 10)))
    assert [(b, a) for _, b, a in run.changes("a")] == expected
    change = [e for _, e in run.events if e.kind == "stock_change"][-1]
    assert change.payload["detector_count"] == 0 and change.payload["monitor_count"] == 1


# -- shoppers and the checkout ------------------------------------------------------------


def test_shopper_dwell_is_reported_when_they_leave() -> None:
    config = camera_config(
        method="detector",
        shelf_zone={"polygon": [[0, 0], [1, 0], [1, 0.5], [0, 0.5]], "min_dwell_s": 1.0},
    )
    run = Run(config)
    blank = shelf({})
    at_shelf = detections([(PERSON, 0.8, (100, 10, 160, 100))])
    away = detections([(PERSON, 0.8, (100, 150, 160, 239))])  # centre below the zone
    run.play(0.0, 2.5, 10, lambda t: blank, lambda t: at_shelf)
    run.play(2.5, 3.0, 10, lambda t: blank, lambda t: away)
    run.play(3.0, 3.5, 10, lambda t: blank, lambda t: at_shelf)  # a glance: 0.5 s
    run.play(3.5, 4.0, 10, lambda t: blank, lambda t: away)
    run.play(4.0, 6.0, 10, lambda t: blank, lambda t: at_shelf)
    ends = run.scene.finish(tracked(6.0))
    dwell = [e for _, e in run.events if e.kind == "shopper_dwell"] + [
        e for e in ends if e.kind == "shopper_dwell"
    ]
    assert [e.payload["dwell_s"] for e in dwell] == [pytest.approx(2.5), pytest.approx(2.0)]
    assert all(e.topic == "cam/shoppers" and e.payload["track_id"] == 1 for e in dwell)


def test_checkout_queue_length_and_long_queue_alert() -> None:
    zones = {"till": {"polygon": [[0, 0], [1, 0], [1, 1]], "queue": True}}
    config = camera_config(method="detector", zones=zones, checkout={"zone": "till", "alert_at": 3})
    run = Run(config)
    blank = shelf({})

    def occupancy(total: int) -> list[Event]:
        return [
            Event(
                kind="zone_occupancy",
                camera="cam",
                topic="cam/zones/till/occupancy",
                payload={"zone": "till", "counts": {"person": total}, "total": total},
            )
        ]

    lengths = {0.0: 1, 1.0: 3, 2.0: 4, 3.0: 2}
    run.play(
        0.0,
        4.0,
        2,
        lambda t: blank,
        generic=lambda t: occupancy(lengths.get(t, 0)) if t in lengths else [],
    )
    queue = [e.payload["length"] for _, e in run.events if e.kind == "checkout_queue"]
    assert queue == [1, 3, 4, 2]
    queue_alerts = [(s, t) for t, k, _, s in run.alerts() if k == "long_queue"]
    assert queue_alerts == [("start", 1.0), ("end", 3.0)]


def test_finish_ends_active_alerts() -> None:
    run = Run(monitor_scene())
    run.play(0.0, 3.0, 10, lambda t: shelf({"a": 1, "b": 1}, seed=int(t * 10)))
    run.play(3.0, 6.0, 10, lambda t: shelf({"a": 0, "b": 1}, seed=int(t * 10)))
    ends = run.scene.finish(tracked(6.0))
    assert [(e.payload["alert"], e.payload["state"]) for e in ends] == [("empty_slot", "end")]


# -- settings -----------------------------------------------------------------------------


def test_settings_are_checked() -> None:
    with pytest.raises(ValidationError, match="unknown product groups"):
        camera_config(
            slots={"a": {"polygon": rect_polygon(SLOTS["a"]), "expected": 1, "products": ["soap"]}}
        )
    with pytest.raises(ValidationError, match="exceeds expected"):
        camera_config(
            slots={"a": {"polygon": rect_polygon(SLOTS["a"]), "expected": 2, "low_below": 3}}
        )
    with pytest.raises(ValidationError, match="at least 3 points"):
        camera_config(slots={"a": {"polygon": [[0, 0], [1, 1]], "expected": 1}})
    with pytest.raises(ValidationError, match="topic level"):
        camera_config(slots={"a/b": {"polygon": rect_polygon(SLOTS["a"]), "expected": 1}})
    # only visible with the model's labels and the camera's other settings
    with pytest.raises(FieldError, match=r"scene\.products\.bottle.*not in cameras\.cam\.detect"):
        RetailShelf(
            "cam",
            camera_config(classes=["person", "bottle"], products={"bottle": ["bottle", "vase"]}),
            LABELS,
            W,
            H,
        )
    with pytest.raises(FieldError, match=r"scene\.checkout\.zone: no zone named 'till'"):
        RetailShelf("cam", camera_config(checkout={"zone": "till"}), LABELS, W, H)
    with pytest.raises(FieldError, match=r"reference_image: cannot read"):
        RetailShelf(
            "cam", camera_config(monitor={"reference_image": "/nonexistent.png"}), LABELS, W, H
        )


def test_reference_image_replaces_learning(tmp_path: Path) -> None:
    ref = tmp_path / "stocked.png"
    cv2.imwrite(str(ref), shelf({"a": 1, "b": 1}))
    run = Run(monitor_scene(monitor={"reference_image": str(ref), "learn_s": 100}))
    # the shelf is already half empty at start: without a reference it would be learned so
    run.play(0.0, 3.0, 10, lambda t: shelf({"a": 0, "b": 1}, seed=int(t * 10)))
    assert [(b, a) for _, b, a in run.changes("a")] == [(None, 0)]
    assert [(b, a) for _, b, a in run.changes("b")] == [(None, 1)]


# -- the daemon on the real clip ----------------------------------------------------------

CONFIG = ROOT / "configs" / "retail_shelf.yaml"

# Read off the frames of samples/shelf-bottles.mp4 (29.83 fps; seconds of stream time).
# Per change: slot, count after, when the bottle left / touched the shelf, and when the hand
# was gone from the slot (the earliest a change can be judged without seeing the hand).
#   left:   taken 6.9 (hand gone 7.2); put back 12.1 (hand gone 13.6);
#           taken 17.6 (with the middle one; hands gone 18.1); put back 27.8 (hand gone 29.0)
#   middle: taken 17.6 (hands gone 18.1); put back 22.9 (hand gone 24.7)
#   right:  taken 31.7 (hand gone 32.2); put back 35.7 (hand gone 36.9)
TRUTH = [
    ("left", 0, 6.9, 7.2),
    ("left", 1, 12.1, 13.6),
    ("middle", 0, 17.6, 18.1),
    ("left", 0, 17.6, 18.1),
    ("middle", 1, 22.9, 24.7),
    ("left", 1, 27.8, 29.0),
    ("right", 0, 31.7, 32.2),
    ("right", 1, 35.7, 36.9),
]
# a change is judged after settle_s (0.5) + hold_s (1.0) of a quiet slot; shadows of the arm
# and the 10 fps sampling add up to about a second more
LAG_S = 2.5


@pytest.fixture(scope="module")
def clip_events(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[dict[str, Any]]]:
    yield run_clip(CONFIG, "shelf", tmp_path_factory.mktemp("retail") / "j.db")


def test_check_accepts_the_shipped_config() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edged", "check", str(CONFIG)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr


def test_clip_stock_changes_follow_the_ground_truth(clip_events: list[dict[str, Any]]) -> None:
    changes = [e for e in clip_events if e["kind"] == "stock_change"]
    first = [e for e in changes if e["before"] is None]
    # every slot starts stocked, known once the monitor has learned (learn_s 2) and held
    assert sorted((e["slot"], e["after"]) for e in first) == [
        ("left", 1),
        ("middle", 1),
        ("right", 1),
    ]
    assert all(3.0 <= e["media_ts"] < 4.5 for e in first), [e["media_ts"] for e in first]
    later = [e for e in changes if e["before"] is not None]
    # the same changes in the same order per slot, nothing more (left and middle were taken
    # together: their order between each other is free)
    for slot in ("left", "middle", "right"):
        truth = [(after, t, gone) for s, after, t, gone in TRUTH if s == slot]
        seen = [e for e in later if e["slot"] == slot]
        assert [e["after"] for e in seen] == [a for a, _, _ in truth], seen
        for e, (after, t, gone) in zip(seen, truth, strict=True):
            assert e["before"] == 1 - after
            # never before it happened, never later than the lag after the hand was gone
            assert t <= e["media_ts"] <= gone + LAG_S, (slot, e, t, gone)
            assert e["detector_count"] == after and e["monitor_count"] == after


def test_clip_raises_only_the_declared_kinds(clip_events: list[dict[str, Any]]) -> None:
    assert {e["kind"] for e in clip_events} <= set(event_kinds())
    alerts = {e["alert"] for e in clip_events if e["kind"] == "alert"}
    assert alerts <= set(RetailShelfConfig.alerts)


def test_clip_alerts_pair_up(clip_events: list[dict[str, Any]]) -> None:
    alerts = [e for e in clip_events if e["kind"] == "alert"]
    assert {e["alert"] for e in alerts} == {"empty_slot"}
    by_id: dict[str, list[dict[str, Any]]] = {}
    for e in alerts:
        by_id.setdefault(e["alert_id"], []).append(e)
    # four empty spells (left twice, middle, right), each one start and one end
    assert len(by_id) == 4
    for pair in by_id.values():
        assert [e["state"] for e in pair] == ["start", "end"]
        assert pair[1]["duration_s"] > 3.0
    assert sorted(p[0]["subject"] for p in by_id.values()) == ["left", "left", "middle", "right"]


def test_clip_reports_hands_at_the_shelf(clip_events: list[dict[str, Any]]) -> None:
    dwell = [e for e in clip_events if e["kind"] == "shopper_dwell"]
    # seven reaches into the shelf; NanoDet sees a hand as a person in most of them
    assert 4 <= len(dwell) <= 12
    assert all(0.5 <= e["dwell_s"] <= 5.0 for e in dwell)


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("empty_at: 0.75", "empty_atx: 0.75", "cameras.shelf.scene.monitor.empty_atx", "unknown"),
        (
            "[[0.04, 0.26], [0.24, 0.26], [0.24, 0.9], [0.04, 0.9]]",
            "[[0.04, 0.26], [0.24, 0.26]]",
            "cameras.shelf.scene.slots.left.polygon",
            "at least 3 points",
        ),
    ],
    ids=["unknown-key", "short-polygon"],
)
def test_scene_errors_name_the_line_and_the_key_as_written(
    tmp_path: Path, old: str, new: str, field: str, message: str
) -> None:
    text = (ROOT / "configs" / "retail_shelf.yaml").read_text()
    assert old in text
    bad = tmp_path / "shelf.yaml"
    bad.write_text(text.replace(old, new))
    line = next(i for i, row in enumerate(bad.read_text().splitlines(), 1) if new in row)
    with pytest.raises(ConfigError) as err:
        load(bad, env={})
    problem = err.value.problems[0]
    assert problem.startswith(f"{bad}:{line}:"), problem
    assert f"{field}: " in problem and message in problem, problem
