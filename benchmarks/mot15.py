"""MOTChallenge 2D MOT 2015 sequences as a person-detection benchmark: frames, ground truth,
and COCO AP50 with pycocotools.

A sequence is a directory with ``gt/gt.txt`` (``frame,id,x,y,w,h,conf,…``; 1-based frames and
pixels) and one video whose frame i (1-based) is ground-truth frame i. Rows with conf 0 are
ignore regions: a detection inside one is neither a hit nor a false positive (they become
COCO ``iscrowd`` boxes). AP50 is COCO's: IoU 0.5, 101-point interpolated precision, up to
100 detections per frame, one category (person).
"""

from __future__ import annotations

import configparser
import contextlib
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")


@dataclass
class GroundTruth:
    """Boxes of one frame, xywh as written in gt.txt; ``ignore`` marks ignore regions."""

    xywh: np.ndarray
    ignore: np.ndarray


@dataclass
class MotSequence:
    name: str
    video: Path
    gt: dict[int, GroundTruth]
    length: int

    def frames(self, limit: int | None = None) -> Iterator[np.ndarray]:
        """BGR frames 1, 2, … (at most ``limit``), decoded one at a time."""
        yield from read_video(self.video, limit)


def read_video(path: Path, limit: int | None = None) -> Iterator[np.ndarray]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if limit is not None and i >= limit:
                return
            yield frame.to_ndarray(format="bgr24")


def read_gt(path: Path, shift: float = 0.0) -> dict[int, GroundTruth]:
    """Ground truth by frame; ``shift`` is added to x and y (−1: MOTChallenge's 1-based
    pixels to 0-based; the MEASURED.md reference numbers take the boxes as written)."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    gt: dict[int, GroundTruth] = {}
    for frame in np.unique(rows[:, 0]).astype(int):
        r = rows[rows[:, 0] == frame]
        xywh = r[:, 2:6].astype(np.float64).copy()
        xywh[:, :2] += shift
        gt[int(frame)] = GroundTruth(xywh=xywh, ignore=r[:, 6] == 0)
    return gt


def load_sequence(directory: Path, shift: float = 0.0) -> MotSequence:
    videos = sorted(p for p in directory.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise FileNotFoundError(f"{directory}: no video")
    gt = read_gt(directory / "gt" / "gt.txt", shift)
    length = max(gt)
    info = directory / "seqinfo.ini"
    if info.is_file():
        parser = configparser.ConfigParser()
        parser.read(info)
        length = parser.getint("Sequence", "seqLength", fallback=length)
    return MotSequence(name=directory.name, video=videos[0], gt=gt, length=length)


def load_sequences(root: Path, shift: float = 0.0) -> list[MotSequence]:
    """Every sequence directory under ``root`` (those with ``gt/gt.txt``), by name."""
    dirs = sorted(d for d in Path(root).iterdir() if (d / "gt" / "gt.txt").is_file())
    if not dirs:
        raise FileNotFoundError(f"{root}: no MOTChallenge sequences (dir/gt/gt.txt)")
    return [load_sequence(d, shift) for d in dirs]


# ---------------------------------------------------------------------------- AP


@dataclass
class FrameDetections:
    """Person detections of one frame: xyxy source pixels and scores."""

    xyxy: np.ndarray
    score: np.ndarray


def _coco_pair(
    items: Sequence[tuple[MotSequence, list[FrameDetections]]],
):
    from pycocotools.coco import COCO

    images, annotations, results = [], [], []
    image_id = 0
    for seq, dets in items:
        for frame_index in range(1, len(dets) + 1):
            image_id += 1
            images.append({"id": image_id})
            truth = seq.gt.get(frame_index)
            if truth is not None:
                for box, ignore in zip(truth.xywh, truth.ignore, strict=True):
                    annotations.append(
                        {
                            "id": len(annotations) + 1,
                            "image_id": image_id,
                            "category_id": 1,
                            "bbox": [float(v) for v in box],
                            "area": float(box[2] * box[3]),
                            "iscrowd": int(ignore),
                        }
                    )
            d = dets[frame_index - 1]
            for (x1, y1, x2, y2), s in zip(d.xyxy.tolist(), d.score.tolist(), strict=True):
                results.append(
                    {
                        "image_id": image_id,
                        "category_id": 1,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": s,
                    }
                )
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "person"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results) if results else COCO()
    return gt, dt, bool(results)


def ap50(items: Sequence[tuple[MotSequence, list[FrameDetections]]]) -> float:
    """COCO AP at IoU 0.5 (101-point, maxDets 100) of person detections over the frames of
    one or more sequences pooled (``dets[i]`` is frame i + 1)."""
    from pycocotools.cocoeval import COCOeval

    gt, dt, any_results = _coco_pair(items)
    if not any_results:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, dt, "bbox")
        ev.params.catIds = [1]
        ev.params.iouThrs = np.array([0.5])
        ev.evaluate()
        ev.accumulate()
    # precision[T, R, K, A, M]: IoU 0.5, all recall points, person, all areas, maxDets 100
    p = ev.eval["precision"][0, :, 0, 0, -1]
    p = p[p > -1]
    return float(p.mean()) if len(p) else 0.0
