"""The HTTP endpoints (metrics, debug view): each is bound as the daemon binds it, all at
once (two sections on one port share a server), then released."""

from __future__ import annotations

import errno

from edged.config import Config
from edged.config.root import Loc
from edged.web.server import WebServer


def endpoints(config: Config) -> dict[tuple[str, int], str]:
    """Each (host, port) served, with the first section that asks for it."""
    out: dict[tuple[str, int], str] = {}
    for section in ("metrics", "debug_view"):
        value = getattr(config, section)
        if value is not None:
            out.setdefault((value.host, value.port), section)
    return out


def port_problems(config: Config, serving: Config | None = None) -> list[tuple[Loc, str]]:
    """``serving``: the config of the daemon running now (a reload), whose own endpoints are
    taken by itself and are not applied by a reload anyway."""
    held = set() if serving is None else set(endpoints(serving))
    problems: list[tuple[Loc, str]] = []
    servers: list[WebServer] = []
    try:
        for (host, port), section in endpoints(config).items():
            if (host, port) in held:
                continue
            try:
                servers.append(WebServer(host, port, []))
            except OSError as exc:
                # in use or not allowed is the port's fault; an address not on this machine
                # (or not a name at all) is the host's
                field = "port" if exc.errno in (errno.EADDRINUSE, errno.EACCES) else "host"
                why = exc.strerror or str(exc)
                problems.append(((section, field), f"cannot serve HTTP on {host}:{port}: {why}"))
    finally:
        for server in servers:
            server.server_close()
    return problems
