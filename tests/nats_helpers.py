"""NATS servers with JetStream that a test starts on free ports (one, or a 3-node cluster)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.mqtt_helpers import free_port
from tests.waiting import poll


def find_nats_server() -> str:
    """Path of nats-server; fails the test (never skips) when it is missing: the Makefile
    installs Debian's nats-server package."""
    for candidate in (shutil.which("nats-server"), "/usr/sbin/nats-server", "/usr/bin/nats-server"):
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("nats-server is not installed: run make setup (Debian package nats-server)")


class NatsServer:
    """One nats-server process with JetStream; ``stop``/``start`` keep its port and store,
    so a restart finds its streams again."""

    def __init__(
        self,
        folder: Path,
        name: str = "n1",
        cluster_port: int | None = None,
        routes: Sequence[int] = (),
        tls: Sequence[str] = (),
    ) -> None:
        """``tls``: more nats-server flags: TLS (``--tlscert`` …) or a login (``--user``)."""
        self.binary = find_nats_server()
        self.folder = folder
        self.name = name
        self.port = free_port()
        self.monitor = free_port()
        self.cluster_port = cluster_port
        self.routes = list(routes)
        self.tls = list(tls)
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            self.binary,
            "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor),
            "-js", "-sd", str(self.folder / "store"), "-n", self.name,
            "-l", str(self.folder / "server.log"), *self.tls,
        ]  # fmt: skip
        if self.cluster_port is not None:
            routes = ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)
            cmd += [
                "--cluster_name",
                "edged-test",
                "--cluster",
                f"nats://127.0.0.1:{self.cluster_port}",
            ]
            cmd += ["--routes", routes]
        return cmd

    def start(self, wait: bool = True) -> None:
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if wait:
            self.wait_ready()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/healthz", timeout=1) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout: float = 20.0) -> None:
        def ready() -> bool:
            """nats-server answers /healthz (JetStream up)"""
            assert self.proc is not None and self.proc.poll() is None, self.log()
            return self.healthy()

        poll(ready, timeout)

    def log(self) -> str:
        path = self.folder / "server.log"
        return path.read_text()[-3000:] if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


def cluster(folder: Path, size: int = 3) -> list[NatsServer]:
    """``size`` servers routed to each other, started (JetStream needs a quorum to answer)."""
    ports = [free_port() for _ in range(size)]
    servers = [
        NatsServer(folder / f"n{i + 1}", f"n{i + 1}", ports[i], [p for p in ports if p != ports[i]])
        for i in range(size)
    ]
    for server in servers:
        server.start(wait=False)
    for server in servers:
        server.wait_ready(60)
    return servers


def stream_messages(
    url: str | list[str], stream: str, subject: str = "edged.>", timeout: float = 30.0
) -> list[Any]:
    """Every message of ``stream`` (as nats-py ``Msg``), read with an ephemeral consumer;
    retried while a cluster that lost a node elects new leaders (requests time out)."""
    import nats
    import nats.errors

    async def read() -> list[Any]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            out: list[Any] = []
            sub = await js.pull_subscribe(subject, stream=stream)
            total = (await sub.consumer_info()).num_pending
            while len(out) < total:
                out += await sub.fetch(min(500, total - len(out)), timeout=5)
            return out
        finally:
            await nc.close()

    deadline = time.monotonic() + timeout
    while True:
        try:
            return asyncio.run(read())
        except nats.errors.TimeoutError:
            if time.monotonic() > deadline:
                raise
