"""One inference worker per model: the newest frame of every camera that uses it, batched,
through the engine; failed runs retried, a model that keeps failing given up."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from edged.core.frame import Frame
from edged.models.detector import Detector, DetectRequest
from edged.pipeline.camera import CameraRuntime

log = logging.getLogger(__name__)

# an engine run that fails (a GPU error, a model that breaks on some input) is retried on the
# next frames after a pause that doubles from RETRY_FIRST_S; after MAX_FAILURES in a row (about
# 8 s) the model is given up and the daemon exits non-zero, for systemd to restart it
MAX_FAILURES = 5
RETRY_FIRST_S = 0.5


# a camera counts as streaming for batching while it handed a frame within this long: a
# partial batch waits only for those (an offline, reconnecting or idle camera never makes the
# others wait)
ACTIVE_S = 1.0

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
        self._handed: dict[int, float] = {}  # id(camera) → when it last handed a frame
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
                self._handed[id(cam)] = time.monotonic()
        self._next = (self._next + 1) % max(n, 1)

    def _fill(self, open_cams: list[CameraRuntime], batch: list[Taken]) -> None:
        """A partial batch waits up to the batch timeout for frames of the other cameras
        that are streaming, when the engine can take them in one run: one camera alone, or
        with the others offline or idle, never waits."""
        now = time.monotonic()
        streaming = sum(now - self._handed.get(id(c), -ACTIVE_S) < ACTIVE_S for c in open_cams)
        target = min(self.detector.max_batch, streaming)
        deadline = now + self.batch_timeout_s
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
