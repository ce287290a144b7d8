"""Detections as a struct of arrays, the currency between engine, tracker and analytics."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import Enum

import numpy as np


class Anchor(str, Enum):
    """Which point of a box stands for the object's position."""

    BOTTOM_CENTER = "bottom_center"
    CENTER = "center"
    TOP_CENTER = "top_center"


@dataclass(slots=True)
class Detections:
    """N detections: ``xyxy`` (N×4 float32, source pixels), ``score`` (N float32),
    ``class_id`` (N int32), optional ``track_id`` (N int64) and ``mask`` (N×H×W bool).

    Indexing with a boolean mask, an index array or a slice returns a new ``Detections``.
    """

    xyxy: np.ndarray
    score: np.ndarray
    class_id: np.ndarray
    track_id: np.ndarray | None = None
    mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        if self.xyxy.shape != (n, 4):
            raise ValueError(f"xyxy must be N×4, got {self.xyxy.shape}")
        for name in ("score", "class_id", "track_id", "mask"):
            value = getattr(self, name)
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} rows, xyxy has {n}")

    @classmethod
    def empty(cls) -> Detections:
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            score=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int32),
        )

    @classmethod
    def concat(cls, parts: list[Detections]) -> Detections:
        """One set from several (of one picture; track ids dropped); masks kept when every
        non-empty part has them."""
        full = [p for p in parts if len(p)]
        if not full:
            return cls.empty()
        masks = [p.mask for p in full if p.mask is not None]
        return cls(
            xyxy=np.concatenate([p.xyxy for p in full]),
            score=np.concatenate([p.score for p in full]),
            class_id=np.concatenate([p.class_id for p in full]),
            mask=np.concatenate(masks) if len(masks) == len(full) else None,
        )

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: np.ndarray | slice | list[int]) -> Detections:
        return Detections(
            xyxy=self.xyxy[index],
            score=self.score[index],
            class_id=self.class_id[index],
            track_id=None if self.track_id is None else self.track_id[index],
            mask=None if self.mask is None else self.mask[index],
        )

    def of_classes(self, class_ids: np.ndarray | None) -> Detections:
        """The detections of those classes (None: all of them)."""
        if class_ids is None:
            return self
        return self[np.isin(self.class_id, class_ids)]

    def anchors(self, anchor: Anchor = Anchor.BOTTOM_CENTER) -> np.ndarray:
        """N×2 float32 points, one per box."""
        x = (self.xyxy[:, 0] + self.xyxy[:, 2]) * 0.5
        if anchor is Anchor.BOTTOM_CENTER:
            y = self.xyxy[:, 3]
        elif anchor is Anchor.TOP_CENTER:
            y = self.xyxy[:, 1]
        else:
            y = (self.xyxy[:, 1] + self.xyxy[:, 3]) * 0.5
        return np.stack([x, y], axis=1).astype(np.float32, copy=False)


def class_ids(labels: list[str], names: list[str] | None) -> np.ndarray | None:
    """The ids of the classes ``names`` among a model's ``labels`` (None: every class);
    unknown names are a config error (ValueError)."""
    if names is None:
        return None
    unknown = sorted(set(names) - set(labels))
    if unknown:
        raise ValueError(unknown_classes(unknown, labels))
    return np.array([labels.index(n) for n in names], np.int32)


def unknown_classes(unknown: list[str], labels: list[str]) -> str:
    """The error for class names a model does not have, each with the closest labels."""
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, labels, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    return f"unknown classes {', '.join(parts)}; the model knows {len(labels)} labels"
