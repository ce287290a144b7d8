"""The model-free shelf slot monitor: no product model, just the slot's own stocked look.

Each slot learns where its edges are when it is stocked (the per-pixel median of binary edge
maps over the first ``learn_s`` seconds of unoccluded, still frames, or a reference picture),
then measures the **missing share**: among the slot's cells that have structure in that
reference, the share whose reference edges are no longer found (within ``tolerance_px``) in
the current frame. An empty slot loses the product's edges (missing share near the share of
the slot the stock covers); lighting changes barely move it, because brightness is measured
per unit of the frame's median brightness and edges are compared as positions, not values.
Edges that appear (a new object, a hand) never count as missing; occlusion is the caller's
business, helped by ``motion`` (frame difference over the slot).

The reference follows slow changes: on unoccluded, still frames each cell whose edges are
found blends towards the current edges with time constant ``adapt_s`` (lighting drift,
products nudged within the tolerance), and when the caller says the slot is full the whole
slot does (a product put back a little off its old place becomes the new reference).
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np

from edged.config.scene_retail import MonitorConfig

log = logging.getLogger(__name__)

BLUR = 5  # Gaussian kernel before edges and motion: compression noise is not structure
MAX_STEP_S = 1.0  # a gap in the stream counts at most this much towards learning/adapting


class Prepared:
    """One frame, processed once for every slot: brightness per unit of the frame's median
    (float32) and the edge map (bool), both over ``rect`` (x0, y0, x1, y1) only."""

    def __init__(self, gray: np.ndarray, edges: np.ndarray, rect: tuple[int, int, int, int]):
        self.gray = gray
        self.edges = edges
        self.rect = rect


def prepare(image: np.ndarray, rect: tuple[int, int, int, int], edge_threshold: float) -> Prepared:
    """``image``: BGR uint8 (or gray); ``rect``: the part of the picture the slots cover."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    median = float(np.median(gray[::4, ::4]))
    x0, y0, x1, y1 = rect
    g = cv2.GaussianBlur(gray[y0:y1, x0:x1], (BLUR, BLUR), 0).astype(np.float32)
    g *= 1.0 / max(median, 1.0)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    return Prepared(g, cv2.magnitude(gx, gy) > edge_threshold, rect)


def union_rect(
    polygons: list[np.ndarray], width: int, height: int, margin: int = BLUR
) -> tuple[int, int, int, int]:
    """The pixel rectangle that holds every polygon, plus a margin for the filters."""
    pts = np.concatenate(polygons)
    x0 = max(0, math.floor(pts[:, 0].min()) - margin)
    y0 = max(0, math.floor(pts[:, 1].min()) - margin)
    x1 = min(width, math.ceil(pts[:, 0].max()) + margin + 1)
    y1 = min(height, math.ceil(pts[:, 1].max()) + margin + 1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("the slots lie outside the picture")
    return x0, y0, x1, y1


class SlotMonitor:
    """One slot's reference and measurements. ``polygon``: pixel points (K×2)."""

    def __init__(
        self,
        polygon: np.ndarray,
        rect: tuple[int, int, int, int],
        config: MonitorConfig,
        expected: int,
        name: str = "slot",
    ) -> None:
        self.name = name
        self.config = config
        self.expected = expected
        c = config.cell_px
        rx0, ry0, rx1, ry1 = rect
        px0 = max(rx0, math.floor(polygon[:, 0].min()))
        py0 = max(ry0, math.floor(polygon[:, 1].min()))
        px1 = min(rx1, math.ceil(polygon[:, 0].max()) + 1)
        py1 = min(ry1, math.ceil(polygon[:, 1].max()) + 1)
        if px1 <= px0 or py1 <= py0:
            raise ValueError("the slot lies outside the picture")
        # the slot's box inside the prepared rectangle, and its polygon mask
        self.box = (px0 - rx0, py0 - ry0, px1 - rx0, py1 - ry0)
        h, w = py1 - py0, px1 - px0
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round(polygon - [px0, py0]).astype(np.int32)], 1)
        self.mask = mask.astype(bool)
        self.area = max(int(self.mask.sum()), 1)
        # the cell grid covers the box, padded up to whole cells
        self.cells = (-(-h // c), -(-w // c))
        t = config.tolerance_px
        self.kernel = np.ones((2 * t + 1, 2 * t + 1), np.uint8)
        self.ref_prob: np.ndarray | None = None  # P(edge) per pixel of the box
        self._learn_sum = np.zeros((h, w), np.float32)
        self._learn_n = 0
        self._learned_s = 0.0
        self._last_ts: float | None = None
        self._prev: np.ndarray | None = None
        self.missing: float | None = None  # the last measurement
        self.structured_cells = 0
        self._warned = False

    # -- the pieces of one frame --------------------------------------------------------

    def _crop(self, a: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = self.box
        return a[y0:y1, x0:x1]

    def _cell_sums(self, a: np.ndarray) -> np.ndarray:
        c = self.config.cell_px
        rows, cols = self.cells
        padded = np.zeros((rows * c, cols * c), np.int32)
        padded[: a.shape[0], : a.shape[1]] = a
        return padded.reshape(rows, c, cols, c).sum(axis=(1, 3))

    def _pixels(self, cells: np.ndarray) -> np.ndarray:
        c = self.config.cell_px
        h, w = self.mask.shape
        return np.repeat(np.repeat(cells, c, axis=0), c, axis=1)[:h, :w]

    @property
    def learned(self) -> bool:
        return self.ref_prob is not None

    def motion(self, prep: Prepared) -> float:
        """Share of the slot whose brightness changed since the previous frame, beyond the
        slot's overall change (the median difference: exposure pumping, compression)."""
        g = self._crop(prep.gray)
        prev, self._prev = self._prev, g.copy()
        if prev is None:
            return 0.0
        diff = g - prev
        diff -= float(np.median(diff[self.mask]))
        moved = (np.abs(diff) > self.config.motion_threshold) & self.mask
        return float(moved.sum()) / self.area

    def set_reference(self, prep: Prepared) -> None:
        """Take this frame's edges as the stocked look (a reference picture)."""
        self.ref_prob = (self._crop(prep.edges) & self.mask).astype(np.float32)

    def measure(self, prep: Prepared, media_ts: float, still: bool, full: bool) -> float | None:
        """The missing share now (None while learning, or when the reference has no
        structure). ``still``: unoccluded and settled — only then does the reference learn
        or adapt; ``full``: the slot's reported count is its expected count — when this
        frame counts full too, the whole reference follows what is seen."""
        step = 0.0 if self._last_ts is None else min(max(media_ts - self._last_ts, 0.0), MAX_STEP_S)
        self._last_ts = media_ts
        edges = self._crop(prep.edges) & self.mask
        if self.ref_prob is None:
            if still:
                self._learn_sum += edges
                self._learn_n += 1
                self._learned_s += step
                if self._learned_s >= self.config.learn_s and self._learn_n >= 3:
                    self.ref_prob = self._learn_sum / self._learn_n
            return None
        ref = self.ref_prob > 0.5
        near = cv2.dilate(edges.astype(np.uint8), self.kernel).astype(bool)
        ref_n = self._cell_sums(ref)
        found_n = self._cell_sums(ref & near)
        structured = ref_n >= self.config.min_cell_edges
        missing_cells = structured & (found_n * 2 < ref_n)
        self.structured_cells = int(structured.sum())
        missing = float(missing_cells.sum()) / max(self.structured_cells, 1)
        full = full and self.count(missing) == self.expected
        if still and self.config.adapt_s > 0 and step > 0:
            rate = 1.0 - math.exp(-step / self.config.adapt_s)
            follow = self.mask if full else self._pixels(structured & ~missing_cells) & self.mask
            self.ref_prob[follow] += rate * (edges[follow] - self.ref_prob[follow])
        if self.structured_cells == 0:
            if self.missing is not None or not self._warned:
                log.warning(
                    "%s: the stocked look has no edges to watch (cell_px %d, edge_threshold %g)",
                    self.name,
                    self.config.cell_px,
                    self.config.edge_threshold,
                )
                self._warned = True
            self.missing = None
            return None
        self.missing = missing
        return missing

    def count(self, missing: float) -> int:
        """Items left: the stocked share (1 − missing / empty_at) of ``expected``, rounded."""
        level = min(max(1.0 - missing / self.config.empty_at, 0.0), 1.0)
        return math.floor(level * self.expected + 0.5)
