"""Decode threads yield the cores to inference; analytics does not (it feeds on inference)."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from edged.config import load
from edged.core import priority
from edged.outputs.journal import Journal
from edged.outputs.sink import EventSink
from edged.pipeline import Pipeline
from tests.paths import DEMO


def nice_of(thread: threading.Thread) -> int:
    assert thread.native_id is not None
    return os.getpriority(os.PRIO_PROCESS, thread.native_id)


def test_background_lowers_only_the_calling_thread() -> None:
    lowered: list[int] = []

    def work() -> None:
        priority.background()
        lowered.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(10)
    assert lowered == [max(os.getpriority(os.PRIO_PROCESS, 0), priority.BACKGROUND_NICE)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < priority.BACKGROUND_NICE


def test_source_threads_run_below_inference_and_analytics(tmp_path: Path) -> None:
    config = load(
        DEMO,
        overrides=[
            "mqtt=null",
            f"journal.path={tmp_path / 'events.db'}",
            "cameras.walkway.source.realtime=true",
        ],
    )
    journal = Journal(config.journal)
    pipeline = Pipeline(config, EventSink(journal))
    pipeline.start()
    try:
        threads = {t.name: t for t in threading.enumerate()}
        # one inference thread per engine run in flight (streams): the first lane stands for all
        lanes = sorted(n for n in threads if n.startswith("infer-coco"))
        assert lanes, sorted(threads)
        threads["infer-coco"] = threads[lanes[0]]
        names = ("source-walkway", "analytics-walkway", "infer-coco")
        background = names[:1]
        deadline = time.monotonic() + 10
        tick = threading.Event()
        # the threads lower themselves as they start: wait for that, with a deadline
        while True:
            nice = {name: nice_of(threads[name]) for name in names}
            done = all(nice[n] >= priority.BACKGROUND_NICE for n in background)
            if done or time.monotonic() > deadline:
                break
            tick.wait(0.05)
        assert all(nice[n] >= priority.BACKGROUND_NICE for n in background), nice
        assert nice["infer-coco"] < priority.BACKGROUND_NICE, nice
        assert nice["analytics-walkway"] < priority.BACKGROUND_NICE, nice
    finally:
        pipeline.stop(5)
        journal.close()
