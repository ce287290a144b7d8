"""Resize and normalise a BGR frame into one item of a preallocated input tensor, and map
boxes back to source pixels."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from edged.core.placement import Geometry
from edged.models.manifest import InputSpec

Resize = Literal["stretch", "letterbox"]


def place(spec: InputSpec, width: int, height: int, resize: Resize | None = None) -> Geometry:
    """Stretch fills the input; letterbox keeps the aspect ratio and centres the picture
    (Ultralytics' rounding, so boxes match its exports). ``resize`` overrides the spec's."""
    in_w, in_h = spec.size
    if (resize or spec.resize) == "stretch":
        return Geometry((width, height), (in_w / width, in_h / height), (0.0, 0.0))
    r = min(in_w / width, in_h / height)
    new_w, new_h = round(width * r), round(height * r)
    left = round((in_w - new_w) / 2 - 0.1)
    top = round((in_h - new_h) / 2 - 0.1)
    return Geometry((width, height), (new_w / width, new_h / height), (float(left), float(top)))


class ImagePreprocessor:
    """Resize (stretch or letterbox) then ``(x − mean) / std`` per channel.

    Normalisation is a 256-entry lookup table per channel: one gather per pixel instead of a
    float subtract and divide, measured 0.65 ms vs 4.4 ms (768×576 → 416², one core), with
    bit-identical output.
    """

    def __init__(self, spec: InputSpec) -> None:
        self.spec = spec
        self.width, self.height = spec.size
        self.layout = spec.layout
        levels = np.arange(256, dtype=np.float32)
        mean = np.asarray(spec.mean, np.float32)
        std = np.asarray(spec.std, np.float32)
        self._lut = ((levels[None, :] - mean[:, None]) / std[:, None]).astype(np.float32)
        # frames arrive BGR; channel c of the tensor reads source channel _src[c]
        self._src = (0, 1, 2) if spec.color == "BGR" else (2, 1, 0)
        self._canvas = np.empty((self.height, self.width, 3), np.uint8)
        self._geometry: dict[tuple[int, int, Resize], Geometry] = {}
        self._bordered: Geometry | None = None  # the letterbox the canvas's border was drawn for

    def shape(self) -> tuple[int, int, int]:
        if self.layout == "NCHW":
            return (3, self.height, self.width)
        return (self.height, self.width, 3)

    def __call__(
        self, image: np.ndarray, out: np.ndarray, resize: Resize | None = None
    ) -> Geometry:
        """Write ``image`` (H×W×3 BGR uint8) into ``out`` (one item of the batch tensor),
        resized as the spec says or as ``resize`` overrides it."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an H×W×3 uint8 BGR image, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        how = resize or self.spec.resize
        geo = self._geometry.get((w, h, how))
        if geo is None:
            geo = self._geometry[(w, h, how)] = place(self.spec, w, h, how)
        if how == "stretch":
            cv2.resize(image, (self.width, self.height), dst=self._canvas)
        else:
            left, top = int(geo.pad[0]), int(geo.pad[1])
            new_w, new_h = round(w * geo.scale[0]), round(h * geo.scale[1])
            if self._bordered != geo:
                self._canvas[:] = self.spec.pad_value
                self._bordered = geo
            # resized straight into the canvas; the border stays as drawn
            inner = self._canvas[top : top + new_h, left : left + new_w]
            cv2.resize(image, (new_w, new_h), dst=inner)
        for c, src in enumerate(self._src):
            target = out[c] if self.layout == "NCHW" else out[..., c]
            np.take(self._lut[c], self._canvas[:, :, src], out=target)
        return geo
