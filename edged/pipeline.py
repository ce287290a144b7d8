"""Wires the config into threads: sources → inference workers → per-camera analytics → sink."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass

from edged.camera.analytics import CameraAnalytics
from edged.config import CameraConfig, Config
from edged.core.detections import Detections
from edged.core.frame import Frame
from edged.core.latency import STAGES, Latency, RateMeter
from edged.models.detector import Detector, DetectRequest, load_detector
from edged.models.segmenter import Segmenter, load_segmenter
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
# an engine run that fails (a GPU error, a model that breaks on some input) is retried on the
# next frames after a pause that doubles from RETRY_FIRST_S; after MAX_FAILURES in a row (about
# 8 s) the model is given up and the daemon exits non-zero, for systemd to restart it
MAX_FAILURES = 5
RETRY_FIRST_S = 0.5


@dataclass(frozen=True, slots=True)
class CameraStats:
    """Counters since start: decoded by the source, handed over, detected and analysed,
    overwritten in the slot before inference took them (``dropped``)."""

    decoded: int
    delivered: int
    processed: int
    dropped: int
    reconnects: int
    tracks: int
    state: str


@dataclass(frozen=True, slots=True)
class CameraProgress:
    processed: int
    delivered: int
    waiting: bool  # a frame sits in the slot or the analytics queue


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
        self.analytics = CameraAnalytics(name, config, detector.labels)
        self.snapshots = None
        if config.snapshots is not None:
            threshold = 0.5 if config.segment is None else config.segment.threshold
            self.snapshots = Snapshotter(
                name, config.snapshots, detector.labels, sink.publish_image, threshold
            )
        self.slot = FrameSlot(wake, block=not is_live(config.source))
        # when the source entered its current state, and why (for /healthz)
        self.state_since = time.monotonic()
        self.state_reason = ""
        self.source: Source = make_source(name, config.source, self.slot, self._on_state)
        self.queue: queue.Queue[tuple[Frame, Detections] | None] = queue.Queue(ANALYTICS_QUEUE)
        self.processed = 0
        self.process_rate = RateMeter()
        # seconds per frame in each stage this camera runs; the source measures its decoding
        stages = [s for s in STAGES if s != "segment" or segmenter is not None]
        self.stages = {s: Latency() for s in stages} | {"decode": self.source.decode_latency}
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
        detect = self.config.detect
        return frame, DetectRequest(frame.image, detect.min_score, detect.nms_iou)

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
        self.config = config
        with self._lock:
            self._reconfigure = config

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def progress(self) -> CameraProgress:
        return CameraProgress(
            processed=self.processed,
            delivered=self.slot.put_count,
            waiting=self.slot.waiting or not self.queue.empty(),
        )

    def stats(self) -> CameraStats:
        return CameraStats(
            decoded=self.source.decoded,
            delivered=self.slot.put_count,
            processed=self.processed,
            dropped=self.slot.dropped,
            reconnects=self.source.reconnects,
            tracks=self.analytics.active_tracks,
            state=self.source.state.value,
        )


# a frame taken for the next batch: its camera, and what to detect in it with which thresholds
Taken = tuple[CameraRuntime, Frame, DetectRequest]


class InferenceWorker:
    """Runs one model for every camera that uses it, taking the newest frame of each."""

    def __init__(
        self,
        name: str,
        detector: Detector,
        wake: threading.Condition,
        batch_timeout_s: float = 0.0,
    ) -> None:
        self.name = name
        self.detector = detector
        self.wake = wake
        self.batch_timeout_s = batch_timeout_s
        self.batch_sizes: Counter[int] = Counter()  # how many runs had each size
        self.cameras: list[CameraRuntime] = []  # the cameras it serves, until they end
        self._joining: list[CameraRuntime] = []
        self._ended = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"infer-{name}", daemon=True)
        self._next = 0
        self.failed_runs = 0  # engine runs that raised, since start
        self._failures = 0  # in a row
        self.failure: str | None = None  # why the model was given up

    def start(self) -> None:
        self._thread.start()

    def attach(self, cam: CameraRuntime) -> bool:
        """Serve ``cam`` from the next batch on; False when this worker has ended (every camera
        it had ended), and a new one must serve it."""
        with self.wake:
            if self._ended:
                return False
            self.cameras.append(cam)
            self._joining.append(cam)
            self.wake.notify_all()
            return True

    def stop(self) -> None:
        self._stop.set()
        with self.wake:
            self.wake.notify_all()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _collect(self, open_cams: list[CameraRuntime], batch: list[Taken]) -> None:
        """Add the frames waiting in the slots, round-robin so no camera starves another;
        at most one frame per camera per batch."""
        taken = {id(cam) for cam, _, _ in batch}
        n = len(open_cams)
        for k in range(n):
            if len(batch) == self.detector.max_batch:
                break
            cam = open_cams[(self._next + k) % n]
            if id(cam) in taken:
                continue
            item = cam.take()
            if item is not None:
                batch.append((cam, *item))
                taken.add(id(cam))
        self._next = (self._next + 1) % max(n, 1)

    def _fill(self, open_cams: list[CameraRuntime], batch: list[Taken]) -> None:
        """A partial batch waits up to the batch timeout for frames of the other cameras,
        when the engine can take them in one run."""
        target = min(self.detector.max_batch, len(open_cams))
        deadline = time.monotonic() + self.batch_timeout_s
        while len(batch) < target and not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.wake.wait(left)
            self._collect(open_cams, batch)

    def _failed(self, exc: Exception, batch: list[Taken]) -> None:
        """An engine run raised: its frames are lost; pause, or give the model up (raise)."""
        self.failed_runs += 1
        self._failures += 1
        cams = ", ".join(cam.name for cam, _, _ in batch)
        if self._failures >= MAX_FAILURES:
            self.failure = f"{self._failures} runs in a row failed, the last with {exc!r}"
            log.error("model %s: %s; giving it up", self.name, self.failure)
            raise exc
        pause = RETRY_FIRST_S * 2 ** (self._failures - 1)
        if self._failures == 1:
            log.exception(
                "model %s: inference failed (frames of %s lost); retrying in %.1f s",
                self.name,
                cams,
                pause,
            )
        else:
            log.error(
                "model %s: inference failed again (%d in a row): %r; retrying in %.1f s",
                self.name,
                self._failures,
                exc,
                pause,
            )
        self._stop.wait(pause)

    def _run(self) -> None:
        open_cams: list[CameraRuntime] = []
        try:
            while not self._stop.is_set():
                batch: list[Taken] = []
                with self.wake:
                    open_cams += self._joining
                    self._joining.clear()
                    if not open_cams:
                        self._ended = True
                        return
                    self._collect(open_cams, batch)
                    if batch and self.batch_timeout_s > 0:
                        self._fill(open_cams, batch)
                    # a camera that ended (or was removed) is let go even while others stream
                    taken = {id(cam) for cam, _, _ in batch}
                    finished = [c for c in open_cams if c.slot.finished and id(c) not in taken]
                    for cam in finished:
                        open_cams.remove(cam)
                        self.cameras.remove(cam)
                        cam.queue.put(None)
                    if not batch:
                        if not finished:
                            self.wake.wait(0.5)
                        continue
                try:
                    detected = self.detector.detect([request for _, _, request in batch])
                except Exception as exc:
                    self._failed(exc, batch)
                    continue
                self._failures = 0
                self.batch_sizes[len(batch)] += 1
                for (cam, frame, _), found in zip(batch, detected, strict=True):
                    cam.stages["preprocess"].observe(found.times.preprocess)
                    cam.stages["inference"].observe(found.times.inference)
                    cam.stages["postprocess"].observe(found.times.postprocess)
                    cam.queue.put((frame, found.detections))
        except Exception as exc:
            if self.failure is None:
                log.exception("inference worker %s failed", self.name)
                self.failure = f"{type(exc).__name__}: {exc}"
            for cam in open_cams:
                cam.failed = RuntimeError(f"model {self.name} failed: {self.failure}")
                cam.source.stop()
        finally:
            with self.wake:
                self._ended = True
                open_cams += self._joining
                self._joining.clear()
            for cam in open_cams:
                cam.queue.put(None)


class Pipeline:
    """Everything between the cameras and the event sink, built from one config; cameras and
    models can be added, changed and removed while it runs (see ``edged.service.reload``)."""

    def __init__(self, config: Config, sink: EventSink) -> None:
        self.config = config
        self.sink = sink
        self.workers: dict[str, InferenceWorker] = {}
        self.cameras: dict[str, CameraRuntime] = {}
        self._segmenters: dict[str, Segmenter] = {}
        # replaced workers and removed cameras still wind down; stop() waits for them too
        self._retired_workers: list[InferenceWorker] = []
        self._retired_cameras: list[CameraRuntime] = []
        self._started = False
        for name, cam in config.cameras.items():
            if cam.enabled:
                self._add(name, cam)

    def _worker(self, model: str) -> InferenceWorker:
        worker = self.workers.get(model)
        if worker is None:
            mc = self.config.models[model]
            worker = InferenceWorker(
                model, load_detector(mc), threading.Condition(), mc.batch_timeout_ms / 1000
            )
            self.workers[model] = worker
            if self._started:
                worker.start()
        return worker

    def _segmenter(self, model: str) -> Segmenter:
        if model not in self._segmenters:
            self._segmenters[model] = load_segmenter(self.config.models[model])
        return self._segmenters[model]

    def build_camera(self, name: str, config: CameraConfig) -> CameraRuntime:
        """A camera built, with its models loaded if no camera uses them yet, but not yet
        attached or started: whatever cannot work (a model that does not load, a snapshot
        folder that cannot be made) raises here, before anything running is touched."""
        worker = self._worker(config.detect.model)
        segmenter = None if config.segment is None else self._segmenter(config.segment.model)
        return CameraRuntime(name, config, worker.detector, worker.wake, self.sink, segmenter)

    def _attach(self, runtime: CameraRuntime) -> None:
        worker = self.workers[runtime.config.detect.model]
        if not worker.attach(runtime):
            # every camera of that worker had ended: a fresh worker on the same engine
            self._retired_workers.append(worker)
            worker = InferenceWorker(
                worker.name, worker.detector, worker.wake, worker.batch_timeout_s
            )
            self.workers[worker.name] = worker
            worker.attach(runtime)
            worker.start()
        self.cameras[runtime.name] = runtime

    def _add(self, name: str, config: CameraConfig) -> CameraRuntime:
        runtime = self.build_camera(name, config)
        self._attach(runtime)
        return runtime

    def start(self) -> None:
        self._started = True
        for cam in self.cameras.values():
            cam.start()
        for worker in self.workers.values():
            worker.start()

    def add_camera(self, name: str, config: CameraConfig) -> None:
        """Start a camera on the running pipeline (loading its models if none uses them)."""
        self._add(name, config).start()

    def start_camera(self, runtime: CameraRuntime) -> None:
        """Start a camera made by ``build_camera`` (the one of that name must be removed)."""
        self._attach(runtime)
        runtime.start()

    def remove_cameras(self, names: list[str], timeout: float) -> bool:
        """Stop cameras: their sources stop, frames in flight finish and their analytics end;
        False if that took longer than ``timeout`` (they wind down on their own)."""
        cams = [self.cameras.pop(name) for name in names]
        # keep only what still winds down, so reloads do not pile up dead cameras
        self._retired_cameras = [c for c in self._retired_cameras if not c.done or c.source.alive]
        self._retired_cameras += cams
        for cam in cams:
            cam.source.stop()
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        ok = all([c.join(left()) for c in cams])
        return all([c.source.join(left()) for c in cams]) and ok

    def reload_models(self, models: set[str], config: Config) -> dict[str, str]:
        """Load the models named again, with their settings in ``config``, for the cameras
        built from now on; running cameras keep the loaded ones until they are removed. A
        model that does not load stays as it was: returns those, with the reason."""
        failed: dict[str, str] = {}
        for model in sorted(models):
            mc = config.models[model]
            try:
                worker = None
                if model in self.workers:
                    timeout_s = mc.batch_timeout_ms / 1000
                    worker = InferenceWorker(
                        model, load_detector(mc), threading.Condition(), timeout_s
                    )
                segmenter = load_segmenter(mc) if model in self._segmenters else None
            except Exception as exc:
                log.debug("model %s could not load", model, exc_info=True)
                failed[model] = f"{type(exc).__name__}: {exc}"
                continue
            if worker is not None:
                self._retired_workers = [w for w in self._retired_workers if w.alive]
                self._retired_workers.append(self.workers[model])
                self.workers[model] = worker
                if self._started:
                    worker.start()
            if segmenter is not None:
                self._segmenters[model] = segmenter
        return failed

    @property
    def fatal(self) -> str | None:
        """Why a model was given up (its cameras are stopped), or None."""
        for worker in [*self.workers.values(), *self._retired_workers]:
            if worker.failure is not None:
                return f"model {worker.name}: {worker.failure}"
        return None

    @property
    def finished(self) -> bool:
        """Every camera has ended and its last events are out."""
        return all(c.done for c in self.cameras.values())

    def wait(self, timeout: float) -> bool:
        """Wait until every camera has ended and its last events are out (True), or timeout."""
        deadline = time.monotonic() + timeout
        return all(c.join(max(0.0, deadline - time.monotonic())) for c in self.cameras.values())

    def stop(self, timeout: float = 3.0) -> bool:
        """Stop sources, let frames in flight finish, and wait at most ``timeout`` in all;
        False if something is still running (a source blocked in an open or read ends by its
        own timeout, on a daemon thread)."""
        deadline = time.monotonic() + timeout

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        cameras = [*self.cameras.values(), *self._retired_cameras]
        workers = [*self.workers.values(), *self._retired_workers]
        for cam in cameras:
            cam.source.stop()
        ok = all([w.join(left()) for w in workers])
        for w in workers:
            w.stop()
        ok = all([c.join(left()) for c in cameras]) and ok
        return all([c.source.join(left()) for c in cameras]) and ok

    def stats(self) -> dict[str, CameraStats]:
        return {name: cam.stats() for name, cam in self.cameras.items()}

    def progress(self) -> dict[str, CameraProgress]:
        return {name: cam.progress() for name, cam in self.cameras.items()}
