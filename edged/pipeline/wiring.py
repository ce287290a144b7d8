"""The pipeline built from one config: cameras and their models' workers, added, changed and
removed while it runs."""

from __future__ import annotations

import logging
import threading
import time

from edged.config import CameraConfig, Config
from edged.models.detector import load_detectors
from edged.models.segmenter import Segmenter, load_segmenter
from edged.outputs.sink import EventSink
from edged.pipeline.camera import CameraProgress, CameraRuntime, CameraStats
from edged.pipeline.inference import InferenceWorker

log = logging.getLogger(__name__)


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
                model, load_detectors(mc), threading.Condition(), mc.batch_timeout_ms / 1000
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
                worker.name, worker.detectors, worker.wake, worker.batch_timeout_s
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
                        model, load_detectors(mc), threading.Condition(), timeout_s
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
