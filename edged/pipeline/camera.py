"""One camera at run time: its source, its one-slot mailbox, its analytics thread, and the
counters the daemon reports."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from edged.camera.analytics import CameraAnalytics, decoded_classes
from edged.camera.crops import detect_crops
from edged.camera.gate import MotionGate
from edged.camera.thresholds import class_floors
from edged.config import CameraConfig
from edged.config.camera import DetectConfig
from edged.core.detections import Detections
from edged.core.frame import Frame
from edged.core.latency import STAGES, Latency, RateMeter
from edged.core.masks import PersonMask
from edged.models.detector import Detector, DetectRequest
from edged.models.manifest import ModelError
from edged.models.preprocess import Resize
from edged.models.segmenter import Segmenter
from edged.outputs.sink import EventSink
from edged.outputs.snapshots import Snapshotter
from edged.sources.base import Source, StateChange
from edged.sources.factory import is_live, make_source
from edged.sources.slot import FrameSlot
from edged.sources.status import status_event

log = logging.getLogger(__name__)

# how many detected frames may wait for a camera's analytics; it is far faster than inference,
# so this only absorbs jitter
ANALYTICS_QUEUE = 4
# the longest a fast file's gate waits for the frames before it to be analysed (a wedged
# pipeline is the watchdog's to find, not the gate's)
SETTLE_WAIT_S = 5.0


@dataclass(frozen=True, slots=True)
class _RequestSettings:
    """What a camera's frames are detected with, from one config: the classes decoded, the
    least floor among them (what the decoder keeps), the floor per class, how the picture
    is fitted to the input."""

    detect: DetectConfig
    classes: np.ndarray | None
    least: float
    floors: np.ndarray
    resize: Resize | None  # None: as the model's manifest says


@dataclass(frozen=True, slots=True)
class CameraStats:
    """Counters since start: decoded by the source, handed over (past ``detect_fps`` and
    the motion gate), detected and analysed, overwritten in the slot before inference took
    them (``dropped``), not handed over because nothing moved or was tracked (``skipped``,
    motion gating)."""

    decoded: int
    delivered: int
    processed: int
    dropped: int
    skipped: int
    reconnects: int
    tracks: int
    state: str


@dataclass(frozen=True, slots=True)
class CameraProgress:
    processed: int
    delivered: int
    waiting: bool  # a frame sits in the slot or the analytics queue
    skipped: int = 0  # skipped as still by the gate: dealt with, like a processed one


class CameraRuntime:
    """One camera's source, slot and analytics thread."""

    def __init__(
        self,
        name: str,
        config: CameraConfig,
        detector: Detector,
        wake: threading.Condition,
        sink: EventSink,
        segmenter: Segmenter | None = None,
    ) -> None:
        self.name = name
        self.segmenter = segmenter
        self.config = config
        self.sink = sink
        self.model_floors = detector.manifest.min_scores
        in_w, in_h = detector.manifest.input.size
        self.input_aspect = in_w / in_h
        # a prepared graph resizes inside the model, one way for every camera
        self.graph_resize = detector.manifest.input.resize if detector.graph_input else None
        self.analytics = CameraAnalytics(name, config, detector.labels, self.model_floors)
        self.labels = detector.labels
        # what a frame taken now is detected with: replaced whole on a reload
        self._detect = self._request_settings(config)
        self.snapshots = None
        self.seen: tuple[Frame, Detections, PersonMask | None] | None = None
        if config.snapshots is not None:
            threshold = 0.5 if config.segment is None else config.segment.threshold
            self.snapshots = Snapshotter(
                name, config.snapshots, detector.labels, sink.publish_image, threshold
            )
        self.slot = FrameSlot(wake, block=not is_live(config.source))
        # frames handed over that are analysed or lost (their engine run failed): while some
        # are not, the analytics' busy flag is that of an older frame
        self._settled = 0
        self._settle = threading.Condition()
        # when the source entered its current state, and why (for /healthz)
        self.state_since = time.monotonic()
        self.state_reason = ""
        self.source: Source = make_source(name, config.source, self.slot, self._on_state)
        self.queue: queue.Queue[tuple[Frame, Detections] | None] = queue.Queue(ANALYTICS_QUEUE)
        self.processed = 0
        self.process_rate = RateMeter()
        self.gate = MotionGate()
        self.source.admit = self._admit
        # seconds per frame in each stage this camera runs; the source measures its decoding,
        # the gate its motion measure
        stages = [s for s in STAGES if s != "segment" or segmenter is not None]
        self.stages = {s: Latency() for s in stages} | {
            "decode": self.source.decode_latency,
            "motion": self.gate.latency,
        }
        self.failed: BaseException | None = None
        self._reconfigure: CameraConfig | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"analytics-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self.source.start()

    def take(self) -> tuple[Frame, DetectRequest] | None:
        """The frame waiting in the slot, if any, with the thresholds it is to be detected
        with: those of the config running when it was taken (a reload's apply from the next
        frame taken)."""
        frame = self.slot.take()
        if frame is None:
            return None
        s = self._detect
        region = self.analytics.region
        crops = detect_crops(frame.width, frame.height, region, s.detect, self.input_aspect)
        request = DetectRequest(
            frame.image, s.least, s.detect.nms_iou, s.classes, s.floors, crops, s.resize
        )
        return frame, request

    def _request_settings(self, config: CameraConfig) -> _RequestSettings:
        resize = None if config.detect.resize == "model" else config.detect.resize
        if self.graph_resize is not None and resize not in (None, self.graph_resize):
            raise ModelError(
                f"camera {self.name}: detect.resize {resize}, but model "
                f"{config.detect.model!r} resizes by {self.graph_resize} inside its prepared "
                "graph (set the model's preprocess: cpu, or drop detect.resize)"
            )
        classes = decoded_classes(self.labels, config)
        floors = class_floors(self.labels, config.detect, self.model_floors)
        least = float(floors.min() if classes is None else floors[classes].min())
        return _RequestSettings(config.detect, classes, least, floors, resize)

    def _admit(self, picture: np.ndarray, media_ts: float) -> bool:
        """The motion gate, on the source's thread before the frame is converted or handed
        over: a frame skipped as still costs its decoding and the measure, nothing more. The
        analytics' state is theirs after the latest frame they analysed (one may be in
        flight)."""
        analytics = self.analytics
        motion = self.config.detect.motion
        if motion.enabled and not analytics.busy and self.slot.block:
            # a file read as fast as it goes: the gate decides with the analytics of every
            # frame before this one, as on a camera, so its decisions do not depend on how
            # far decoding ran ahead (no wait while busy: the frames are needed anyway)
            with self._settle:
                self._settle.wait_for(
                    lambda: self._settled >= self.slot.put_count or self.source.stopping,
                    SETTLE_WAIT_S,
                )
        return self.gate.admit(picture, media_ts, motion, analytics.busy, analytics.region)

    def settled(self) -> None:
        """A frame handed over is analysed, or lost."""
        with self._settle:
            self._settled += 1
            self._settle.notify_all()

    def _on_state(self, change: StateChange) -> None:
        self.state_since, self.state_reason = time.monotonic(), change.reason
        event = status_event(self.name, change, self.config.source.uri)
        if event is None:
            return
        log.info(
            "%s: %s%s",
            self.name,
            change.state.value,
            f" ({change.reason})" if change.reason else "",
        )
        self.sink.emit([event])

    def _run(self) -> None:
        try:
            self.sink.emit(self.analytics.start())
            while True:
                item = self.queue.get()
                if item is None:
                    self.sink.emit(self.analytics.finish())
                    return
                frame, detections = item
                with self._lock:
                    changed, self._reconfigure = self._reconfigure, None
                if changed is not None:
                    self.sink.emit(self.analytics.reconfigure(changed))
                people = None
                if self.segmenter is not None:
                    # here, beside the detector's next batch (ORT drops the GIL)
                    t0 = time.perf_counter()
                    people = self.segmenter.segment(frame.image)
                    self.stages["segment"].observe(time.perf_counter() - t0)
                # what the debug view blurs by, set before the tracks of this frame
                self.seen = (frame, detections, people)
                t0 = time.perf_counter()
                events = self.analytics.process(frame, detections, people)
                if self.snapshots is not None:
                    events = self.snapshots.take(frame, detections, people, events)
                t1 = time.perf_counter()
                self.sink.emit(events)
                self.stages["journal"].observe(time.perf_counter() - t1)
                self.stages["tracking"].observe(self.analytics.track_s)
                self.stages["analytics"].observe(t1 - t0 - self.analytics.track_s)
                self.processed += 1
                self.settled()
                self.process_rate.tick()
        except Exception as exc:
            # a broken camera must not take the others down; it is reported and stays stopped
            log.exception("%s: analytics failed", self.name)
            self.failed = exc
            self.source.stop()
            # keep the worker from blocking on this camera's full queue
            while self.queue.get() is not None:
                pass

    def reconfigure(self, config: CameraConfig) -> None:
        """Take new analytics settings (same source and models): detection thresholds apply
        from the next frame taken, zones, lines, scene and tracker before the next frame's
        analytics."""
        self._detect = self._request_settings(config)
        self.config = config
        with self._lock:
            self._reconfigure = config

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    @property
    def last_frame(self) -> float | None:
        """Monotonic time of the latest frame dealt with: analysed, or skipped as still."""
        times = [t for t in (self.process_rate.last, self.gate.skipped_at) if t is not None]
        return max(times, default=None)

    def progress(self) -> CameraProgress:
        return CameraProgress(
            processed=self.processed,
            delivered=self.slot.put_count,
            waiting=self.slot.waiting or not self.queue.empty(),
            skipped=self.gate.skipped,
        )

    def stats(self) -> CameraStats:
        return CameraStats(
            decoded=self.source.decoded,
            delivered=self.slot.put_count,
            processed=self.processed,
            dropped=self.slot.dropped,
            skipped=self.gate.skipped,
            reconnects=self.source.reconnects,
            tracks=self.analytics.active_tracks,
            state=self.source.state.value,
        )
