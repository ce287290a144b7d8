"""Outputs beside MQTT that the journal feeds, each with its own delivery cursor."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from edged.config.base import MAX_AGE_S, MAX_DURATION_S, StrictModel
from edged.config.events import TlsConfig
from edged.config.paths import existing_file

# a subject token or stream name: what NATS allows without quoting, and no wildcards
_TOKEN = r"^[A-Za-z0-9_-]+$"
_SUBJECT_PREFIX = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"


class StreamConfig(StrictModel):
    """The JetStream stream that keeps the events; created at start when missing, and
    compared with this when it exists (differences are logged, the stream is left as is:
    several devices share it)."""

    name: str = Field("EDGED", pattern=_TOKEN)
    max_age_s: float | None = Field(
        7 * 86400.0, gt=0, le=MAX_AGE_S, description="oldest event kept (null: no age bound)"
    )
    max_bytes: int | None = Field(None, ge=1, description="stream size bound (null: none)")
    max_msgs: int | None = Field(None, ge=1, description="stream count bound (null: none)")
    replicas: int = Field(1, ge=1, le=5, description="copies on a clustered JetStream")
    storage: Literal["file", "memory"] = "file"
    duplicate_window_s: float = Field(
        600.0,
        gt=0,
        le=MAX_DURATION_S,
        description="how long the stream drops a replayed event (same Nats-Msg-Id)",
    )
    create: bool = Field(True, description="create the stream when it does not exist")


class NatsConnection(StrictModel):
    """Where a NATS cluster is and how to log in; shared by the output and ``edged store``."""

    servers: list[str] = Field(
        default_factory=lambda: ["nats://127.0.0.1:4222"],
        min_length=1,
        description="nats:// or tls:// URLs of the cluster's servers",
    )
    user: str | None = None
    password: SecretStr | None = Field(None, description="write ${ENV_VAR}, never the secret")
    token: SecretStr | None = Field(None, description="write ${ENV_VAR}, never the secret")
    creds: Path | None = Field(None, description="a .creds file (JWT and NKey seed)")
    tls: TlsConfig | None = Field(None, description="absent: plain TCP unless a URL is tls://")
    reconnect_wait_s: float = Field(2.0, gt=0, le=MAX_DURATION_S)

    _files = field_validator("creds")(existing_file)

    @model_validator(mode="after")
    def _credentials(self) -> NatsConnection:
        if (self.user is None) != (self.password is None):
            raise ValueError("user and password go together: give both or neither")
        given = [self.user is not None, self.token is not None, self.creds is not None]
        if sum(given) > 1:
            raise ValueError("give one of user/password, token or creds")
        for url in self.servers:
            if not url.startswith(("nats://", "tls://")):
                raise ValueError(f"server {url!r}: write nats://host:port or tls://host:port")
        return self


class NatsConfig(NatsConnection):
    """NATS JetStream: every event to ``<subject_prefix>.<device>.<camera>.<kind>``
    (``_`` for device-wide events), published with ``Nats-Msg-Id`` = the event id and pruned
    from the journal once the stream has acknowledged it."""

    subject_prefix: str = Field("edged", pattern=_SUBJECT_PREFIX)
    stream: StreamConfig = StreamConfig()
    max_inflight: int = Field(256, ge=1, le=10_000, description="publishes awaiting their ack")
    ack_timeout_s: float = Field(5.0, gt=0, le=60, description="wait for a publish's ack")


class RedisConfig(StrictModel):
    """Redis Streams: every event appended (``XADD``) to ``stream`` with its JSON and the
    fields to filter on; pruned from the journal once Redis has answered. At least once: a
    replay after a lost answer appends again, so consumers deduplicate on ``id``."""

    url: str = Field(
        "redis://127.0.0.1:6379/0",
        pattern=r"^(redis|rediss|unix)://",
        description="redis://, rediss:// (TLS) or unix:// with the database",
    )
    username: str | None = None
    password: SecretStr | None = Field(None, description="write ${ENV_VAR}, never the secret")
    tls: TlsConfig | None = Field(None, description="with a rediss:// URL: CA, client certificate")
    stream: str = Field(
        "edged:events",
        min_length=1,
        description="the stream's key; {device} in it becomes the device id",
    )
    maxlen: int | None = Field(
        1_000_000, ge=1, description="trim the stream to about this many entries (null: never)"
    )
    batch: int = Field(256, ge=1, le=10_000, description="events per round trip")
    timeout_s: float = Field(5.0, gt=0, le=60, description="wait for Redis's answer")
    reconnect_wait_s: float = Field(2.0, gt=0, le=MAX_DURATION_S)


class OutputsConfig(StrictModel):
    nats: NatsConfig | None = Field(None, description="absent: no JetStream output")
    redis: RedisConfig | None = Field(None, description="absent: no Redis Streams output")

    def names(self) -> list[str]:
        """The outputs configured here, as the journal names them."""
        return [name for name in type(self).model_fields if getattr(self, name) is not None]
