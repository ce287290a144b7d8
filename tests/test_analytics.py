"""Zones, lines and object lifecycle on tracked objects with known paths."""

from __future__ import annotations

import numpy as np
import pytest

from edged.analytics.lines import Line, LineRules, in_direction
from edged.analytics.objects import ObjectLifecycle
from edged.analytics.tracked import TrackedFrame
from edged.analytics.zones import Zone
from edged.camera.analytics import decoded_classes
from edged.config.camera import CameraConfig, ZoneConfig
from edged.config.events import ObjectUpdatesConfig
from edged.core.detections import Anchor, Detections, class_ids

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


def test_class_names_become_ids_and_select_detections() -> None:
    assert class_ids(LABELS, None) is None
    keep = class_ids(LABELS, ["car"])
    assert keep is not None and keep.tolist() == [1]
    with pytest.raises(ValueError, match="unknown classes 'bus'"):
        class_ids(LABELS, ["car", "bus"])
    dets = frame(0.0, [(1, 10, 10, 0), (2, 20, 20, 1), (3, 30, 30, 1)]).objects
    assert dets.of_classes(keep).track_id.tolist() == [2, 3]
    assert dets.of_classes(None) is dets


SQUARE = np.array([[100, 100], [200, 100], [200, 200], [100, 200]], np.float64)


def rules(**settings: object) -> ZoneConfig:
    """A zone's settings around SQUARE (anchor: bottom centre)."""
    return ZoneConfig.model_validate({"polygon": SQUARE.tolist(), **settings})


def test_zone_enter_exit_occupancy_and_dwell() -> None:
    zone = Zone("cam", "door", SQUARE, rules(), None)
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


def test_zone_class_filter_and_loitering_alert_starts_once_and_ends() -> None:
    zone = Zone("cam", "z", SQUARE, rules(loiter_s=2.0), np.array([0]))
    zone.update(frame(0.0, [(1, 150, 150, 0), (2, 150, 150, 1)]))
    assert list(zone.members) == [1]
    assert "alert" not in kinds(zone.update(frame(1.9, [(1, 150, 150, 0)])))
    ev = zone.update(frame(2.0, [(1, 150, 150, 0)]))
    assert kinds(ev) == ["alert"]
    assert ev[0].payload["alert"] == "loitering" and ev[0].payload["state"] == "start"
    assert ev[0].topic == "cam/alerts/loitering" and ev[0].payload["track_id"] == 1
    alert_id = ev[0].payload["alert_id"]
    assert zone.update(frame(5.0, [(1, 150, 150, 0)])) == []  # no repeats
    ev = zone.update(frame(6.0, [(1, 250, 150, 0)]))
    end = [e for e in ev if e.kind == "alert"]
    assert end[0].payload["state"] == "end"
    assert end[0].payload["alert_id"] == alert_id
    assert end[0].payload["duration_s"] == pytest.approx(4.0)
    assert end[0].payload["dwell_s"] == pytest.approx(6.0)


def test_zone_min_stay_ignores_passers_by() -> None:
    zone = Zone("cam", "z", SQUARE, rules(min_stay_s=1.0), None)
    zone.update(frame(0.0, [(1, 150, 150, 0)]))
    # through the zone in 0.5 s: never entered, never exited, never counted
    assert kinds(zone.update(frame(0.5, [(1, 250, 150, 0)]))) == []
    zone.update(frame(1.0, [(2, 150, 150, 0)]))
    ev = zone.update(frame(2.0, [(2, 150, 150, 0)]))
    assert kinds(ev) == ["zone_enter", "zone_occupancy"] and ev[1].payload["total"] == 1
    assert ev[0].payload["dwell_s"] == pytest.approx(1.0)


def test_zone_min_stay_is_time_not_frames() -> None:
    """The same 1 s stay at 5 fps and at 30 fps enters at the same moment."""
    for fps in (5, 30):
        zone = Zone("cam", "z", SQUARE, rules(min_stay_s=1.0), None)
        entered = None
        for k in range(2 * fps):
            t = k / fps
            if "zone_enter" in kinds(zone.update(frame(t, [(1, 150, 150, 0)]))):
                entered = t
                break
        assert entered == pytest.approx(1.0)


def test_crowding_alert_with_start_and_end() -> None:
    zone = Zone("cam", "z", SQUARE, rules(crowd_threshold=2), None)
    assert "alert" not in kinds(zone.update(frame(0, [(1, 150, 150, 0)])))
    ev = zone.update(frame(1, [(1, 150, 150, 0), (2, 160, 150, 0)]))
    alerts = [e for e in ev if e.kind == "alert"]
    assert alerts[0].payload["alert"] == "crowding" and alerts[0].payload["state"] == "start"
    assert not [
        e for e in zone.update(frame(2, [(1, 150, 150, 0), (2, 160, 150, 0)])) if e.kind == "alert"
    ]
    ev = zone.update(frame(3, [(1, 150, 150, 0), (2, 260, 150, 0)]))
    alerts = [e for e in ev if e.kind == "alert"]
    assert alerts[0].payload["state"] == "end" and alerts[0].payload["duration_s"] == 2


def test_queue_length_and_wait_from_recent_stays() -> None:
    zone = Zone("cam", "q", SQUARE, rules(queue=True), None)
    zone.update(frame(0, [(1, 150, 150, 0), (2, 160, 150, 0)]))
    ev = zone.update(frame(30, [(1, 250, 150, 0), (2, 160, 150, 0)]))
    queue = ev[-1].payload["queue"]
    assert queue == {"length": 1, "wait_s": 30.0, "from_exits": 1}
    ev = zone.update(frame(50, [(2, 260, 150, 0)]))
    assert ev[-1].payload["queue"] == {"length": 0, "wait_s": 40.0, "from_exits": 2}


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


def scored(t: float, score: float, x: float = 10) -> TrackedFrame:
    tf = frame(t, [(7, x, 10, 0)])
    tf.objects.score[:] = score
    return tf


def test_object_updates_are_coalesced() -> None:
    rules = ObjectUpdatesConfig(min_interval_s=1.0, score_gain=0.1, heartbeat_s=5.0)
    life = ObjectLifecycle("cam", rules)
    assert [e.payload["type"] for e in life.update(scored(0.0, 0.5), {})] == ["new"]
    # a better score within the minimum interval waits …
    assert life.update(scored(0.2, 0.8), {}) == []
    # … and goes out once the interval has passed, even though the score fell back since
    (ev,) = life.update(scored(1.0, 0.6), {})
    assert ev.payload["changed"] == ["score"]
    assert ev.payload["before"]["top_score"] == 0.5 and ev.payload["after"]["top_score"] == 0.8
    # a zone change is sent at once
    (ev,) = life.update(scored(1.2, 0.6, x=11), {7: ("door",)})
    assert ev.payload["changed"] == ["zones"] and ev.payload["before"]["zones"] == []
    # jitter of box and score is not an event: 38 frames, nothing
    quiet = [
        life.update(scored(1.3 + k / 10, 0.6 + (k % 3) / 100, x=10 + k % 2), {7: ("door",)})
        for k in range(38)
    ]
    assert quiet == [[]] * 38
    # the heartbeat: 5 s after the previous event
    (ev,) = life.update(scored(6.2, 0.6), {7: ("door",)})
    assert ev.payload["changed"] == ["interval"]
    assert [e.payload["type"] for e in life.update(scored(6.3, 0.6), {})] == ["update"]
    assert [e.payload["type"] for e in life.update(frame(7.0, [], ended=[7]), {})] == ["end"]


def test_object_updates_without_score_or_heartbeat_only_follow_zones() -> None:
    life = ObjectLifecycle("cam", ObjectUpdatesConfig(score_gain=None))
    life.update(scored(0.0, 0.4), {})
    assert life.update(scored(5.0, 0.99), {}) == []


def banded(cancel_s: float = 1.0, band_px: float = 5.0, segment: bool = True) -> Line:
    pts = np.array([[100, 0], [100, 100]], np.float64)
    rules = LineRules(band_px=band_px, cancel_s=cancel_s, segment=segment)
    return Line("cam", "gate", pts, Anchor.BOTTOM_CENTER, None, "left_to_right", rules)


def run_path(line: Line, xs: list[float], fps: float = 10.0, y: float = 50) -> list:
    events = []
    for k, x in enumerate(xs):
        events += line.update(frame(k / fps, [(1, x, y, 0)]))
    events += line.finish(frame(len(xs) / fps, []))
    return [e for e in events if e.kind == "line_crossing"]


def test_flicker_across_the_line_counts_nothing() -> None:
    # a box whose anchor jitters ±12 px around the line for 3 s, then stays on its first side
    xs = [88, 112, 89, 111, 90, 110] * 5 + [85] * 5
    assert run_path(banded(), xs) == []


def test_flicker_then_a_real_crossing_counts_once() -> None:
    xs = [88, 112, 89, 111] + [120 + k for k in range(20)]
    crossings = run_path(banded(), xs)
    assert [c.payload["direction"] for c in crossings] == ["in"]


def test_stopping_on_the_line_counts_once() -> None:
    xs = [80, 90, 97, 99, 101, 103, 98, 102, 100, 99, 101] + [101] * 30 + [110, 120]
    crossings = run_path(banded(), xs)
    assert [c.payload["direction"] for c in crossings] == ["in"]


def test_reversal_after_the_cancel_window_counts_both_ways() -> None:
    xs = [80, 120] + [125] * 20 + [80]
    crossings = run_path(banded(cancel_s=1.0), xs)
    assert [c.payload["direction"] for c in crossings] == ["in", "out"]


def test_skipping_the_band_between_two_frames_counts() -> None:
    assert len(run_path(banded(band_px=10), [60, 140])) == 1


def test_a_new_id_appearing_on_the_other_side_is_not_a_crossing() -> None:
    """An id switch: track 1 ends left of the line, track 2 starts right of it."""
    line = banded(cancel_s=0.0)
    events = line.update(frame(0, [(1, 80, 50, 0)]))
    events += line.update(frame(0.1, [(2, 120, 50, 0)], ended=[1]))
    events += line.update(frame(0.2, [(2, 125, 50, 0)]))
    assert [e for e in events if e.kind == "line_crossing"] == []


def test_infinite_line_counts_crossings_beyond_the_drawn_points() -> None:
    assert run_path(banded(segment=False), [80, 120], y=500)
    assert not run_path(banded(segment=True), [80, 120], y=500)


def test_crossing_is_reported_with_the_frame_it_happened_on() -> None:
    crossings = run_path(banded(cancel_s=1.0), [80, 120] + [125] * 15)
    assert crossings[0].frame_ts == 1000.0 + 0.1


def test_unconfirmed_detections_never_count() -> None:
    """Through the real tracker: a box seen for a single frame on each side is never a track,
    so it can't cross; a steady one is counted once, after it was confirmed."""
    from edged.config.camera import TrackerConfig
    from edged.tracking import ByteTracker

    tracker = ByteTracker(TrackerConfig(min_hits=3))
    line = banded(cancel_s=0.0)
    crossings = []
    for k in range(30):
        x = 60 + 4 * k
        boxes = [[x - 5, 30, x + 5, 50]]
        if k in (5, 20):  # one-frame ghosts on either side of the line
            boxes.append([150, 60, 160, 80] if k == 5 else [40, 60, 50, 80])
        dets = Detections(
            xyxy=np.array(boxes, np.float32),
            score=np.full(len(boxes), 0.9, np.float32),
            class_id=np.zeros(len(boxes), np.int32),
        )
        objects = tracker.update(dets, k / 10)
        crossings += [
            e
            for e in line.update(
                TrackedFrame("cam", k / 10, k / 10, objects, tracker.ended, LABELS)
            )
            if e.kind == "line_crossing"
        ]
    assert len(crossings) == 1 and crossings[0].payload["track_id"] == 1


@pytest.mark.parametrize(("last_x", "counted"), [(103, ["in"]), (97, [])])
def test_a_track_ending_inside_the_band_counts_only_past_the_line(
    last_x: float, counted: list[str]
) -> None:
    """A person who steps over the line and vanishes (a door, the picture's edge, behind
    someone) before getting past the band has crossed; one who vanishes short of it has not."""
    line = banded(band_px=10, cancel_s=1.0)
    events = []
    for k, x in enumerate([70, 80, 88, last_x]):
        events += line.update(frame(k / 10, [(1, x, 50, 0)]))
    events += line.update(frame(2.0, [], ended=[1]))
    assert [e.payload["direction"] for e in events if e.kind == "line_crossing"] == counted
    assert line.totals["in"] == ({"person": 1} if counted else {})


def test_a_camera_decodes_its_classes_and_the_ones_its_pictures_blur() -> None:
    labels = ["person", "bicycle", "car", "motorcycle", "truck"]

    def camera(**settings: object) -> CameraConfig:
        base = {"source": {"uri": "rtsp://cam/1"}, "detect": {"model": "coco"}}
        return CameraConfig.model_validate(base | settings)

    assert decoded_classes(labels, camera()) is None  # every class is kept: all decoded
    cars = {"model": "coco", "classes": ["truck", "car"]}
    assert decoded_classes(labels, camera(detect=cars)).tolist() == [2, 4]
    blurred = {"privacy": {"blur": "boxes", "classes": ["person", "bicycle"]}}
    got = decoded_classes(labels, camera(detect=cars, snapshots=blurred))
    assert got.tolist() == [0, 1, 2, 4]  # people are blurred though never tracked
    off = {"privacy": {"blur": "off"}}
    assert decoded_classes(labels, camera(detect=cars, snapshots=off)).tolist() == [2, 4]


def test_a_label_change_waits_the_interval_and_one_undone_within_it_is_no_event() -> None:
    rules = ObjectUpdatesConfig(min_interval_s=1.0, score_gain=None)
    life = ObjectLifecycle("cam", rules)
    life.update(frame(0.0, [(7, 10, 10, 0)]), {})
    # person → car → person within the interval: nothing was sent, nothing is
    assert life.update(frame(0.3, [(7, 10, 10, 1)]), {}) == []
    assert life.update(frame(0.6, [(7, 10, 10, 0)]), {}) == []
    assert life.update(frame(1.2, [(7, 10, 10, 0)]), {}) == []
    # the interval since the last event has passed: a change goes out at once
    (ev,) = life.update(frame(1.5, [(7, 10, 10, 1)]), {})
    assert ev.payload["changed"] == ["label"]
    assert (ev.payload["before"]["label"], ev.payload["after"]["label"]) == ("person", "car")
    # within the interval a change waits, and goes out when it has passed if it held
    assert life.update(frame(1.8, [(7, 10, 10, 0)]), {}) == []
    (ev,) = life.update(frame(2.5, [(7, 10, 10, 0)]), {})
    assert ev.payload["changed"] == ["label"] and ev.payload["after"]["label"] == "person"
    # with a zone change it goes at once
    (ev,) = life.update(frame(2.6, [(7, 10, 10, 1)]), {7: ("door",)})
    assert ev.payload["changed"] == ["zones", "label"]
