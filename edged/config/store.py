"""``edged store``'s config: where events come from (one consumer group) and the database."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from edged.config.base import MAX_DURATION_S, StrictModel
from edged.config.events import TlsConfig
from edged.config.outputs import NatsConnection

_NAME = r"^[A-Za-z0-9_-]+$"


class StoreNatsSource(NatsConnection):
    """A JetStream durable pull consumer: every ``edged store`` with the same ``durable``
    shares the stream's events; each is acknowledged once its row is committed."""

    stream: str = Field("EDGED", pattern=_NAME)
    subject: str = Field("edged.>", description="which events of the stream to store")
    durable: str = Field("edged-store", pattern=_NAME, description="the consumer group")
    batch: int = Field(256, ge=1, le=10_000, description="events per transaction at most")
    ack_wait_s: float = Field(
        30.0, gt=0, le=MAX_DURATION_S, description="unacknowledged this long: sent again"
    )


class StoreMqttSource(StrictModel):
    """An MQTT 5 shared subscription, ``$share/<group>/<topic_prefix>/+/#`` (``group: null``:
    a plain subscription, every worker gets every event); a persistent session per worker
    (its ``client_id``) keeps what it has not acknowledged across a crash, and it
    acknowledges each message only once its row is committed."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = Field(None, description="write ${ENV_VAR}, never the secret")
    tls: TlsConfig | None = None
    topic_prefix: str = Field("edged", pattern=r"^[^#+]+$")
    group: str | None = Field(
        "edged-store",
        pattern=_NAME,
        description="the shared subscription; null: a plain one (Mosquitto 2.0 keeps only"
        " plain subscriptions across its own restart)",
    )
    client_id: str = Field(
        pattern=_NAME, description="one per worker, stable across restarts (its session)"
    )
    session_expiry_s: int = Field(
        86400, ge=60, description="how long the broker keeps a stopped worker's messages"
    )
    batch: int = Field(256, ge=1, le=10_000, description="events per transaction at most")


class PostgresConfig(StrictModel):
    dsn: SecretStr = Field(
        description="libpq connection string or postgresql:// URL (sslmode= for TLS);"
        " write the password as ${ENV_VAR}"
    )
    reconnect_s: float = Field(1.0, gt=0, le=MAX_DURATION_S)


class StoreConfig(StrictModel):
    nats: StoreNatsSource | None = None
    mqtt: StoreMqttSource | None = None
    postgres: PostgresConfig
    bucket_s: int = Field(
        300, ge=60, le=86400, description="interval of the line counts and zone occupancy rows"
    )

    @model_validator(mode="after")
    def _one_source(self) -> StoreConfig:
        if (self.nats is None) == (self.mqtt is None):
            raise ValueError("give one source: nats (JetStream) or mqtt (shared subscription)")
        return self
