"""Shared fixtures: a real Mosquitto broker per test, on a free localhost port; a cache
folder of the session's own."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import pytest

from tests.mqtt_helpers import Broker, BrokerFactory, find_mosquitto, free_port
from tests.postgres_helpers import pg_dsn  # noqa: F401  (a fixture for every test module)


@pytest.fixture(scope="session", autouse=True)
def own_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tests' and their daemons' cache (built engines, the INT8 speed check) is the
    session's own, not the user's."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        del os.environ["XDG_CACHE_HOME"]
    else:
        os.environ["XDG_CACHE_HOME"] = before


@pytest.fixture(scope="session")
def mqtt_broker_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerFactory]:
    """``make(persistence=False, port=None, start=True, extra=()) -> Broker``; ``extra`` are
    more mosquitto.conf lines. All are stopped at the end of the session (tests should stop
    theirs earlier)."""
    binary = find_mosquitto()
    brokers: list[Broker] = []

    def make(
        *,
        persistence: bool = False,
        port: int | None = None,
        start: bool = True,
        extra: Sequence[str] = (),
    ) -> Broker:
        broker = Broker(
            binary, tmp_path_factory.mktemp("mosquitto"), port or free_port(), persistence, extra
        )
        brokers.append(broker)
        if start:
            broker.start()
        return broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture
def mqtt_broker(mqtt_broker_factory: BrokerFactory) -> Iterator[Broker]:
    """A running broker of this test's own (``.host``, ``.port``, ``.stop()``, ``.start()``)."""
    broker = mqtt_broker_factory()
    yield broker
    broker.stop()
