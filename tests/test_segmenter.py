"""The shipped person segmenter on real frames, and zone occupancy ratios from its mask."""

from __future__ import annotations

import av
import numpy as np
import pytest

from edged.analytics.tracked import TrackedFrame
from edged.analytics.zones import Zone
from edged.config.camera import ZoneConfig
from edged.config.model import ModelConfig
from edged.core.detections import Detections
from edged.core.masks import PersonMask
from edged.core.placement import Geometry
from edged.models.detector import load_detector
from edged.models.manifest import ModelError
from edged.models.segmenter import load_segmenter
from tests.paths import SEGMENTER, SHARED

STADTMITTE = SHARED / "datasets" / "mot15" / "TUD-Stadtmitte"
# the MOT15 sequences are evaluation data beside the checkout, never shipped (CC BY-NC-SA)
needs_mot15 = pytest.mark.skipif(
    not (STADTMITTE / "TUD-Stadtmitte.mp4").is_file(),
    reason=f"needs the MOT15 evaluation data in {SHARED / 'datasets' / 'mot15'} (not shipped)",
)


def first_frame_and_people() -> tuple[np.ndarray, np.ndarray]:
    with av.open(str(STADTMITTE / "TUD-Stadtmitte.mp4")) as c:
        image = next(c.decode(video=0)).to_ndarray(format="bgr24")
    gt = np.loadtxt(STADTMITTE / "gt" / "gt.txt", delimiter=",")
    rows = gt[(gt[:, 0] == 1) & (gt[:, 6] != 0)]
    boxes = rows[:, 2:6].copy()
    boxes[:, 2:] += boxes[:, :2]
    return image, boxes


@needs_mot15
def test_person_mask_covers_the_people_and_little_else() -> None:
    image, boxes = first_frame_and_people()
    mask = load_segmenter(ModelConfig(path=SEGMENTER, backend="cpu")).segment(image)
    assert mask.prob.shape == (256, 256)
    full = mask.to_source(0.5)
    assert full.shape == image.shape[:2]
    inside = np.zeros_like(full)
    big = sorted(boxes, key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))[:3]
    for x1, y1, x2, y2 in np.round(big).astype(int):
        inside[max(y1, 0) : y2, max(x1, 0) : x2] = True
        # the three largest people are mostly covered
        assert full[max(y1, 0) : y2, max(x1, 0) : x2].mean() > 0.4
    outside = np.ones_like(full)
    for x1, y1, x2, y2 in np.round(boxes).astype(int):
        outside[max(y1, 0) : y2 + 20, max(x1 - 20, 0) : x2 + 20] = False
    assert full[outside].mean() < 0.1


def test_a_segmenter_is_not_a_detector() -> None:
    with pytest.raises(ModelError, match="not a detector"):
        load_detector(ModelConfig(path=SEGMENTER, backend="cpu"))


def test_zone_occupancy_ratio_from_the_mask() -> None:
    empty = Detections.empty()
    empty.track_id = np.zeros(0, np.int64)
    geometry = Geometry((200, 100), (1.0, 2.0), (0.0, 0.0))  # 200×100 frame → 200×200 mask
    left = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], np.float64)
    zone = Zone(
        "cam",
        "left",
        left,
        ZoneConfig.model_validate({"polygon": left.tolist()}),
        None,
        ratio=(0.5, 0.05),
    )
    prob = np.zeros((200, 200), np.float32)
    prob[:, :50] = 0.9  # people over the left half of the zone
    tf = TrackedFrame("cam", 0.0, 1.0, empty, [], ["person"], PersonMask(prob, geometry))
    ev = zone.update(tf)
    assert ev[0].kind == "zone_occupancy" and ev[0].payload["ratio"] == pytest.approx(0.5, abs=0.01)
    prob[:, 50:52] = 0.9  # +1 % of the zone: below min_change, nothing new
    assert zone.update(tf) == []
    prob[:, 50:75] = 0.9
    ev = zone.update(tf)
    assert ev[0].payload["ratio"] == pytest.approx(0.75, abs=0.01)


def test_daemon_reports_zone_ratio_with_a_segmenter(tmp_path) -> None:
    import json
    import subprocess
    import sys

    from tests.paths import DEMO

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edged",
            "run",
            str(DEMO),
            "--print-events",
            "--set",
            "mqtt=null",
            "--set",
            f"journal.path={tmp_path / 'j.db'}",
            "--set",
            "cameras.walkway.source.realtime=false",
            "--set",
            f"models.people.path={SEGMENTER}",
            "--set",
            "cameras.walkway.segment.model=people",
            "--set",
            "cameras.walkway.zones.plaza.occupancy_ratio=true",
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    ratios = [e["ratio"] for e in events if e["kind"] == "zone_occupancy"]
    assert ratios and all(0.0 <= r <= 1.0 for r in ratios)
