"""The drawing primitives snapshots and the debug view share."""

from __future__ import annotations

import numpy as np

from edged.core import draw


def canvas() -> np.ndarray:
    return np.zeros((100, 200, 3), np.uint8)


def test_hard_boxes_have_only_their_colour_smooth_ones_blend() -> None:
    hard, smooth = canvas(), canvas()
    draw.box(hard, [20.4, 30.6, 120.2, 80.0], (0, 0, 255), 2, smooth=False)
    draw.box(smooth, [20.4, 30.6, 120.2, 80.0], (0, 0, 255), 2)
    colours = {tuple(c) for c in hard.reshape(-1, 3)}
    assert colours == {(0, 0, 0), (0, 0, 255)}
    assert len({tuple(c) for c in smooth.reshape(-1, 3)}) > 2
    # the corners land on the nearest pixels
    assert tuple(hard[31, 20]) == (0, 0, 255) and tuple(hard[80, 120]) == (0, 0, 255)


def test_a_label_sits_above_its_point_inside_the_picture_in_readable_ink() -> None:
    image = canvas()
    draw.label(image, "#7 person", (190, 60), (255, 255, 255), 0.4, 1)
    filled = np.argwhere((image == 255).all(axis=2))
    top, left = filled.min(axis=0)
    bottom, right = filled.max(axis=0)
    assert bottom <= 60 and right < 200 and left < 190  # above, pushed left to fit
    assert (image[top:bottom, left:right] == 0).all(axis=2).any()  # dark text on white

    below = canvas()
    draw.label(below, "header", (0, 0), (40, 40, 40), 0.4, 1, below=True)
    assert tuple(below[1, 1]) == (40, 40, 40)
    inked = below[:20, :60].reshape(-1, 3)
    assert (inked > 200).all(axis=1).any()  # light text on a dark fill


def test_shade_tints_only_inside_the_polygon() -> None:
    image = np.full((100, 100, 3), 100, np.uint8)
    square = np.array([[10, 10], [50, 10], [50, 50], [10, 50]], float)
    draw.shade(image, [square], (255, 0, 255), 0.2)
    assert tuple(image[30, 30]) == (131, 80, 131)
    assert tuple(image[80, 80]) == (100, 100, 100)


def test_track_colours_cycle_through_the_palette() -> None:
    assert draw.track_color(3) == draw.PALETTE[3]
    assert draw.track_color(3 + len(draw.PALETTE)) == draw.PALETTE[3]
