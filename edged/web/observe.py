"""The daemon's HTTP endpoints, from the config: ``/metrics`` and ``/healthz`` on the metrics
server, the debug view on its own server or on the metrics server when they share an
address."""

from __future__ import annotations

import json
import logging

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from edged.config import Config
from edged.config.http import HttpConfig, is_loopback
from edged.outputs.mqtt import MqttPublisher
from edged.outputs.sink import EventSink
from edged.pipeline import Pipeline
from edged.web.debug_view import DebugView
from edged.web.health import health
from edged.web.metrics import PipelineCollector
from edged.web.server import Request, Route, WebServer

log = logging.getLogger(__name__)


def metrics_routes(
    pipeline: Pipeline, sink: EventSink, publisher: MqttPublisher | None, stale_s: float
) -> list[Route]:
    registry = CollectorRegistry()
    registry.register(PipelineCollector(pipeline, sink, publisher))

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
        req.send(200 if ok else 503, "application/json", (json.dumps(body) + "\n").encode())
        return True

    return [metrics, healthz]


def serve_http(
    config: Config, pipeline: Pipeline, sink: EventSink, publisher: MqttPublisher | None
) -> list[WebServer]:
    """Start the configured servers (none when neither section is there)."""
    routes: dict[tuple[str, int], list[Route]] = {}
    pages: dict[tuple[str, int], list[str]] = {}
    # a shared address is served with the metrics section's access settings (the config
    # refuses two that differ)
    access: dict[tuple[str, int], HttpConfig] = {}
    if config.metrics is not None:
        m = config.metrics
        routes[(m.host, m.port)] = metrics_routes(pipeline, sink, publisher, m.stale_s)
        pages[(m.host, m.port)] = ["/metrics", "/healthz"]
        access[(m.host, m.port)] = m
    if config.debug_view is not None:
        d = config.debug_view
        view = DebugView(pipeline, d.jpeg_quality, d.stream_fps)
        routes.setdefault((d.host, d.port), []).append(view.route)
        pages.setdefault((d.host, d.port), []).append("/cameras/")
        access.setdefault((d.host, d.port), d)
    servers: list[WebServer] = []
    try:
        for (host, port), answer in routes.items():
            servers.append(WebServer(host, port, answer, access[(host, port)]))
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
