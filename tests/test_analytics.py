"""Zones, lines and object lifecycle on tracked objects with known paths."""

from __future__ import annotations

import numpy as np
import pytest

from edged.analytics.lines import Line, in_direction
from edged.analytics.objects import ObjectLifecycle
from edged.analytics.tracked import TrackedFrame
from edged.analytics.zones import Zone
from edged.detections import Anchor, Detections

LABELS = ["person", "car"]


def frame(
    t: float, objects: list[tuple[int, float, float, int]], ended: list[int] = ()
) -> TrackedFrame:
    """Objects as (track id, x of bottom centre, y of bottom centre, class)."""
    boxes = [[x - 5, y - 20, x + 5, y] for _, x, y, _ in objects]
    dets = Detections(
        xyxy=np.array(boxes, np.float32).reshape(-1, 4),
        score=np.full(len(objects), 0.9, np.float32),
        class_id=np.array([c for *_, c in objects], np.int32),
        track_id=np.array([i for i, *_ in objects], np.int64),
    )
    return TrackedFrame("cam", t, 1000.0 + t, dets, list(ended), LABELS)


def kinds(events: list) -> list[str]:
    return [e.kind for e in events]


SQUARE = np.array([[100, 100], [200, 100], [200, 200], [100, 200]], np.float64)


def test_zone_enter_exit_occupancy_and_dwell() -> None:
    zone = Zone("cam", "door", SQUARE, Anchor.BOTTOM_CENTER, None, None)
    first = zone.update(frame(0.0, [(1, 50, 150, 0)]))
    assert kinds(first) == ["zone_occupancy"]
    assert first[0].retain and first[0].payload["total"] == 0
    assert first[0].topic == "cam/zones/door/occupancy"
    ev = zone.update(frame(1.0, [(1, 150, 150, 0), (2, 160, 150, 1)]))
    assert kinds(ev) == ["zone_enter", "zone_enter", "zone_occupancy"]
    assert ev[-1].payload["counts"] == {"car": 1, "person": 1}
    assert ev[0].topic == "cam/zones/door" and ev[0].frame_ts == 1001.0
    # nothing changes while they stay; a frame where track 2 is unseen keeps it inside
    assert zone.update(frame(2.0, [(1, 150, 160, 0)])) == []
    ev = zone.update(frame(4.5, [(1, 250, 160, 0)]))
    assert kinds(ev) == ["zone_exit", "zone_occupancy"]
    assert ev[0].payload["dwell_s"] == pytest.approx(3.5)
    ev = zone.update(frame(5.0, [], ended=[2]))
    assert kinds(ev) == ["zone_exit", "zone_occupancy"] and ev[1].payload["total"] == 0


def test_zone_class_filter_and_loitering_once() -> None:
    zone = Zone("cam", "z", SQUARE, Anchor.BOTTOM_CENTER, np.array([0]), loiter_s=2.0)
    zone.update(frame(0.0, [(1, 150, 150, 0), (2, 150, 150, 1)]))
    assert list(zone.members) == [1]
    assert "zone_loitering" not in kinds(zone.update(frame(1.9, [(1, 150, 150, 0)])))
    ev = zone.update(frame(2.0, [(1, 150, 150, 0)]))
    assert kinds(ev) == ["zone_loitering"] and ev[0].payload["dwell_s"] == pytest.approx(2.0)
    assert zone.update(frame(5.0, [(1, 150, 150, 0)])) == []


def vertical_line(in_dir: str = "left_to_right") -> Line:
    pts = np.array([[100, 0], [100, 100]], np.float64)
    return Line("cam", "gate", pts, Anchor.BOTTOM_CENTER, None, in_dir)


def test_line_counts_both_directions_per_class() -> None:
    line = vertical_line()
    first = line.update(frame(0, [(1, 90, 50, 0), (2, 120, 50, 1)]))
    assert kinds(first) == ["line_totals"] and first[0].retain
    ev = line.update(frame(1, [(1, 110, 50, 0), (2, 80, 50, 1)]))
    assert kinds(ev) == ["line_crossing", "line_crossing", "line_totals"]
    assert [e.payload["direction"] for e in ev[:2]] == ["in", "out"]
    assert ev[0].topic == "cam/lines/gate" and ev[2].topic == "cam/lines/gate/totals"
    assert ev[2].payload == {
        "line": "gate",
        "in": {"person": 1},
        "out": {"car": 1},
        "in_total": 1,
        "out_total": 1,
    }
    # staying on the new side adds nothing
    assert line.update(frame(2, [(1, 115, 50, 0), (2, 70, 50, 1)])) == []


def test_line_segment_not_its_extension() -> None:
    line = vertical_line()
    line.update(frame(0, [(1, 90, 150, 0)]))
    assert line.update(frame(1, [(1, 110, 150, 0)])) == []  # passes below the segment's end


def test_line_fast_object_jumping_across_counts_once() -> None:
    line = vertical_line()
    line.update(frame(0, [(1, 10, 50, 0)]))
    ev = line.update(frame(1, [(1, 390, 60, 0)]))
    assert kinds(ev) == ["line_crossing", "line_totals"]


def test_line_forgets_ended_tracks() -> None:
    line = vertical_line()
    line.update(frame(0, [(1, 90, 50, 0)]))
    line.update(frame(1, [], ended=[1]))
    # the same id can never come back, but if state were kept a stale side would count
    assert line.update(frame(2, [(1, 110, 50, 0)])) == []


def test_line_direction_names() -> None:
    pts = np.array([[0, 50], [100, 50]], np.float64)
    assert in_direction(pts, None, None) == "top_to_bottom"
    assert in_direction(pts, None, "top_to_bottom") == "bottom_to_top"
    with pytest.raises(ValueError, match="opposite"):
        in_direction(pts, "top_to_bottom", "left_to_right")
    with pytest.raises(ValueError, match="parallel"):
        Line("cam", "l", pts, Anchor.BOTTOM_CENTER, None, "left_to_right")
    line = Line("cam", "l", pts, Anchor.BOTTOM_CENTER, None, "bottom_to_top")
    line.update(frame(0, [(1, 50, 70, 0)]))
    assert line.update(frame(1, [(1, 50, 30, 0)]))[0].payload["direction"] == "in"


def test_object_lifecycle_new_update_end() -> None:
    life = ObjectLifecycle("cam")
    ev = life.update(frame(0, [(7, 10, 10, 0)]), {})
    assert [e.payload["type"] for e in ev] == ["new"]
    assert ev[0].topic == "cam/events" and ev[0].payload["before"] is None
    assert life.update(frame(1, [(7, 12, 10, 0)]), {}) == []
    ev = life.update(frame(2, [(7, 14, 10, 0)]), {7: ("door",)})
    assert [e.payload["type"] for e in ev] == ["update"]
    assert ev[0].payload["before"]["zones"] == [] and ev[0].payload["after"]["zones"] == ["door"]
    ev = life.update(frame(3.5, [], ended=[7]), {})
    assert [e.payload["type"] for e in ev] == ["end"]
    assert ev[0].payload["after"]["duration_s"] == pytest.approx(2.0)
    assert life.objects == {}
