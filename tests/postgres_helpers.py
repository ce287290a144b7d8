"""A database of its own per test, on the PostgreSQL server this machine runs.

``EDGED_TEST_POSTGRES`` names the server (a libpq string without dbname; default
``host=127.0.0.1 user=postgres``, which Debian's postgresql package with trust auth on
localhost gives). Without a server the tests that need one skip, saying so.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

SERVER = os.environ.get("EDGED_TEST_POSTGRES", "host=127.0.0.1 user=postgres")


def _admin() -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL server at {SERVER!r} (EDGED_TEST_POSTGRES): {exc}")


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """The libpq string of a new, empty database, dropped after the test."""
    admin = _admin()
    name = f"edged_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{SERVER} dbname={name}"
    finally:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.close()


def terminate_store_connections(dsn: str) -> int:
    """Kill every edged-store backend of the test's database, as a server restart would."""
    dbname = dict(p.split("=", 1) for p in dsn.split())["dbname"]
    with psycopg.connect(f"{SERVER} dbname=postgres", autocommit=True) as admin:
        rows = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND application_name = 'edged-store'",
            (dbname,),
        ).fetchall()
    return len(rows)
