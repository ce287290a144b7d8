"""A connection to PostgreSQL that survives the server: a write that fails for the link is
retried on a new connection until it commits or the store stops."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import psycopg

from edged.config.store import PostgresConfig
from edged.store import database

log = logging.getLogger(__name__)


class Stopped(RuntimeError):
    """The store is stopping; what was being written is not committed (and not acked)."""


class Database:
    """One worker's connection. ``write`` commits a batch or raises ``Stopped``; a batch
    whose COMMIT had no answer (the server went away) is written again, which the schema
    makes a no-op for the rows that did commit."""

    def __init__(self, config: PostgresConfig, bucket_s: int, stop: threading.Event) -> None:
        self._config = config
        self._bucket_s = bucket_s
        self._stop = stop
        self._conn: psycopg.Connection[Any] | None = None
        self._down_since_logged = False
        self.stored = 0  # new rows committed
        self.replayed = 0  # events that were there already

    def connect(self) -> None:
        """Connect and migrate; retried until it works or the store stops."""
        self._connection()

    def _connection(self) -> psycopg.Connection[Any]:
        while self._conn is None or self._conn.closed:
            try:
                conn = psycopg.connect(
                    self._config.dsn.get_secret_value(),
                    autocommit=True,
                    application_name="edged-store",
                    connect_timeout=5,
                )
                # a worker stopped inside the migrations' transaction must not hold the
                # others' start (its lock) for longer than this
                conn.execute("SET idle_in_transaction_session_timeout = '30s'")
                database.migrate(conn)
            except psycopg.OperationalError as exc:
                self._down(exc)
                continue
            self._conn = conn
            if self._down_since_logged:
                log.info("database reachable again")
            self._down_since_logged = False
        return self._conn

    def _down(self, exc: Exception) -> None:
        if not self._down_since_logged:
            log.warning(
                "database unreachable (%s); retrying every %.1fs, nothing is acknowledged"
                " meanwhile",
                str(exc).strip(),
                self._config.reconnect_s,
            )
            self._down_since_logged = True
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        if self._stop.wait(self._config.reconnect_s):
            raise Stopped("stopping")

    def write(self, events: Sequence[dict[str, Any]]) -> int:
        while True:
            if self._stop.is_set():
                raise Stopped("stopping")
            conn = self._connection()
            try:
                new = database.write(conn, events, self._bucket_s)
            except psycopg.OperationalError as exc:
                self._down(exc)
                continue
            self.stored += new
            self.replayed += len(events) - new
            return new

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
