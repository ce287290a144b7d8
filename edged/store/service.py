"""``edged store``: one worker of a consumer group, from its source into PostgreSQL."""

from __future__ import annotations

import logging
import threading

from edged.config.store import StoreConfig
from edged.service.systemd import Notifier
from edged.store.from_mqtt import MqttSource
from edged.store.from_nats import NatsSource
from edged.store.session import Database, Stopped

log = logging.getLogger(__name__)


def run(config: StoreConfig, stop: threading.Event) -> int:
    """Until ``stop``: the database first (migrated), then the source. Returns the exit code."""
    notifier = Notifier()
    db = Database(config.postgres, config.bucket_s, stop)
    try:
        db.connect()
    except Stopped:
        return 0
    source: NatsSource | MqttSource
    if config.nats is not None:
        source = NatsSource(config.nats, db, stop)
    else:
        assert config.mqtt is not None
        source = MqttSource(config.mqtt, db, stop)
    # the database is there and migrated; the source connects (and reconnects) by itself
    notifier.ready("storing")
    try:
        source.run()
    finally:
        notifier.stopping()
        db.close()
        notifier.close()
        log.info(
            "store: stopped; %d event(s) stored, %d already there, %d not events",
            db.stored,
            db.replayed,
            source.bad,
        )
    return 0
