"""Lifecycle: start the pipeline and publisher, run until the sources end or a signal, drain."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from edged.config import Config
from edged.core import topics
from edged.core.event import Event
from edged.core.latency import stage_summary
from edged.outputs.homeassistant import discovery
from edged.outputs.jetstream import JetStreamPublisher
from edged.outputs.journal import Journal
from edged.outputs.mqtt import MqttPublisher
from edged.outputs.output import Output
from edged.outputs.redis_streams import RedisStreamPublisher
from edged.outputs.sink import EventSink
from edged.pipeline import Pipeline
from edged.service.reload import reload as reload_config
from edged.service.reporter import ServiceReporter
from edged.service.signals import Signals
from edged.service.stats import Rates
from edged.service.terminal import area_for
from edged.web.config_save import ConfigFile
from edged.web.observe import serve_http

log = logging.getLogger(__name__)

# SIGTERM must end the daemon within 5 s in every state: 1.5 s for the pipeline, 2.5 s for
# the broker to take the backlog, the rest for the offline message
PIPELINE_STOP_S = 1.5
DRAIN_S = 2.5
# a camera restarted by a reload starts again once the old one has stopped, or after this
RESTART_STOP_S = 3.0
LOG_STATUS_EVERY_S = 10.0


class EventPrinter:
    """``--print-events``: one JSON line per event. Each line goes out whole, and nothing is
    written once ``close`` has run, so a consumer on a pipe never reads half a line when the
    daemon stops (analytics threads may still be emitting while it exits). A closed output
    (the reader went away) sets ``broken`` and calls ``on_broken``."""

    def __init__(self, device: str, out: TextIO, on_broken: Callable[[], None]) -> None:
        self.device = device
        self.out = out
        self.on_broken = on_broken
        self.broken = False
        self._lock = threading.Lock()
        self._closed = False

    def __call__(self, events: list[Event]) -> None:
        text = "".join(event.to_json(self.device) + "\n" for event in events)
        with self._lock:
            if self._closed or not text:
                return
            try:
                self.out.write(text)
                self.out.flush()
            except BrokenPipeError:
                # the reader went away (edged run … --print-events | head): on an analytics
                # thread, so the daemon is told to stop rather than lose the camera
                self._closed = self.broken = True
                log.info("the events' output was closed, stopping")
                self.on_broken()

    def close(self, timeout: float = 1.0) -> None:
        """No more lines; waits up to ``timeout`` for a write in progress (a full pipe)."""
        if self._lock.acquire(timeout=timeout):
            self._closed = True
            self._lock.release()
        else:
            self._closed = True


class StatusLine:
    """A one-line live status on a terminal; a plain log line now and then otherwise."""

    def __init__(self, out: TextIO) -> None:
        # shared with the log handler of the same terminal (edged.service.logs.setup)
        self.area = area_for(out) if out.isatty() else None
        self._last_log = 0.0
        self._last: dict[str, tuple[float, int]] = {}

    def show(self, pipeline: Pipeline, sink: EventSink, outputs: Sequence[Output]) -> str:
        now = time.monotonic()
        parts = []
        for name, st in pipeline.stats().items():
            t0, n0 = self._last.get(name, (now, st.processed))
            fps = (st.processed - n0) / (now - t0) if now > t0 else 0.0
            self._last[name] = (now, st.processed)
            parts.append(
                f"{name} {st.state} {fps:4.1f} fps {st.tracks} tracks {st.dropped} dropped"
            )
        links = "".join(f" | {o.name} " + ("up" if o.connected else "down") for o in outputs)
        line = (
            " | ".join(parts) + f" | events {sink.total} | backlog {sink.journal.backlog()}{links}"
        )
        if self.area is not None:
            self.area.show(line)
        elif now - self._last_log >= LOG_STATUS_EVERY_S:
            self._last_log = now
            log.info("%s", line)
        return line

    def close(self) -> None:
        if self.area is not None:
            self.area.close()


def stats_event(
    rates: Rates,
    pipeline: Pipeline,
    sink: EventSink,
    publisher: MqttPublisher | None = None,
    outputs: Sequence[Output] = (),
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
        "journal": sink.journal.state(),
    }
    if publisher is not None:
        payload["publish"] = publisher.ack_latency.summary()
    if outputs:
        payload["outputs"] = {
            o.name: {
                "connected": o.connected,
                "backlog": o.backlog(),
                "ack": o.ack_latency.summary(),
            }
            for o in outputs
        }
    return Event(kind="stats", camera=None, topic=topics.STATS, payload=payload)


def run(
    config: Config,
    print_events: bool = False,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
    signals: Signals | None = None,
    reload: Callable[[], Config] | None = None,
    config_file: ConfigFile | None = None,
) -> int:
    """Run until every source has ended or SIGINT/SIGTERM; SIGHUP applies ``reload()``'s
    config (see ``edged.service.reload``). ``signals``: handlers installed by the caller
    (before the config was loaded); None installs them now. ``config_file``: where the
    console's editor saves (its reload is this run's SIGHUP). Returns the exit code."""
    signals = signals or Signals().install()
    if signals.stop.is_set():
        log.info("stopped before the cameras started")
        return 0
    # a SIGHUP while the config was being loaded and checked asks for what was just loaded
    signals.hup.clear()
    stop, hup, wake = signals.stop, signals.hup, signals.wake
    reporter = ServiceReporter(config.service.ready_timeout_s, time.monotonic())
    names = (["mqtt"] if config.mqtt is not None else []) + config.outputs.names()
    journal = Journal(config.journal, names, claim=True)
    printer = EventPrinter(config.device_id, stdout, signals.request_stop) if print_events else None
    sink = EventSink(journal, [printer] if printer is not None else [])
    publisher = None
    if config.mqtt is not None:
        announce = [] if config.homeassistant is None else discovery(config)
        publisher = MqttPublisher(config.mqtt, config.device_id, journal, announce)
        sink.image_listeners.append(publisher.publish_image)
    outputs: list[Output] = [] if publisher is None else [publisher]
    if config.outputs.nats is not None:
        outputs.append(JetStreamPublisher(config.outputs.nats, config.device_id, journal))
    if config.outputs.redis is not None:
        outputs.append(RedisStreamPublisher(config.outputs.redis, config.device_id, journal))
    pipeline = Pipeline(config, sink)
    status = StatusLine(stderr)
    servers = serve_http(
        config, pipeline, sink, publisher, config_file, signals.request_reload, outputs
    )
    for output in outputs:
        output.start()
    pipeline.start()
    log.info("running %d camera(s) on %d model(s)", len(pipeline.cameras), len(pipeline.workers))
    rates = Rates()
    next_stats = time.monotonic() + config.stats_interval_s
    fatal: str | None = None
    try:
        while not stop.is_set() and not pipeline.finished:
            fatal = pipeline.fatal
            if fatal is not None:
                log.error("%s; stopping, so that the service manager starts edged again", fatal)
                break
            line = status.show(pipeline, sink, outputs)
            reporter.tick(time.monotonic(), pipeline.progress(), line)
            if hup.is_set():
                hup.clear()
                config = _reload(config, reload, pipeline, sink, reporter, publisher)
            if time.monotonic() >= next_stats:
                next_stats += config.stats_interval_s
                sink.emit([stats_event(rates, pipeline, sink, publisher, outputs)])
            wake.wait(reporter.tick_s)
            wake.clear()
    finally:
        reporter.stopping()
        status.show(pipeline, sink, outputs)
        status.close()
        if not pipeline.stop(PIPELINE_STOP_S):
            log.warning("some threads did not stop in time")
        if printer is not None:
            printer.close()
        for server in servers:
            server.close()
        stop_outputs(outputs, DRAIN_S)
        backlog = journal.backlog()
        if outputs and backlog:
            log.warning(
                "%d event(s) not yet delivered; they stay in %s for the next start",
                backlog,
                config.journal.path,
            )
        journal.close()
        reporter.close()
    if printer is not None and printer.broken:
        # stopped in order, now ended as a closed pipe ends every subcommand
        raise BrokenPipeError("the events' output was closed")
    return exit_code(config, pipeline, fatal or pipeline.fatal, stopped=stop.is_set())


def stop_outputs(outputs: Sequence[Output], drain_s: float) -> None:
    """Let every output take the backlog in the same ``drain_s`` (they drain side by side),
    then stop them."""
    deadline = time.monotonic() + drain_s
    for output in outputs:
        if output.connected:
            output.wait_drained(max(0.0, deadline - time.monotonic()))
    for output in outputs:
        output.stop(drain_timeout=0.0)


def exit_code(config: Config, pipeline: Pipeline, fatal: str | None, stopped: bool) -> int:
    """1 when something broke: a model given up, a camera that failed, or (when no signal
    stopped the daemon) a camera of the config that is not running because it could not
    start — edged never ends with 0 having quietly lost a camera."""
    failed = {
        name: cam.failed or cam.source.failed
        for name, cam in pipeline.cameras.items()
        if cam.failed is not None or cam.source.failed is not None
    }
    for name, why in failed.items():
        log.error("camera %s failed: %s", name, why)
    missing = [
        name for name, cam in config.cameras.items() if cam.enabled and name not in pipeline.cameras
    ]
    if missing and not stopped:
        log.error("camera(s) %s of the config never ran (they could not start)", ", ".join(missing))
    return 1 if fatal is not None or failed or (missing and not stopped) else 0


def _reload(
    config: Config,
    load: Callable[[], Config] | None,
    pipeline: Pipeline,
    sink: EventSink,
    reporter: ServiceReporter,
    publisher: MqttPublisher | None,
) -> Config:
    if load is None:
        log.warning("SIGHUP: this run has no config file to reload")
        return config
    reporter.reloading()
    config, event = reload_config(config, load, pipeline, RESTART_STOP_S)
    reporter.ready_timeout_s = config.service.ready_timeout_s
    if publisher is not None and config.homeassistant is not None:
        # homeassistant itself needs a restart, but its entities follow the cameras, zones,
        # lines and alerts, which reload: the ones gone are cleared, the new ones announced
        publisher.replace_announce(discovery(config))
    sink.emit([event])
    reporter.reloaded(
        "rejected, running on the previous config"
        if event.payload["status"] == "rejected"
        else "ok"
    )
    return config
