"""One inference worker per model: the newest frame of every camera that uses it, batched,
through the engine; failed runs retried, a model that keeps failing given up."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence

from edged.core.frame import Frame
from edged.models.detector import Detected, Detector, DetectRequest
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

# a frame taken for the next batch: its camera, the frame, what to detect in it with which
# thresholds, and its ticket (the camera's frames are handed back in ticket order)
Taken = tuple[CameraRuntime, Frame, DetectRequest, int]


class InferenceWorker:
    """Runs one model for every camera that uses it, taking the newest frame of each.

    ``detectors``: one engine session per lane. Each lane is a thread that takes a batch and
    runs it, so with several lanes several runs are in flight at once (ONNX Runtime releases
    the GIL), frames of one camera included; each camera still gets its frames back in the
    order they were taken (a ticket per frame, handed over in ticket order).
    """

    def __init__(
        self,
        name: str,
        detectors: Detector | list[Detector],
        wake: threading.Condition,
        batch_timeout_s: float = 0.0,
    ) -> None:
        self.name = name
        self.detectors = detectors if isinstance(detectors, list) else [detectors]
        self.detector = self.detectors[0]  # labels and batch size: the same for every lane
        self.wake = wake
        self.batch_timeout_s = batch_timeout_s
        self.batch_sizes: Counter[int] = Counter()  # how many runs had each size
        self.cameras: list[CameraRuntime] = []  # the cameras it serves, until they end
        self._joining: list[CameraRuntime] = []
        self._open: list[CameraRuntime] = []
        self._ended = False
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._lane,
                args=(k, det),
                name=f"infer-{name}" + (f"-{k}" if len(self.detectors) > 1 else ""),
                daemon=True,
            )
            for k, det in enumerate(self.detectors)
        ]
        self._next = 0
        self._handed: dict[int, float] = {}  # id(camera) → when it last handed a frame
        # per camera: tickets handed out and handed back, frames in flight
        self._issued: Counter[int] = Counter()
        self._returned: Counter[int] = Counter()
        self._order = threading.Condition()
        self._lanes_left = len(self.detectors)
        self.failed_runs = 0  # engine runs that raised, since start
        self._failures = [0] * len(self.detectors)  # per lane, in a row
        self.failure: str | None = None  # why the model was given up

    def start(self) -> None:
        for t in self._threads:
            t.start()

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
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not self.alive

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _collect(self, open_cams: list[CameraRuntime], batch: list[Taken]) -> None:
        """Add the frames waiting in the slots, round-robin so no camera starves another;
        at most one frame per camera per batch."""
        taken = {id(cam) for cam, *_ in batch}
        n = len(open_cams)
        for k in range(n):
            if len(batch) == self.detector.max_batch:
                break
            cam = open_cams[(self._next + k) % n]
            if id(cam) in taken:
                continue
            item = cam.take()
            if item is not None:
                # the ticket goes with the take: another lane may take this camera's next
                # frame while this batch waits to fill
                batch.append((cam, *item, self._issued[id(cam)]))
                self._issued[id(cam)] += 1
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

    def _failed(self, exc: Exception, batch: list[Taken], lane: int) -> None:
        """An engine run raised: its frames are lost; pause, or give the model up (raise)
        when this lane's runs failed ``MAX_FAILURES`` times in a row."""
        self.failed_runs += 1
        self._failures[lane] += 1
        failures = self._failures[lane]
        cams = ", ".join(cam.name for cam, *_ in batch)
        if failures >= MAX_FAILURES:
            self.failure = f"{failures} runs in a row failed, the last with {exc!r}"
            log.error("model %s: %s; giving it up", self.name, self.failure)
            raise exc
        pause = RETRY_FIRST_S * 2 ** (failures - 1)
        if failures == 1:
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
                failures,
                exc,
                pause,
            )
        self._stop.wait(pause)

    def _take(self) -> list[Taken] | None:
        """The next batch (empty: nothing yet); None when no camera is left."""
        batch: list[Taken] = []
        with self.wake:
            self._open += self._joining
            self._joining.clear()
            if not self._open:
                self._ended = True
                self.wake.notify_all()
                return None
            self._collect(self._open, batch)
            if batch and self.batch_timeout_s > 0:
                self._fill(self._open, batch)
            # a camera that ended (or was removed) is let go even while others stream, once
            # no frame of it is in flight
            taken = {id(cam) for cam, *_ in batch}
            finished = [
                c
                for c in self._open
                if c.slot.finished
                and id(c) not in taken
                and self._issued[id(c)] == self._returned[id(c)]
            ]
            for cam in finished:
                self._open.remove(cam)
                self.cameras.remove(cam)
                cam.queue.put(None)
            if not batch and not finished:
                self.wake.wait(0.5)
        return batch

    def _hand_back(self, batch: list[Taken], detected: Sequence[Detected | None]) -> None:
        """Each frame to its camera in ticket order (None: its run failed, nothing to hand)."""
        for (cam, frame, _, ticket), found in zip(batch, detected, strict=True):
            key = id(cam)
            with self._order:
                while self._returned[key] != ticket:
                    self._order.wait()
                if found is not None:
                    # one lane at a time here: the stage histograms keep one writer
                    cam.stages["preprocess"].observe(found.times.preprocess)
                    cam.stages["inference"].observe(found.times.inference)
                    cam.stages["postprocess"].observe(found.times.postprocess)
                    cam.queue.put((frame, found.detections))
                else:
                    cam.settled()
                with self.wake:
                    self._returned[key] += 1
                    self.wake.notify_all()
                self._order.notify_all()

    def _lane(self, lane: int, detector: Detector) -> None:
        try:
            while not self._stop.is_set():
                batch = self._take()
                if batch is None:
                    return
                if not batch:
                    continue
                try:
                    detected = detector.detect([request for _, _, request, _ in batch])
                except Exception as exc:
                    self._hand_back(batch, [None] * len(batch))
                    self._failed(exc, batch, lane)
                    continue
                self._failures[lane] = 0
                with self._order:
                    self.batch_sizes[len(batch)] += 1
                self._hand_back(batch, detected)
        except Exception as exc:
            if self.failure is None:
                log.exception("inference worker %s failed", self.name)
                self.failure = f"{type(exc).__name__}: {exc}"
            with self.wake:
                cams = list(self._open)
            for cam in cams:
                cam.failed = RuntimeError(f"model {self.name} failed: {self.failure}")
                cam.source.stop()
            self._stop.set()
        finally:
            self._wind_down()

    def _wind_down(self) -> None:
        """The last lane out ends every camera still open."""
        with self.wake:
            self.wake.notify_all()
            self._lanes_left -= 1
            if self._lanes_left:
                return
            self._ended = True
            self._open += self._joining
            self._joining.clear()
            cams, self._open = list(self._open), []
        for cam in cams:
            cam.queue.put(None)
