"""Motion-gated detection: the motion measure on real frames (a still stretch of the shelf
clip, the walkway's people)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from shapely.geometry import LineString, Polygon

from edged.analytics.motion import MotionMeter, region_mask, small_size
from edged.config.camera import MotionConfig
from edged.core.frame import Frame
from tests.paths import CLIP, ROOT

SHELF = ROOT / "samples" / "shelf-bottles.mp4"
SHELF_FPS = 29.83
# frames of the shelf clip where nothing moves: no hand, no arm's shadow on the wall or shelf
# (2.85–4.96 s; the camera's noise and exposure pumping are there)
SHELF_STILL = range(85, 149)
# a hand reaching for the left bottle and taking it (6.9–7.9 s)
SHELF_HAND = range(206, 236)
DEFAULTS = MotionConfig()


def decode(path: Path, wanted: Iterable[int]) -> dict[int, np.ndarray]:
    keep = set(wanted)
    out = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in keep:
                out[i] = frame.to_ndarray(format="bgr24")
            if i >= max(keep):
                break
    return out


@pytest.fixture(scope="module")
def shelf() -> dict[int, np.ndarray]:
    return decode(SHELF, [*SHELF_STILL, *SHELF_HAND])


def still_stretch(shelf: dict[int, np.ndarray], passes: int) -> list[np.ndarray]:
    """The still frames forward, backward, forward…: a longer still stretch with no jump."""
    order = list(SHELF_STILL)
    frames: list[np.ndarray] = []
    for k in range(passes):
        frames += [shelf[i] for i in (order if k % 2 == 0 else order[::-1])]
    return frames


def write_clip(path: Path, frames: list[np.ndarray], fps: float) -> Path:
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for image in frames:
        out.write(image)
    out.release()
    return path


def measure_all(frames: list[np.ndarray], fps: float, mask: np.ndarray | None = None) -> list:
    meter = MotionMeter()
    return [meter.measure(f, k / fps, DEFAULTS.threshold, mask) for k, f in enumerate(frames)]


def frame(image: np.ndarray, k: int, fps: float) -> Frame:
    return Frame("cam", k, float(k), float(k), k / fps, image)


# -- the measure -------------------------------------------------------------------------


def test_a_real_still_stretch_does_not_count_and_a_hand_does(shelf: dict) -> None:
    frames = still_stretch(shelf, 3)
    shares = measure_all([*frames, *(shelf[i] for i in SHELF_HAND)], SHELF_FPS)
    assert shares[0] is None  # no background yet
    still, moving = shares[1 : len(frames)], shares[len(frames) :]
    # sensor noise, compression and the exposure pumping of a real camera: nothing
    assert max(still) < DEFAULTS.min_area / 2, max(still)
    # every frame of the hand, from the first
    assert min(moving) >= 10 * DEFAULTS.min_area, moving


def test_a_repeated_frame_through_a_codec_is_still_and_walking_people_are_not(
    tmp_path: Path,
) -> None:
    walk = list(decode(CLIP, range(40)).values())
    clip = write_clip(tmp_path / "still.mp4", [walk[0]] * 20 + walk[1:], 7.0)
    frames = list(decode(clip, range(60)).values())
    shares = measure_all(frames, 7.0)
    assert max(shares[1:20]) < DEFAULTS.min_area / 2, shares[:20]
    assert min(shares[20:]) >= DEFAULTS.min_area, shares[20:]


def test_motion_outside_the_region_of_interest_does_not_count() -> None:
    walk = list(decode(CLIP, range(30)).values())
    h, w = walk[0].shape[:2]
    # the building's facade at the top of the walkway picture: nobody walks there
    facade = Polygon([(0, 0), (w, 0), (w, 60), (0, 60)])
    mask = region_mask([facade], w, h, 0.0)
    whole, inside = measure_all(walk, 7.0), measure_all(walk, 7.0, mask)
    assert min(whole[1:]) >= DEFAULTS.min_area
    assert max(inside[1:]) < DEFAULTS.min_area, inside


def test_the_region_is_its_shapes_widened_by_the_margin() -> None:
    w, h = 640, 360
    sw, sh = small_size(w, h)
    assert (sw, sh) == (160, 90)
    assert region_mask([], w, h, 0.05) is None
    line = LineString([(0, 180), (640, 180)])
    band = region_mask([line], w, h, 0.05)
    assert band is not None and band.shape == (sh, sw)
    # 5 % of the diagonal (36.7 px) either side of the line, at a quarter of the size
    rows = np.flatnonzero(band.any(axis=1))
    assert rows.min() == pytest.approx(45 - 36.7 / 4, abs=1.5)
    assert rows.max() == pytest.approx(45 + 36.7 / 4, abs=1.5)
    assert band[rows.min() : rows.max() + 1].all()
    # with no margin a line is still at least a pixel wide; a polygon is its area
    assert region_mask([line], w, h, 0.0).sum() >= sw
    square = region_mask([Polygon([(0, 0), (320, 0), (320, 180), (0, 180)])], w, h, 0.0)
    assert square is not None
    assert square[:44, :79].all() and not square[47:].any() and not square[:, 82:].any()
