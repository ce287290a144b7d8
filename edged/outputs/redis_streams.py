"""Publishes the journal to a Redis stream (``XADD``), at least once, for DeepStream-style
consumers that read Redis Streams with consumer groups.

Each entry has ``event`` (the JSON that MQTT and JetStream carry) and ``id``, ``device``,
``camera``, ``kind`` and ``seq`` to filter on without parsing. A batch goes in one pipelined
round trip; each event that Redis has appended is acknowledged to the journal, so a lost
connection sends again only what had no answer (a consumer deduplicates on ``id``). Redis
keeps what it has according to its own persistence (``appendonly``): edged cannot make an
instance without it durable.

One thread: it reads this output's side of the journal, sends and acknowledges.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import Any

import redis

from edged.config.outputs import RedisConfig
from edged.core.event import Event
from edged.core.latency import Latency
from edged.outputs.journal import Journal

log = logging.getLogger(__name__)

_IDLE_WAKE_S = 1.0
_STOP_S = 1.5


class RedisStreamPublisher:
    name = "redis"

    def __init__(self, config: RedisConfig, device_id: str, journal: Journal) -> None:
        self._config = config
        self._device_id = device_id
        self._journal = journal.reader("redis")
        self.stream = config.stream.replace("{device}", device_id)
        self._connected = threading.Event()
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self._thread: threading.Thread | None = None
        self._last_problem: str | None = None
        self.error: str | None = None
        self.published = 0
        self.ack_latency = Latency()
        self._client = redis.Redis.from_url(config.url, **_options(config))

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def backlog(self) -> int:
        return self._journal.backlog()

    def wait_drained(self, timeout: float) -> bool:
        """Block until this output has every event (True), or ``timeout`` or a lost
        connection (False)."""
        with self._progress:
            self._progress.wait_for(
                lambda: self._journal.backlog() == 0 or not self.connected, timeout
            )
        return self._journal.backlog() == 0

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("RedisStreamPublisher already started")
        log.info(
            "Redis: appending to stream %s (%d events pending)",
            self.stream,
            self._journal.backlog(),
        )
        self._thread = threading.Thread(target=self._run, name="edged-redis-publisher", daemon=True)
        self._thread.start()

    def stop(self, drain_timeout: float = 5.0) -> None:
        if self._thread is None or self._stopping.is_set():
            return
        if self.connected:
            self.wait_drained(drain_timeout)
        self._stopping.set()
        self._journal.wake()
        self._thread.join(_STOP_S)
        if self._thread.is_alive():
            # a round trip still waiting for Redis (at most timeout_s): not waited for, so
            # the daemon keeps its time to stop; those events stay in the journal
            log.warning("Redis publisher still waiting for an answer; not waiting longer")
        else:
            self._client.close()
        backlog = self._journal.backlog()
        if backlog:
            log.warning("Redis publisher stopped with %d events not in the stream", backlog)

    def _run(self) -> None:
        cursor = 0
        while not self._stopping.is_set():
            if not self.connected and not self._connect():
                self._stopping.wait(self._config.reconnect_wait_s)
                cursor = 0
                continue
            batch = self._journal.pending(cursor, self._config.batch)
            if not batch:
                self._journal.wait_appended(_IDLE_WAKE_S)
                continue
            try:
                cursor = self._send(batch)
            except redis.RedisError as exc:
                self._lost(f"Redis {self._where()}: {exc}")
                cursor = 0
            except Exception:
                # a bug must not end delivery for good: the rows stay in the journal
                log.exception("Redis publisher failed; starting again")
                self._lost("Redis publisher failed")
                cursor = 0

    def _connect(self) -> bool:
        try:
            self._client.ping()
        except redis.AuthenticationError as exc:
            self._problem(f"Redis {self._where()}: login refused: {exc}", logging.ERROR)
            return False
        except (redis.RedisError, ssl.SSLError, OSError) as exc:
            self._problem(f"Redis {self._where()}: {exc}")
            return False
        if self._last_problem is not None:
            log.info("Redis %s reachable again", self._where())
        self._last_problem = self.error = None
        self._connected.set()
        return True

    def _send(self, batch: list[Event]) -> int:
        """One pipelined round trip; returns the cursor for the next batch."""
        sent = time.monotonic()
        pipe = self._client.pipeline(transaction=False)
        for ev in batch:
            pipe.xadd(
                self.stream,
                self._fields(ev),
                maxlen=self._config.maxlen,
                approximate=True,
            )
        answers = pipe.execute(raise_on_error=False)
        took = time.monotonic() - sent
        acked = [ev.seq for ev, a in zip(batch, answers, strict=True) if not _failed(a)]
        if acked:
            self._journal.mark_delivered(acked)
            self.published += len(acked)
            for _ in acked:
                self.ack_latency.observe(took)
            with self._progress:
                self._progress.notify_all()
        failures = [(ev, a) for ev, a in zip(batch, answers, strict=True) if _failed(a)]
        if failures:
            ev, answer = failures[0]
            self._problem(f"Redis refused seq={ev.seq} on {self.stream}: {answer}; retrying")
            return failures[0][0].seq - 1
        return batch[-1].seq

    def _fields(self, ev: Event) -> dict[Any, Any]:
        return {
            "event": ev.to_json(self._device_id),
            "id": ev.id,
            "device": self._device_id,
            "camera": ev.camera or "",
            "kind": ev.kind,
            "seq": ev.seq,
        }

    def _where(self) -> str:
        # the URL without a password in it
        pool = self._client.connection_pool.connection_kwargs
        if "path" in pool:
            return str(pool["path"])
        return f"{pool.get('host')}:{pool.get('port')}"

    def _lost(self, what: str) -> None:
        self._connected.clear()
        with self._progress:
            self._progress.notify_all()
        self._problem(what)

    def _problem(self, what: str, level: int = logging.WARNING) -> None:
        self.error = what
        if what == self._last_problem:
            log.debug("%s", what)
            return
        self._last_problem = what
        log.log(level, "%s (events wait in the journal)", what)


def _failed(answer: Any) -> bool:
    return isinstance(answer, Exception)


def _options(config: RedisConfig) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_timeout": config.timeout_s,
        "socket_connect_timeout": config.timeout_s,
    }
    if config.username is not None:
        options["username"] = config.username
    if config.password is not None:
        options["password"] = config.password.get_secret_value()
    tls = config.tls
    if tls is not None:
        if tls.ca is not None:
            options["ssl_ca_certs"] = str(tls.ca)
        if tls.cert is not None and tls.key is not None:
            options["ssl_certfile"], options["ssl_keyfile"] = str(tls.cert), str(tls.key)
        if tls.insecure:
            options |= {"ssl_cert_reqs": "none", "ssl_check_hostname": False}
    return options
