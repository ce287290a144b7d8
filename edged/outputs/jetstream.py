"""Publishes the journal to a NATS JetStream stream, at least once, deduplicated by the stream.

Every event goes to ``<subject_prefix>.<device>.<camera>.<kind>`` (``_`` for device-wide
events) with ``Nats-Msg-Id`` = its id: a replay after a lost ack or a restart is dropped by
the stream within its duplicate window, and a consumer that deduplicates on ``id`` (``edged
store`` does) never sees one twice beyond it. A row is acknowledged to the journal only once
the stream's PubAck says it is stored (on as many replicas as the stream has).

Threads: one thread runs an asyncio loop with nats-py; it alone reads this output's side of
the journal and acknowledges, so it needs no lock. Up to ``max_inflight`` publishes await
their acks at once; a failed one sends the cursor back to it, and the next round sends it
(and only what the stream has not acknowledged) again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StorageType
from nats.js.api import StreamConfig as JsStreamConfig

from edged.config.outputs import NatsConfig, NatsConnection
from edged.core.event import Event
from edged.outputs.delivery import Delivery
from edged.outputs.journal import Journal
from edged.outputs.mqtt import client_tls

log = logging.getLogger(__name__)

# a safety net only: appends and stop() wake the publisher
_IDLE_WAKE_S = 1.0
# how long stop() waits for the thread, twice at most (before and after cancelling)
_STOP_S = 1.0
# what a publish can fail with that a later retry may cure (the link, the stream's leader)
_RETRYABLE = (
    asyncio.TimeoutError,
    nats.errors.Error,
    nats.js.errors.Error,
    OSError,
)


# what a publish gets when no stream takes its subject (the stream was deleted)
_NO_STREAM = (nats.js.errors.NoStreamResponseError, nats.errors.NoRespondersError)


def subject(prefix: str, device: str, event: Event) -> str:
    """The subject of ``event``: per device, camera and kind."""
    return f"{prefix}.{device}.{event.camera or '_'}.{event.kind}"


class StreamError(RuntimeError):
    """The stream is missing (and may not be created) or does not take edged's subjects."""


class JetStreamPublisher(Delivery):
    """Drains this output's side of a ``Journal`` into the configured stream; ``connected``
    once connected with the stream checked."""

    name = "nats"

    def __init__(self, config: NatsConfig, device_id: str, journal: Journal) -> None:
        super().__init__(journal, log)
        self._config = config
        self._device_id = device_id
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reconnected: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stream_gone = False  # a publish found no stream for its subject
        self.duplicates = 0  # publishes the stream already had (a replay)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("JetStreamPublisher already started")
        log.info(
            "NATS JetStream: publishing to stream %s via %s (%d events pending)",
            self._config.stream.name,
            ", ".join(self._config.servers),
            self._journal.backlog(),
        )
        self._thread = threading.Thread(
            target=self._thread_main, name="edged-nats-publisher", daemon=True
        )
        self._thread.start()

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Deliver what is pending (up to ``drain_timeout`` s), then close the connection.
        Undelivered events stay in the journal."""
        if not self._begin_stop(drain_timeout):
            return
        assert self._thread is not None
        loop, reconnected, task = self._loop, self._reconnected, self._task
        if loop is not None and reconnected is not None:
            loop.call_soon_threadsafe(reconnected.set)
        self._thread.join(_STOP_S)
        if self._thread.is_alive() and loop is not None and task is not None:
            # publishes still waiting for their acks (a stalled server): given up, their
            # events stay in the journal, and the daemon keeps its time to stop
            loop.call_soon_threadsafe(task.cancel)
            self._thread.join(_STOP_S)
        backlog = self._journal.backlog()
        if backlog:
            log.warning("NATS publisher stopped with %d events not in the stream", backlog)

    def state(self) -> dict[str, Any]:
        """For ``stats`` and ``/healthz``."""
        return {
            "connected": self.connected,
            "error": self.error,
            "backlog": self._journal.backlog(),
            "published": self.published,
            "duplicates": self.duplicates,
        }

    # -- the publisher's thread -------------------------------------------------------------

    def _thread_main(self) -> None:
        # cancelled by stop() when publishes wait on a stalled server
        with contextlib.suppress(asyncio.CancelledError):
            asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._reconnected = asyncio.Event()
        while not self._stopping.is_set():
            nc = None
            try:
                nc = await nats.connect(**self._options())
                js = nc.jetstream(timeout=self._config.ack_timeout_s)
                await self._ensure_stream(js)
                self.error = None
                self._connected.set()
                await self._pump(nc, js)
            except StreamError as exc:
                self._problem(str(exc), logging.ERROR)
            except _RETRYABLE as exc:
                self._problem(f"NATS {', '.join(self._config.servers)}: {why(exc)}")
            except Exception:
                # a bug must not end delivery for good: the rows stay in the journal
                log.exception("NATS publisher failed; starting again")
            finally:
                self._lost()
                if nc is not None:
                    await close_quietly(nc)
            if not self._stopping.is_set():
                await self._pause(self._config.reconnect_wait_s)

    def _options(self) -> dict[str, Any]:
        return {
            **connect_options(self._config, f"edged-{self._device_id}", self._config.ack_timeout_s),
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
        }

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        s = self._config.stream
        subjects = [f"{self._config.subject_prefix}.>"]
        want = JsStreamConfig(
            name=s.name,
            subjects=subjects,
            max_age=s.max_age_s,
            max_bytes=s.max_bytes or -1,
            max_msgs=s.max_msgs or -1,
            num_replicas=s.replicas,
            storage=StorageType.FILE if s.storage == "file" else StorageType.MEMORY,
            duplicate_window=s.duplicate_window_s,
        )
        try:
            info = await js.stream_info(s.name)
        except nats.js.errors.NotFoundError:
            if not s.create:
                raise StreamError(
                    f"NATS stream {s.name} does not exist (outputs.nats.stream.create: false)"
                ) from None
            await js.add_stream(want)
            log.info("NATS: created stream %s for %s", s.name, subjects[0])
            return
        mine = f"{self._config.subject_prefix}.{self._device_id}.x.y"
        if not any(_matches(pattern, mine) for pattern in info.config.subjects or []):
            raise StreamError(
                f"NATS stream {s.name} takes {info.config.subjects}, not edged's"
                f" {self._config.subject_prefix}.{self._device_id}.>: set"
                " outputs.nats.stream.name or subject_prefix"
            )
        for field, have, wanted in _differences(info.config, want):
            log.warning(
                "NATS stream %s has %s=%s, the config says %s; left as it is (the stream may"
                " be shared by other devices: change it with the nats CLI)",
                s.name,
                field,
                have,
                wanted,
            )

    async def _pump(self, nc: NatsClient, js: JetStreamContext) -> None:
        assert self._reconnected is not None
        cursor = 0
        while not self._stopping.is_set():
            if not nc.is_connected:
                # nats-py reconnects by itself; meanwhile publishing only times out. The flag
                # is looked at again every second: a reconnect between the test and the
                # clear would otherwise be missed
                self._lost()
                while not (nc.is_connected or nc.is_closed or self._stopping.is_set()):
                    await self._pause(_IDLE_WAKE_S)
                if not nc.is_connected:
                    return
                self._connected.set()
                cursor = 0
                continue
            batch = self._journal.pending(cursor, self._config.max_inflight)
            if not batch:
                await asyncio.to_thread(self._journal.wait_appended, _IDLE_WAKE_S)
                continue
            cursor = await self._send(js, batch, cursor)
            if cursor < batch[-1].seq:
                # a publish failed: a stream that answers at once ("no responders" when it
                # was deleted) must not turn this into a busy loop
                await self._pause(self._config.reconnect_wait_s)
            if self._stream_gone:
                # nothing takes edged's subjects any more: make (or check) the stream again
                self._stream_gone = False
                await self._ensure_stream(js)

    async def _send(self, js: JetStreamContext, batch: list[Event], cursor: int) -> int:
        """Publish ``batch`` concurrently; acknowledge what the stream stored; return the
        cursor for the next round (before the first failure, if one failed)."""
        results = await asyncio.gather(*(self._publish(js, ev) for ev in batch))
        acked = [ev.seq for ev, ok in zip(batch, results, strict=True) if ok]
        if acked:
            self._acked(acked)
        failed = [ev for ev, ok in zip(batch, results, strict=True) if not ok]
        if not failed:
            self._last_problem = None
            return batch[-1].seq
        return failed[0].seq - 1

    async def _publish(self, js: JetStreamContext, ev: Event) -> bool:
        sent = time.monotonic()
        try:
            ack = await js.publish(
                subject(self._config.subject_prefix, self._device_id, ev),
                ev.to_json(self._device_id).encode(),
                headers={"Nats-Msg-Id": ev.id},
            )
        except _RETRYABLE as exc:
            if isinstance(
                exc, (nats.js.errors.NoStreamResponseError, nats.errors.NoRespondersError)
            ):
                self._stream_gone = True
            self._problem(f"NATS publish of seq={ev.seq} failed: {why(exc)}; retrying")
            return False
        self.duplicates += bool(ack.duplicate)
        self.ack_latency.observe(time.monotonic() - sent)
        return True

    async def _pause(self, seconds: float) -> None:
        assert self._reconnected is not None
        self._reconnected.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._reconnected.wait(), seconds)

    async def _on_error(self, exc: Exception) -> None:
        # nats-py retries a failing connect for ever and says why only here: a refused
        # login or certificate must not go unnoticed
        self._problem(f"NATS {', '.join(self._config.servers)}: {why(exc)}", _level(exc))

    async def _on_disconnected(self) -> None:
        if not self._stopping.is_set():
            log.warning(
                "NATS disconnected; reconnecting, %d events pending", self._journal.backlog()
            )
        self._lost()

    async def _on_reconnected(self) -> None:
        log.info("NATS reconnected")
        if self._reconnected is not None:
            self._reconnected.set()


def _level(exc: BaseException) -> int:
    """Errors that need the operator (credentials, certificates) are errors; the rest, such
    as a server that is not up yet, warnings."""
    # nats-py raises a plain Error for the server's "-ERR 'Authorization Violation'"
    refused = isinstance(exc, nats.errors.AuthorizationError) or "authorization" in str(exc).lower()
    return logging.ERROR if refused or isinstance(exc, ssl.SSLError) else logging.WARNING


def connect_options(c: NatsConnection, name: str, timeout_s: float) -> dict[str, Any]:
    """nats-py's ``connect`` options for ``c``: reconnecting for ever, credentials, TLS."""
    options: dict[str, Any] = {
        "servers": c.servers,
        "name": name,
        "connect_timeout": timeout_s,
        "allow_reconnect": True,
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": c.reconnect_wait_s,
    }
    if c.user is not None and c.password is not None:
        options |= {"user": c.user, "password": c.password.get_secret_value()}
    if c.token is not None:
        options["token"] = c.token.get_secret_value()
    if c.creds is not None:
        options["user_credentials"] = str(c.creds)
    if c.tls is not None:
        options["tls"] = client_tls(c.tls)
    return options


async def close_quietly(nc: NatsClient) -> None:
    """Close a connection that may be broken already: what closing it says then (a reset, a
    timeout) is no news, and must not end the loop that called it."""
    if nc.is_closed:
        return
    try:
        await nc.close()
    except _RETRYABLE as exc:
        log.debug("NATS: closing a broken connection: %s", why(exc))


def why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _matches(pattern: str, subject_: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` the rest."""
    want, have = pattern.split("."), subject_.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def _differences(have: JsStreamConfig, want: JsStreamConfig) -> list[tuple[str, Any, Any]]:
    fields = ("max_age", "max_bytes", "max_msgs", "num_replicas", "storage", "duplicate_window")
    out = []
    for field in fields:
        a, b = getattr(have, field), getattr(want, field)
        if isinstance(a, float) or isinstance(b, float):
            if abs((a or 0) - (b or 0)) > 1e-3:
                out.append((field, a, b))
        elif a != b and not (a in (None, -1, 0) and b in (None, -1, 0)):
            out.append((field, a, b))
    return out
