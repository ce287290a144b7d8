"""Calibration frames for INT8: real frames from the cameras a model will see.

``collect_frames`` samples BGR frames spread over time from video files (evenly across each
file's duration) and from live sources (RTSP/HTTP streams, USB cameras: evenly over a time
window), drops near-identical frames, and caps the set. ``FrameReader`` feeds them to ONNX
Runtime's calibrators through the model's own preprocessing, a batch at a time.

    frames = collect_frames(["clip.mp4", "rtsp://cam/stream1"], count=200)
    reader = FrameReader.for_detector(detector, frames, batch_size=1)
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import av
import cv2
import numpy as np

from edged.core.redact import redact_text

log = logging.getLogger(__name__)

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)

#: mean absolute difference, in grey levels, between two frames' 64×48 grey thumbnails below
#: which the second is a repeat of the first. Measured here: frames of the same clip taken
#: apart in time differ by 1.5–12; a static shelf with nothing happening by ≈ 1.
DEDUP_THRESHOLD = 1.0
_THUMB = (64, 48)

#: files with at most this many frames are decoded straight through (cheaper than seeking
#: to each sample); longer ones are sampled by seeking
SEQUENTIAL_MAX_FRAMES = 3000

SourceKind = Literal["file", "stream", "usb"]


class CalibrationError(Exception):
    """Calibration frames could not be collected."""


def source_kind(uri: str) -> SourceKind:
    """What a camera URI is, as a config's ``source.uri`` reads (``kind: auto``)."""
    if uri.isdigit() or uri.startswith("/dev/video"):
        return "usb"
    if _SCHEME.match(uri) and not uri.lower().startswith("file://"):
        return "stream"
    return "file"


def config_sources(config: Any) -> list[str]:
    """The source URIs of a loaded config's cameras (``edged.config.load(...)``)."""
    return [camera.source.uri for camera in config.cameras.values()]


# ---------------------------------------------------------------------------- sampling


def _even_targets(count: int, span: float) -> list[float]:
    """``count`` points at the centres of equal slices of [0, span)."""
    return [(k + 0.5) * span / count for k in range(count)]


def _open(uri: str, kind: SourceKind, timeout_s: float) -> av.container.InputContainer:
    if kind == "file":
        path = uri[len("file://") :] if uri.lower().startswith("file://") else uri
        if not Path(path).is_file():
            raise CalibrationError(f"{uri}: no such video file")
        return av.open(path)
    if kind == "usb":
        device = f"/dev/video{uri}" if uri.isdigit() else uri
        return av.open(device, format="v4l2", timeout=timeout_s)
    options = {"analyzeduration": "300000", "probesize": "500000"}
    if uri.lower().startswith(("rtsp://", "rtsps://")):
        options["rtsp_transport"] = "tcp"
    return av.open(uri, options=options, timeout=timeout_s)


def sample_file(path: str, count: int, *, seek: bool | None = None) -> list[np.ndarray]:
    """``count`` frames at evenly spaced times across the whole file (fewer if it is shorter).

    ``seek``: None picks straight decoding for short files and seeking for long ones.
    """
    if count <= 0:
        return []
    try:
        with _open(path, "file", 10.0) as container:
            if not container.streams.video:
                raise CalibrationError(f"{path}: no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            n = stream.frames or 0
            if seek is None:
                seek = n == 0 or n > SEQUENTIAL_MAX_FRAMES
            if not seek:
                return _sample_sequential(container, stream, n, count)
            return _sample_seeking(container, stream, count, path)
    except (av.error.FFmpegError, OSError) as exc:
        raise CalibrationError(f"{path}: cannot read the video: {exc}") from exc


def _sample_sequential(
    container: av.container.InputContainer, stream: av.VideoStream, n: int, count: int
) -> list[np.ndarray]:
    wanted = sorted({min(int(t), n - 1) for t in _even_targets(min(count, n), float(n))})
    out: list[np.ndarray] = []
    nxt = 0
    for index, frame in enumerate(container.decode(stream)):
        if nxt < len(wanted) and index == wanted[nxt]:
            out.append(frame.to_ndarray(format="bgr24"))
            nxt += 1
            if nxt == len(wanted):
                break
    return out


def _sample_seeking(
    container: av.container.InputContainer, stream: av.VideoStream, count: int, path: str
) -> list[np.ndarray]:
    tb = float(stream.time_base) if stream.time_base else 1e-6
    if stream.duration:
        duration = stream.duration * tb
        start = (stream.start_time or 0) * tb
    elif container.duration:
        duration = container.duration / 1e6
        start = 0.0
    else:
        raise CalibrationError(f"{path}: the file's duration is unknown; cannot sample by time")
    out: list[np.ndarray] = []
    last_pts: int | None = None
    for target in _even_targets(count, duration):
        t = start + target
        container.seek(int(t / tb), stream=stream, backward=True, any_frame=False)
        chosen = None
        for frame in container.decode(stream):
            chosen = frame
            if frame.pts is not None and frame.pts * tb >= t - 0.5 * tb:
                break
        if chosen is None or chosen.pts == last_pts:
            continue
        last_pts = chosen.pts
        out.append(chosen.to_ndarray(format="bgr24"))
    return out


def sample_live(
    uri: str, count: int, window_s: float, *, open_timeout_s: float = 10.0
) -> list[np.ndarray]:
    """``count`` frames at evenly spaced times over ``window_s`` seconds of a live source.

    Times are the wall clock from the first frame (a stream's first frames often carry no
    timestamp); the window plus the open timeout bounds the whole read, and the open timeout
    each read, so a stalled camera cannot hang calibration. A source that stops after some
    frames gives those.
    """
    if count <= 0:
        return []
    kind = source_kind(uri)
    deadline = time.monotonic() + window_s + open_timeout_s
    targets = _even_targets(count, window_s)
    out: list[np.ndarray] = []
    try:
        # the timeout bounds each read too: a camera that stops sending raises here
        with _open(uri, kind if kind != "file" else "stream", open_timeout_s) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            t0: float | None = None
            for frame in container.decode(stream):
                now = time.monotonic()
                if t0 is None:
                    t0 = now
                if now - t0 >= targets[len(out)]:
                    out.append(frame.to_ndarray(format="bgr24"))
                    if len(out) == count:
                        break
                if time.monotonic() > deadline:
                    break
    except (av.error.FFmpegError, OSError) as exc:
        if not out:
            raise CalibrationError(redact_text(f"{uri}: cannot read frames: {exc}")) from exc
        log.warning("%s: stopped after %d of %d frames: %s", uri, len(out), count, exc)
    return out


# ---------------------------------------------------------------------------- dedup


def thumbnail(image: np.ndarray) -> np.ndarray:
    """64×48 grey float32: what near-duplicate detection compares."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return cv2.resize(grey, _THUMB, interpolation=cv2.INTER_AREA).astype(np.float32)


def deduplicate(
    frames: Iterable[np.ndarray], threshold: float = DEDUP_THRESHOLD, limit: int | None = None
) -> list[np.ndarray]:
    """Frames in order, without those nearly identical to one already kept (mean absolute
    difference of their grey thumbnails below ``threshold`` grey levels); at most ``limit``."""
    seen = _Seen(threshold)
    kept: list[np.ndarray] = []
    for image in frames:
        if limit is not None and len(kept) >= limit:
            break
        if seen.add(image):
            kept.append(image)
    return kept


class _Seen:
    """Thumbnails of the frames kept so far."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self._thumbs = np.empty((0, _THUMB[1], _THUMB[0]), np.float32)

    def add(self, image: np.ndarray) -> bool:
        """Remember ``image`` and say True, unless it nearly repeats one already seen."""
        t = thumbnail(image)
        if len(self._thumbs) and np.abs(self._thumbs - t).mean(axis=(1, 2)).min() < self.threshold:
            return False
        self._thumbs = np.concatenate([self._thumbs, t[None]])
        return True


# ---------------------------------------------------------------------------- collect


def share_out(total: int, available: Sequence[int]) -> list[int]:
    """Split ``total`` between bins holding ``available`` items each, as evenly as they allow
    (a bin with fewer items than its share gives the rest to the others)."""
    quotas = [0] * len(available)
    left = total
    open_bins = [i for i, a in enumerate(available) if a > 0]
    while left > 0 and open_bins:
        fair, extra = divmod(left, len(open_bins))
        for rank, i in enumerate(list(open_bins)):
            give = min(fair + (1 if rank < extra else 0), available[i] - quotas[i])
            quotas[i] += give
            left -= give
        open_bins = [i for i in open_bins if quotas[i] < available[i]]
    return quotas


def collect_frames(
    sources: Sequence[str | Path],
    count: int = 200,
    *,
    window_s: float = 60.0,
    dedup_threshold: float = DEDUP_THRESHOLD,
    oversample: float = 1.5,
    open_timeout_s: float = 10.0,
) -> list[np.ndarray]:
    """At most ``count`` distinct BGR frames from ``sources``, spread over time and shared
    evenly between the sources.

    Files (paths or ``file://``) are sampled evenly across their whole duration; live sources
    (``rtsp://``, ``http(s)://``…, ``/dev/videoN``, a USB index) evenly over ``window_s``
    seconds. Each source contributes about ``oversample`` × its share as candidates; near
    duplicates (see ``deduplicate``) are dropped across all sources; then each source keeps
    evenly spaced frames of what is left, its share being as even as the sources allow. The
    result is grouped by source, in time order within each.
    """
    if count <= 0:
        return []
    uris = [str(s) for s in sources]
    if not uris:
        raise CalibrationError("no calibration sources given")
    want = max(1, math.ceil(math.ceil(count / len(uris)) * oversample))
    # live sources are watched at the same time (decoding releases the GIL), so N cameras
    # take one window, not N; files are read one after the other
    live = [u for u in uris if source_kind(u) != "file"]
    with ThreadPoolExecutor(max_workers=max(1, len(live))) as pool:
        watching = {
            u: pool.submit(sample_live, u, want, window_s, open_timeout_s=open_timeout_s)
            for u in live
        }
        candidates: list[list[np.ndarray]] = [
            watching[u].result() if u in watching else sample_file(u, want) for u in uris
        ]
    for uri, frames in zip(uris, candidates, strict=True):
        if not frames:
            log.warning("%s: no frames for calibration", uri)

    # near duplicates go first (across sources too); then the count is shared out as evenly
    # as the sources allow, and each source keeps evenly spaced frames of what it has left
    seen = _Seen(dedup_threshold)
    distinct = [[image for image in frames if seen.add(image)] for frames in candidates]
    quotas = share_out(count, [len(d) for d in distinct])
    frames = []
    for mine, quota in zip(distinct, quotas, strict=True):
        frames.extend(mine[int(t)] for t in _even_targets(quota, float(len(mine))))
    total = sum(len(c) for c in candidates)
    log.info(
        "calibration: %d frames kept of %d sampled from %d sources", len(frames), total, len(uris)
    )
    return frames


# ---------------------------------------------------------------------------- reader


try:  # the reader is an ORT CalibrationDataReader where ORT's quantization tools are present
    from onnxruntime.quantization import CalibrationDataReader as _ReaderBase
except ImportError:  # pragma: no cover - onnxruntime always ships them today
    _ReaderBase = object


class FrameReader(_ReaderBase):
    """Feeds frames to an ONNX Runtime calibrator as ``{input_name: float32 batch}``.

    Preprocessing is the model's own (``preprocess(image, out)`` writes one item into
    ``out``), run lazily a batch at a time so a few hundred frames do not sit in memory as
    tensors. ``len()`` is the number of batches; ``set_range`` restricts to batches
    [start, end) (ORT's strided calibration); ``rewind`` starts again.
    """

    def __init__(
        self,
        frames: Sequence[np.ndarray],
        preprocess: Callable[[np.ndarray, np.ndarray], object],
        input_name: str,
        input_shape: tuple[int, ...],
        batch_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if not frames:
            raise CalibrationError("no calibration frames")
        self.frames = list(frames)
        self.preprocess = preprocess
        self.input_name = input_name
        self.input_shape = tuple(input_shape)
        self.batch_size = batch_size
        self._batches = math.ceil(len(self.frames) / batch_size)
        self._start, self._end = 0, self._batches
        self._next = 0

    @classmethod
    def for_detector(
        cls, detector: Any, frames: Sequence[np.ndarray], batch_size: int = 1
    ) -> FrameReader:
        """A reader using ``detector.adapter``'s preprocessing and input name."""
        adapter = detector.adapter
        return cls(frames, adapter.preprocess, adapter.input_name, adapter.input_shape, batch_size)

    def __len__(self) -> int:
        return self._end - self._start

    def batch(self, index: int) -> np.ndarray:
        """Batch ``index`` (0-based over all frames) as an N×(input_shape) float32 array."""
        chunk = self.frames[index * self.batch_size : (index + 1) * self.batch_size]
        out = np.empty((len(chunk), *self.input_shape), np.float32)
        for i, image in enumerate(chunk):
            self.preprocess(image, out[i])  # any return value (geometry) is not needed here
        return out

    def get_next(self) -> dict[str, np.ndarray] | None:
        index = self._start + self._next
        if index >= self._end:
            return None
        self._next += 1
        return {self.input_name: self.batch(index)}

    def rewind(self) -> None:
        self._start, self._end = 0, self._batches
        self._next = 0

    def set_range(self, start_index: int, end_index: int) -> None:
        self._start = max(0, start_index)
        self._end = min(self._batches, end_index)
        self._next = 0
