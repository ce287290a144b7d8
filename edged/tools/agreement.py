"""How close a converted detector stays to the FP32 original: detections matched one to one
(same class, by IoU), counted and measured as an :class:`Agreement`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edged.core.boxes import iou_matrix
from edged.core.detections import Detections
from edged.models.detector import Detector, DetectRequest
from edged.tools.model_files import load_cpu_detector


def greedy_match(
    ref_xyxy: np.ndarray,
    ref_cls: np.ndarray,
    cand_xyxy: np.ndarray,
    cand_cls: np.ndarray,
    iou_min: float,
) -> list[tuple[int, int, float]]:
    """One-to-one matches (ref index, cand index, IoU) of the same class, best IoU first."""
    iou = iou_matrix(ref_xyxy, cand_xyxy)
    if iou.size == 0:
        return []
    iou = np.where(ref_cls[:, None] == cand_cls[None, :], iou, 0.0)
    pairs: list[tuple[int, int, float]] = []
    used_r: set[int] = set()
    used_c: set[int] = set()
    for flat in np.argsort(-iou, axis=None):
        r, c = divmod(int(flat), iou.shape[1])
        if iou[r, c] < iou_min:
            break
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c, float(iou[r, c])))
    return pairs


@dataclass
class Agreement:
    """How well a converted detector's detections agree with the FP32 original's.

    ``recall``: FP32 detections scoring ≥ ``score`` that the candidate finds (same class,
    IoU ≥ ``iou``, candidate score ≥ ``floor``: a score moving from 0.52 to 0.49 is not a lost
    object); ``precision``: the same the other way round. ``mean_iou`` and the score deltas
    (candidate − FP32) are over those matches; ``mean_best_iou`` is each strong FP32
    detection's best IoU with any candidate detection of its class (0 where none).
    """

    frames: int
    score: float
    floor: float
    iou: float
    reference: int
    matched: int
    recall: float
    candidate: int
    confirmed: int
    precision: float
    mean_iou: float
    mean_best_iou: float
    mean_abs_score_delta: float
    max_abs_score_delta: float
    mean_score_delta: float

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    @property
    def score_total(self) -> float:
        """One number, 1 at perfect agreement: F1 of the matching less the boxes' drift
        (1 − mean best IoU) less the scores' drift (mean |Δ score|), all in 0–1 units. Score
        drift matters: on NanoDet, Entropy calibration kept every person at these thresholds
        (F1 1.0) but moved scores by 0.15 on average and cost 18 pt AP50 on TUD-Campus."""
        return self.f1 - (1.0 - self.mean_best_iou) - self.mean_abs_score_delta

    def key(self) -> tuple[float, float]:
        """Larger is better (``score_total``, then F1)."""
        return (round(self.score_total, 4), round(self.f1, 4))

    def summary(self) -> str:
        return (
            f"agreement {self.score_total:.3f}: "
            f"recall {self.recall:.3f} ({self.matched}/{self.reference}), "
            f"precision {self.precision:.3f} ({self.confirmed}/{self.candidate}), "
            f"mean IoU {self.mean_iou:.3f}, mean best IoU {self.mean_best_iou:.3f}, "
            f"score Δ mean {self.mean_score_delta:+.4f} |mean| {self.mean_abs_score_delta:.4f} "
            f"max {self.max_abs_score_delta:.4f} on {self.frames} frames"
        )


def compare_detections(
    reference: Sequence[Detections],
    candidate: Sequence[Detections],
    *,
    score: float = 0.5,
    floor: float = 0.3,
    iou: float = 0.5,
    classes: Sequence[int] | None = None,
) -> Agreement:
    """Agreement of per-frame ``Detections`` lists (FP32 first); see ``Agreement``."""
    n_ref = n_match = n_cand = n_conf = 0
    ious: list[float] = []
    best: list[float] = []
    deltas: list[float] = []

    def pick(d: Detections) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        keep = d.score >= floor
        if classes is not None:
            keep &= np.isin(d.class_id, np.asarray(classes))
        return d.xyxy[keep], d.score[keep], d.class_id[keep]

    for r, c in zip(reference, candidate, strict=True):
        rx, rs, rc = pick(r)
        cx, cs, cc = pick(c)
        strong_r = np.nonzero(rs >= score)[0]
        strong_c = np.nonzero(cs >= score)[0]
        n_ref += len(strong_r)
        n_cand += len(strong_c)
        pairs = greedy_match(rx[strong_r], rc[strong_r], cx, cc, iou)
        n_match += len(pairs)
        for ri, ci, v in pairs:
            ious.append(v)
            deltas.append(float(cs[ci] - rs[strong_r[ri]]))
        full = iou_matrix(rx[strong_r], cx)
        if len(strong_r):
            same = rc[strong_r][:, None] == cc[None, :]
            full = np.where(same, full, 0.0)
            best.extend(full.max(axis=1).tolist() if full.shape[1] else [0.0] * len(strong_r))
        n_conf += len(greedy_match(cx[strong_c], cc[strong_c], rx, rc, iou))
    d = np.abs(np.asarray(deltas)) if deltas else np.zeros(1)
    return Agreement(
        frames=len(reference),
        score=score,
        floor=floor,
        iou=iou,
        reference=n_ref,
        matched=n_match,
        recall=n_match / n_ref if n_ref else 1.0,
        candidate=n_cand,
        confirmed=n_conf,
        precision=n_conf / n_cand if n_cand else 1.0,
        mean_iou=float(np.mean(ious)) if ious else 0.0,
        mean_best_iou=float(np.mean(best)) if best else 1.0,
        mean_abs_score_delta=float(d.mean()),
        max_abs_score_delta=float(d.max()),
        mean_score_delta=float(np.mean(deltas)) if deltas else 0.0,
    )


def detect_all(
    detector: Detector, frames: Sequence[np.ndarray], min_score: float = 0.3
) -> list[Detections]:
    """``Detections`` of every frame (NMS 0.5), one frame per call."""
    return [detector.detect([DetectRequest(f, min_score, 0.5)])[0].detections for f in frames]


def compare_models(
    reference: Detector,
    candidate_path: Path | str,
    frames: Sequence[np.ndarray],
    threads: int = 2,
    reference_dets: list[Detections] | None = None,
) -> Agreement:
    """Agreement of the detector at ``candidate_path`` (manifest beside it) with ``reference``
    (a loaded FP32 detector) on ``frames``."""
    cand = load_cpu_detector(candidate_path, threads)
    ref = reference_dets if reference_dets is not None else detect_all(reference, frames)
    return compare_detections(ref, detect_all(cand, frames))
