"""Lifecycle: start the pipeline and publisher, run until the sources end or a signal, drain."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TextIO

from edged.config import Config
from edged.core import topics
from edged.core.event import Event
from edged.core.latency import stage_summary
from edged.outputs.homeassistant import discovery
from edged.outputs.journal import Journal
from edged.outputs.mqtt import MqttPublisher
from edged.outputs.sink import EventSink, Listener
from edged.pipeline import Pipeline
from edged.service.reload import reload as reload_config
from edged.service.reporter import ServiceReporter
from edged.service.stats import Rates
from edged.web.observe import serve_http

log = logging.getLogger(__name__)

# SIGTERM must end the daemon within 5 s in every state: 1.5 s for the pipeline, 2.5 s for
# the broker to take the backlog, the rest for the offline message
PIPELINE_STOP_S = 1.5
DRAIN_S = 2.5
# a camera restarted by a reload starts again once the old one has stopped, or after this
RESTART_STOP_S = 3.0
LOG_STATUS_EVERY_S = 10.0


def json_printer(device: str, out: TextIO) -> Listener:
    lock = threading.Lock()

    def write(events: list[Event]) -> None:
        with lock:
            for event in events:
                out.write(event.to_json(device) + "\n")
            out.flush()

    return write


class StatusLine:
    """A one-line live status on a terminal; a plain log line now and then otherwise."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last_log = 0.0
        self._last: dict[str, tuple[float, int]] = {}

    def show(self, pipeline: Pipeline, sink: EventSink, publisher: MqttPublisher | None) -> str:
        now = time.monotonic()
        parts = []
        for name, st in pipeline.stats().items():
            t0, n0 = self._last.get(name, (now, st.processed))
            fps = (st.processed - n0) / (now - t0) if now > t0 else 0.0
            self._last[name] = (now, st.processed)
            parts.append(
                f"{name} {st.state} {fps:4.1f} fps {st.tracks} tracks {st.dropped} dropped"
            )
        broker = (
            "" if publisher is None else (" | mqtt " + ("up" if publisher.connected else "down"))
        )
        line = (
            " | ".join(parts) + f" | events {sink.total} | backlog {sink.journal.backlog()}{broker}"
        )
        if self.tty:
            self.out.write("\r\x1b[2K" + line)
            self.out.flush()
        elif now - self._last_log >= LOG_STATUS_EVERY_S:
            self._last_log = now
            log.info("%s", line)
        return line

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def stats_event(
    rates: Rates, pipeline: Pipeline, sink: EventSink, publisher: MqttPublisher | None = None
) -> Event:
    """The ``stats`` message: what the Prometheus endpoint says, summed up."""
    cameras = rates.sample(pipeline.stats())
    for name, cam in pipeline.cameras.items():
        if name in cameras:
            cameras[name]["latency"] = stage_summary(cam.stages)
    payload = {
        "cameras": cameras,
        "events": dict(sink.counts),
        "backlog": sink.journal.backlog(),
        "dropped_events": sink.journal.dropped,
        "refused_events": sink.journal.refused,
    }
    if publisher is not None:
        payload["publish"] = publisher.ack_latency.summary()
    return Event(kind="stats", camera=None, topic=topics.STATS, payload=payload)


def run(
    config: Config,
    print_events: bool = False,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
    install_signals: bool = True,
    reload: Callable[[], Config] | None = None,
) -> int:
    """Run until every source has ended or SIGINT/SIGTERM; SIGHUP applies ``reload()``'s
    config (see ``edged.service.reload``). Returns the exit code."""
    stop = threading.Event()
    hup = threading.Event()
    wake = threading.Event()
    if install_signals:
        _on_signals(stop, hup, wake)
    reporter = ServiceReporter(config.service.ready_timeout_s, time.monotonic())
    journal = Journal(config.journal)
    listeners = [json_printer(config.device_id, stdout)] if print_events else []
    sink = EventSink(journal, listeners)
    publisher = None
    if config.mqtt is not None:
        announce = [] if config.homeassistant is None else discovery(config)
        publisher = MqttPublisher(config.mqtt, config.device_id, journal, announce)
    if publisher is not None:
        sink.image_listeners.append(publisher.publish_image)
    pipeline = Pipeline(config, sink)
    status = StatusLine(stderr)
    servers = serve_http(config, pipeline, sink, publisher)
    if publisher is not None:
        publisher.start()
    pipeline.start()
    log.info("running %d camera(s) on %d model(s)", len(pipeline.cameras), len(pipeline.workers))
    rates = Rates()
    next_stats = time.monotonic() + config.stats_interval_s
    try:
        while not stop.is_set() and not pipeline.finished:
            line = status.show(pipeline, sink, publisher)
            reporter.tick(time.monotonic(), pipeline.progress(), line)
            if hup.is_set():
                hup.clear()
                config = _reload(config, reload, pipeline, sink, reporter)
            if time.monotonic() >= next_stats:
                next_stats += config.stats_interval_s
                sink.emit([stats_event(rates, pipeline, sink, publisher)])
            wake.wait(reporter.tick_s)
            wake.clear()
    finally:
        reporter.stopping()
        status.show(pipeline, sink, publisher)
        status.close()
        if not pipeline.stop(PIPELINE_STOP_S):
            log.warning("some threads did not stop in time")
        for server in servers:
            server.close()
        if publisher is not None:
            publisher.stop(drain_timeout=DRAIN_S)
        backlog = journal.backlog()
        if publisher is not None and backlog:
            log.warning(
                "%d event(s) not yet delivered; they stay in %s for the next start",
                backlog,
                config.journal.path,
            )
        journal.close()
        reporter.close()
    failed = [
        name
        for name, cam in pipeline.cameras.items()
        if cam.failed is not None or cam.source.failed is not None
    ]
    if failed:
        log.error("camera(s) failed: %s", ", ".join(failed))
    return 1 if failed else 0


def _reload(
    config: Config,
    load: Callable[[], Config] | None,
    pipeline: Pipeline,
    sink: EventSink,
    reporter: ServiceReporter,
) -> Config:
    if load is None:
        log.warning("SIGHUP: this run has no config file to reload")
        return config
    reporter.reloading()
    config, event = reload_config(config, load, pipeline, RESTART_STOP_S)
    reporter.ready_timeout_s = config.service.ready_timeout_s
    sink.emit([event])
    reporter.reloaded(
        "rejected, running on the previous config"
        if event.payload["status"] == "rejected"
        else "ok"
    )
    return config


def _on_signals(stop: threading.Event, hup: threading.Event, wake: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if signum == signal.SIGHUP:
            log.info("received SIGHUP, reloading the config")
            hup.set()
        else:
            log.info("received %s, stopping", name)
            stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGHUP, handler)
