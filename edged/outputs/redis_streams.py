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
from edged.outputs.delivery import Delivery
from edged.outputs.journal import Journal

log = logging.getLogger(__name__)

_IDLE_WAKE_S = 1.0
_STOP_S = 1.5


class RedisStreamPublisher(Delivery):
    name = "redis"

    def __init__(self, config: RedisConfig, device_id: str, journal: Journal) -> None:
        super().__init__(journal, log)
        self._config = config
        self._device_id = device_id
        self.stream = config.stream.replace("{device}", device_id)
        self._client = redis.Redis.from_url(config.url, **_options(config))

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
        if not self._begin_stop(drain_timeout):
            return
        assert self._thread is not None
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
                self._lost()
                self._problem(f"Redis {self._where()}: {exc}")
                cursor = 0
            except Exception:
                # a bug must not end delivery for good: the rows stay in the journal
                log.exception("Redis publisher failed; starting again")
                self._lost()
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
            for _ in acked:
                self.ack_latency.observe(took)
            self._acked(acked)
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
