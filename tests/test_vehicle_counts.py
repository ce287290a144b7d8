"""A vehicle line written as a new user writes it (``classes: [vehicle]``, nothing tuned)
counts the vehicles of the shipped street clip: the model's vehicle floors, the tracker
thresholds that follow them and one object per vehicle (car and truck boxes merged)."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.daemon import run_clip
from tests.paths import MODEL, ROOT

STREET = ROOT / "samples" / "traffic-street-topdown.mp4"
# benchmarks/vehicle_counts.py: 17 vehicles cross x = 320 in the two lower lanes, counted by
# eye on the column's slit-scan image
TRUTH = 17


def write(tmp_path: Path, detect: dict[str, object]) -> Path:
    config = {
        "device_id": "test",
        "models": {"coco": {"path": str(MODEL), "backend": "cpu"}},
        "cameras": {
            "street": {
                "source": {"uri": str(STREET)},
                "detect": {"model": "coco", **detect},
                "lines": {
                    "lower": {
                        "points": [[320, 165], [320, 340]],
                        "directions": {"in": "left_to_right"},
                    }
                },
            }
        },
    }
    path = tmp_path / "street.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def crossings(events: list[dict]) -> list[dict]:
    return [e for e in events if e["kind"] == "line_crossing"]


def test_a_default_vehicle_line_counts_the_street(tmp_path: Path) -> None:
    events = run_clip(write(tmp_path, {"classes": ["vehicle"]}), "street", tmp_path / "j.db")
    crossed = crossings(events)
    assert TRUTH - 3 <= len(crossed) <= TRUTH + 1, len(crossed)
    assert {e["direction"] for e in crossed} == {"in"}
    assert len({e["track_id"] for e in crossed}) == len(crossed)  # each vehicle once
    assert {e["label"] for e in crossed} <= {"car", "truck", "bus", "motorcycle"}


def test_one_floor_for_every_class_misses_vehicles(tmp_path: Path) -> None:
    """What a camera got before the model's floors: 0.35 for every class, as for people
    (stretched, 1 of 17; letterboxed, 10)."""
    path = write(tmp_path, {"classes": ["vehicle"], "min_score": 0.35})
    assert len(crossings(run_clip(path, "street", tmp_path / "j.db"))) <= TRUTH - 4
