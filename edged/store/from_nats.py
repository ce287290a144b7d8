"""Events from a JetStream durable pull consumer: fetch a batch, commit it, then ack it.

Every ``edged store`` with the same durable name pulls from the one consumer, so the stream's
events are shared among them. A message is acknowledged only after its transaction has
committed; one that a killed worker had fetched is delivered again after ``ack_wait_s`` (to
whichever worker pulls next), and the database ignores the ids it already has.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from edged.config.store import StoreNatsSource
from edged.outputs.jetstream import close_quietly, connect_options, why
from edged.store.database import BadEvent, parse
from edged.store.session import Database, Stopped

log = logging.getLogger(__name__)

_FETCH_WAIT_S = 1.0
_MORE_WAIT_S = 0.01
# nats-py raises either, by where in a fetch the time ran out
_FETCH_TIMEOUT = (asyncio.TimeoutError, nats.errors.TimeoutError)
_RETRYABLE = (asyncio.TimeoutError, nats.errors.Error, nats.js.errors.Error, OSError)


class NatsSource:
    def __init__(self, config: StoreNatsSource, db: Database, stop: threading.Event) -> None:
        self._config = config
        self._db = db
        self._stop = stop
        self.connected = threading.Event()
        self.bad = 0  # messages that are not events, terminated (never redelivered)
        self._last_problem: str | None = None
        self._link_lost = False

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        c = self._config
        while not self._stop.is_set():
            nc = None
            try:
                nc = await self._connect()
                js = nc.jetstream()
                sub = await js.pull_subscribe(
                    c.subject,
                    durable=c.durable,
                    stream=c.stream,
                    config=ConsumerConfig(
                        ack_policy=AckPolicy.EXPLICIT,
                        deliver_policy=DeliverPolicy.ALL,
                        ack_wait=c.ack_wait_s,
                        max_ack_pending=max(1000, 4 * c.batch),
                    ),
                )
                log.info("store: consuming %s from stream %s as %s", c.subject, c.stream, c.durable)
                self.connected.set()
                self._last_problem = None
                await self._consume(nc, sub)
            except Stopped:
                return
            except _RETRYABLE as exc:
                self._problem(f"NATS {', '.join(c.servers)}: {why(exc)}")
            except Exception:
                # a bug must not end the worker: what it had not acknowledged comes again
                log.exception("store: NATS consumer failed; starting again")
            finally:
                self.connected.clear()
                if nc is not None:
                    await close_quietly(nc)
            await asyncio.to_thread(self._stop.wait, c.reconnect_wait_s)

    async def _connect(self) -> Any:
        """nats-py retries a connect that fails for ever: it is watched, so that a stop
        while the server is away ends the worker."""
        c = self._config
        connecting = asyncio.ensure_future(
            nats.connect(
                **connect_options(c, f"edged-store-{c.durable}", 5.0),
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
            )
        )
        while not connecting.done():
            await asyncio.wait({connecting}, timeout=_FETCH_WAIT_S)
            if self._stop.is_set() and not connecting.done():
                connecting.cancel()
                raise Stopped("stopping")
        return connecting.result()

    async def _consume(self, nc: Any, sub: Any) -> None:
        self._link_lost = False
        while not self._stop.is_set():
            if self._link_lost:
                # nats-py reconnects by itself, but a pull subscription may not come back
                # with it (nats.py #504: fetches then time out for ever): start afresh
                raise nats.errors.ConnectionReconnectingError
            try:
                # one, as soon as it is there: a fetch of more waits until it has them all
                # or its time is up, which would hold a lone event back that long
                msgs = await sub.fetch(1, timeout=_FETCH_WAIT_S)
            except _FETCH_TIMEOUT:
                continue  # nothing new
            if self._config.batch > 1:
                # and what else is waiting, without waiting for more
                with contextlib.suppress(*_FETCH_TIMEOUT):
                    msgs += await sub.fetch(self._config.batch - 1, timeout=_MORE_WAIT_S)
            events, good = [], []
            for msg in msgs:
                try:
                    events.append(parse(msg.data))
                except BadEvent as exc:
                    self.bad += 1
                    log.error(
                        "store: message %s on %s is not an edged event (%s); dropped",
                        msg.metadata.sequence.stream,
                        msg.subject,
                        exc,
                    )
                    await msg.term()
                    continue
                good.append(msg)
            try:
                await asyncio.to_thread(self._db.write, events)
            except Stopped:
                for msg in good:
                    await msg.nak()  # to another worker now, not after ack_wait
                await nc.flush()
                raise
            for msg in good:
                await msg.ack()
            await nc.flush()

    async def _on_error(self, exc: Exception) -> None:
        # a connect that fails is retried by nats-py for ever and reported only here
        self._problem(f"NATS {', '.join(self._config.servers)}: {why(exc)}")

    async def _on_disconnected(self) -> None:
        self._link_lost = True
        if not self._stop.is_set():
            log.warning("store: NATS disconnected; reconnecting")

    def _problem(self, what: str) -> None:
        if what != self._last_problem:
            log.warning("store: %s; retrying", what)
        self._last_problem = what
