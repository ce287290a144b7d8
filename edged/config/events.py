"""Where events go: the MQTT broker and the on-disk journal."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from edged.config.base import MAX_AGE_S, MAX_DURATION_S, StrictModel
from edged.config.http import HttpConfig
from edged.config.paths import existing_file, resolve


class TlsConfig(StrictModel):
    """TLS to the broker. With no ``ca`` the system's CAs verify the broker."""

    ca: Path | None = Field(None, description="CA certificate(s) that signed the broker's")
    cert: Path | None = Field(None, description="client certificate (with key)")
    key: Path | None = Field(None, description="the client certificate's private key")
    insecure: bool = Field(
        False, description="skip verifying the broker's certificate and name (testing only)"
    )

    _files = field_validator("ca", "cert", "key")(existing_file)

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together: give both or neither")
        return self


class MqttConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["5", "3.1.1"] = Field("5", description="MQTT protocol version")
    topic_prefix: str = Field("edged", pattern=r"^[^#+]+$")
    qos: Literal[0, 1, 2] = Field(
        1, description="events are pruned on PUBACK (1) or PUBCOMP (2); 0: once written"
    )
    username: str | None = None
    password: SecretStr | None = Field(None, description="write ${ENV_VAR}, never the secret")
    client_id: str | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    max_inflight: int = Field(
        20,
        ge=1,
        le=1000,
        description="events sent and not yet acknowledged; Mosquitto takes 20 by default,"
        " an MQTT 5 broker's Receive Maximum lowers it",
    )
    tls: TlsConfig | None = Field(None, description="absent: plain TCP")
    expiry_s: int | None = Field(
        86400,
        le=2**32 - 1,
        ge=1,
        description="MQTT 5 message expiry of transient (not retained) events; null: none",
    )
    reconnect_min_s: float = Field(
        0.5, le=MAX_DURATION_S, gt=0, description="first reconnect delay, then doubling"
    )
    reconnect_max_s: float = Field(30.0, le=MAX_DURATION_S, gt=0)

    @field_validator("protocol", mode="before")
    @classmethod
    def _version_as_text(cls, v: object) -> object:
        return str(v) if isinstance(v, int | float) else v

    @model_validator(mode="after")
    def _ordered(self) -> MqttConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must not be below reconnect_min_s")
        return self


class HomeAssistantConfig(StrictModel):
    """Home Assistant MQTT discovery: retained entity configs under ``<prefix>/…``."""

    prefix: str = Field("homeassistant", pattern=r"^[^#+]+$", description="discovery prefix")
    name: str | None = Field(None, description="the device's name in HA (default: edged <id>)")
    configuration_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="the device's link in HA (default: the debug view's address, if there is one)",
    )


class ObjectUpdatesConfig(StrictModel):
    """When an object ``update`` is sent: at once on a zone change; on a label change, a
    better score (a better snapshot) or a heartbeat no sooner than ``min_interval_s`` after
    the object's previous event. Nothing else: no event storms."""

    min_interval_s: float = Field(
        1.0,
        le=MAX_DURATION_S,
        ge=0,
        description="least time between label, score and heartbeat updates",
    )
    score_gain: float | None = Field(
        0.1, gt=0, le=1, description="top score risen this much: update (null: never)"
    )
    heartbeat_s: float | None = Field(
        None,
        le=MAX_DURATION_S,
        gt=0,
        description="also update a living object this often (null: never)",
    )


class JournalConfig(StrictModel):
    path: Path = Path("/var/lib/edged/events.db")
    max_backlog: int = Field(100_000, ge=100, description="most undelivered events kept")
    max_age_s: float | None = Field(
        7 * 86400.0,
        gt=0,
        le=MAX_AGE_S,
        description="oldest undelivered event kept, at most 366 days (null: no age bound)",
    )
    on_full: Literal["drop_oldest", "pause"] = Field(
        "drop_oldest",
        description="at a bound: drop the oldest events, or refuse new ones until there is room",
    )
    pause_wait_s: float = Field(
        0.0, ge=0, le=5, description="pause: how long an append may wait for room first"
    )
    overflow_every_s: float = Field(
        10.0,
        ge=0,
        le=MAX_DURATION_S,
        description="at most one overflow event this often (losses are summed)",
    )

    @field_validator("path")
    @classmethod
    def _relative_to_config(cls, v: Path, info: ValidationInfo) -> Path:
        return resolve(v, info)


class MetricsConfig(HttpConfig):
    """The Prometheus endpoint (``/metrics``) and ``/healthz``; localhost only unless said
    otherwise."""

    port: int = Field(9108, ge=1, le=65535)
    stale_s: float = Field(
        10.0,
        le=MAX_DURATION_S,
        gt=0,
        description="/healthz fails a streaming camera with no frame processed for this long "
        "(or three of its detect_fps periods, if longer)",
    )


class DebugViewConfig(HttpConfig):
    """Annotated frames for a person to look at: ``/cameras/<name>/latest.jpg`` and
    ``/cameras/<name>/stream.mjpeg``. Drawn only while someone fetches them. Served by the
    metrics server when host and port are the same as its own (and then its access settings
    must be the same too). Pictures are blurred as each camera's ``snapshots.privacy`` says."""

    port: int = Field(9109, ge=1, le=65535)
    jpeg_quality: int = Field(80, ge=10, le=100)
    stream_fps: float = Field(10.0, gt=0, le=60, description="at most this many MJPEG parts/s")
