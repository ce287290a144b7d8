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

STATUS_EVERY_S = 60.0


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
    reporter = threading.Thread(
        target=_report, args=(db, stop, notifier), name="edged-store-status", daemon=True
    )
    reporter.start()
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


def _report(db: Database, stop: threading.Event, notifier: Notifier) -> None:
    """Every ``STATUS_EVERY_S``: what was stored since, in the log and systemd's status."""
    stored, replayed = 0, 0
    while not stop.wait(STATUS_EVERY_S):
        new, again = db.stored - stored, db.replayed - replayed
        stored, replayed = db.stored, db.replayed
        line = f"{new} event(s) stored in the last {STATUS_EVERY_S:.0f} s ({again} already there)"
        notifier.status(line)
        if new or again:
            log.info("store: %s", line)
