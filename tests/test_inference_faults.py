"""An engine that fails at run time (a GPU error, a model that breaks on some input): the
worker retries on the next frames, and gives the model up — and the daemon exits non-zero —
only when the failures go on. The fault is injected at the engine's ``run``, the edge of the
hardware: the real model runs on either side of it."""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from edged.config import Config, load
from edged.config.events import JournalConfig
from edged.engines.base import Engine
from edged.models.detector import load_detectors
from edged.outputs.journal import Journal
from edged.outputs.sink import EventSink
from edged.pipeline import Pipeline, inference, wiring
from edged.pipeline.inference import MAX_FAILURES
from edged.service.daemon import run
from edged.service.signals import Signals
from tests.paths import CLIP, MODEL


class FaultyEngine:
    """The real engine, except that the runs ``fails(n)`` says (n counts from 1) raise."""

    def __init__(self, engine: Engine, fails: Callable[[int], bool]) -> None:
        self.engine = engine
        self.fails = fails
        self.runs = 0
        self.provider = engine.provider
        self.input_names = engine.input_names
        self.output_names = engine.output_names
        self.max_batch = engine.max_batch

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.runs += 1
        if self.fails(self.runs):
            raise RuntimeError(f"CUDA error: an illegal memory access (run {self.runs})")
        return self.engine.run(feeds)


def one_camera(tmp_path: Path, loop: bool = True) -> Config:
    data: dict[str, Any] = {
        "device_id": "box",
        "journal": {"path": str(tmp_path / "events.db")},
        # one engine run at a time: the fault is injected into that one session
        "models": {"coco": {"path": str(MODEL), "backend": "cpu", "streams": 1}},
        "cameras": {"a": {"source": {"uri": str(CLIP), "loop": loop}, "detect": {"model": "coco"}}},
    }
    path = tmp_path / "edged.yaml"
    path.write_text(yaml.safe_dump(data))
    return load(path)


def wait(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)  # polling a counter another thread moves: no event to wait on


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inference, "RETRY_FIRST_S", 0.01)


def test_a_few_failed_runs_are_retried_and_the_camera_goes_on(tmp_path: Path) -> None:
    journal = Journal(JournalConfig(path=tmp_path / "events.db"))
    pipeline = Pipeline(one_camera(tmp_path), EventSink(journal))
    worker = pipeline.workers["coco"]
    faulty = FaultyEngine(worker.detector.engine, lambda n: n in (3, 4, 5))
    worker.detector.engine = faulty
    pipeline.start()
    try:
        cam = pipeline.cameras["a"]
        wait(lambda: cam.processed >= 8)
        assert worker.failed_runs == 3 and pipeline.fatal is None
        assert cam.failed is None and cam.source.alive
    finally:
        assert pipeline.stop(5)
        journal.close()


def test_failures_that_go_on_give_the_model_up_and_stop_its_cameras(tmp_path: Path) -> None:
    journal = Journal(JournalConfig(path=tmp_path / "events.db"))
    pipeline = Pipeline(one_camera(tmp_path), EventSink(journal))
    worker = pipeline.workers["coco"]
    worker.detector.engine = FaultyEngine(worker.detector.engine, lambda n: n > 2)
    pipeline.start()
    try:
        wait(lambda: pipeline.fatal is not None)
        assert worker.failed_runs == MAX_FAILURES
        assert pipeline.fatal is not None and "illegal memory access" in pipeline.fatal
        cam = pipeline.cameras["a"]
        assert cam.failed is not None and "model coco failed" in str(cam.failed)
        assert pipeline.wait(10)  # its camera ended
    finally:
        assert pipeline.stop(5)
        journal.close()


def test_the_daemon_exits_non_zero_when_a_model_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def faulty_detectors(config: Any) -> Any:
        detectors = load_detectors(config)
        for detector in detectors:
            detector.engine = FaultyEngine(detector.engine, lambda n: n > 1)
        return detectors

    monkeypatch.setattr(wiring, "load_detectors", faulty_detectors)
    caplog.set_level(logging.INFO)
    signals = Signals()  # not installed: the test runner keeps its own handlers
    code: list[int] = []
    daemon = threading.Thread(
        target=lambda: code.append(run(one_camera(tmp_path), signals=signals, stderr=io.StringIO()))
    )
    daemon.start()
    daemon.join(60)
    if daemon.is_alive():
        signals.stop.set()
        signals.wake.set()
        daemon.join(10)
        pytest.fail("the daemon kept running with its only model given up")
    assert code == [1]
    assert "giving it up" in caplog.text and "camera a failed: model coco failed" in caplog.text
