"""The daemon's HTTP endpoints, from the config: ``/metrics`` and ``/healthz`` on the metrics
server, the web console (``debug_view``) on its own server or on the metrics server when
they share an address."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from edged.config import Config
from edged.config.events import MetricsConfig
from edged.config.http import HttpConfig, is_loopback
from edged.outputs.mqtt import MqttPublisher
from edged.outputs.output import Output
from edged.outputs.sink import EventSink
from edged.pipeline import Pipeline
from edged.web.config_save import ConfigFile, ConfigSaver
from edged.web.console import Console
from edged.web.debug_view import DebugView
from edged.web.health import health
from edged.web.metrics import PipelineCollector
from edged.web.recent import RecentEvents
from edged.web.server import Request, Route, WebServer

log = logging.getLogger(__name__)


def metrics_routes(
    pipeline: Pipeline,
    sink: EventSink,
    publisher: MqttPublisher | None,
    stale_s: float,
    outputs: Sequence[Output] = (),
) -> list[Route]:
    registry = CollectorRegistry()
    registry.register(PipelineCollector(pipeline, sink, publisher, outputs))

    def metrics(req: Request, path: str) -> bool:
        if path != "/metrics":
            return False
        req.send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
        return True

    def healthz(req: Request, path: str) -> bool:
        if path != "/healthz":
            return False
        ok, body = health(pipeline, stale_s)
        if publisher is not None:
            body["mqtt"] = "up" if publisher.connected else "down"
        body["backlog"] = sink.journal.backlog()
        if outputs:
            body["outputs"] = {
                o.name: {"state": "up" if o.connected else "down", "backlog": o.backlog()}
                for o in outputs
            }
        req.send(200 if ok else 503, "application/json", (json.dumps(body) + "\n").encode())
        return True

    return [metrics, healthz]


def _links(config: Config) -> dict[str, str]:
    """Where the console links to /metrics and /healthz: its own server, or the metrics one."""
    m, d = config.metrics, config.debug_view
    if m is None or d is None:
        return {}
    base = "" if (m.host, m.port) == (d.host, d.port) else f"http://{m.host}:{m.port}"
    return {"metrics": f"{base}/metrics", "healthz": f"{base}/healthz"}


def serve_http(
    config: Config,
    pipeline: Pipeline,
    sink: EventSink,
    publisher: MqttPublisher | None,
    config_file: ConfigFile | None = None,
    reload: Callable[[], None] | None = None,
    outputs: Sequence[Output] = (),
) -> list[WebServer]:
    """Start the configured servers (none when neither section is there). The console's
    editor saves into ``config_file`` and then calls ``reload`` (without both: it only shows
    the YAML to copy)."""
    routes: dict[tuple[str, int], list[Route]] = {}
    posts: dict[tuple[str, int], list[Route]] = {}
    pages: dict[tuple[str, int], list[str]] = {}
    # a shared address is served with the metrics section's access settings (the config
    # refuses two that differ)
    access: dict[tuple[str, int], HttpConfig] = {}
    if config.metrics is not None:
        m = config.metrics
        routes[(m.host, m.port)] = metrics_routes(pipeline, sink, publisher, m.stale_s, outputs)
        pages[(m.host, m.port)] = ["/metrics", "/healthz"]
        access[(m.host, m.port)] = m
    if config.debug_view is not None:
        d = config.debug_view
        view = DebugView(pipeline, d.jpeg_quality, d.stream_fps)
        recent = RecentEvents(config.device_id)
        sink.listeners.append(recent)
        saver = None
        if config_file is not None and reload is not None:
            saver = ConfigSaver(config_file, recent, reload)
        stale_s = (config.metrics or MetricsConfig()).stale_s
        console = Console(pipeline, recent, saver, _links(config), stale_s)
        routes.setdefault((d.host, d.port), []).extend([console.route, view.route])
        posts[(d.host, d.port)] = [console.post]
        pages.setdefault((d.host, d.port), []).append("/ (console)")
        access.setdefault((d.host, d.port), d)
    servers: list[WebServer] = []
    try:
        for (host, port), answer in routes.items():
            at = (host, port)
            servers.append(WebServer(host, port, answer, access[at], posts.get(at, ())))
    except OSError as exc:
        for server in servers:
            server.close()
        raise OSError(exc.errno, f"cannot serve HTTP on {host}:{port}: {exc.strerror}") from None
    for server, (host, port) in zip(servers, routes, strict=True):
        server.start()
        guard = access[(host, port)]
        how = "token" if guard.token else "basic auth" if guard.username else "no auth"
        log.info("HTTP on http://%s:%d (%s): %s", host, port, how, " ".join(pages[(host, port)]))
        if not guard.auth_required and not is_loopback(host):
            log.warning(
                "HTTP on %s:%d is open to every machine that can reach it, without auth"
                " (insecure: true): anyone there sees %s",
                host,
                port,
                " ".join(pages[(host, port)]),
            )
    return servers
