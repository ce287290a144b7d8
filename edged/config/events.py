"""Where events go: the MQTT broker and the on-disk journal."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator

from edged.config.base import StrictModel
from edged.config.paths import resolve


class MqttConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    topic_prefix: str = Field("edged", pattern=r"^[^#+]+$")
    qos: Literal[0, 1] = 1
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)


class JournalConfig(StrictModel):
    path: Path = Path("/var/lib/edged/events.db")
    max_backlog: int = Field(100_000, ge=100)

    @field_validator("path")
    @classmethod
    def _relative_to_config(cls, v: Path, info: ValidationInfo) -> Path:
        return resolve(v, info)


class MetricsConfig(StrictModel):
    """The Prometheus endpoint (``/metrics``) and ``/healthz``; localhost only unless said
    otherwise."""

    host: str = "127.0.0.1"
    port: int = Field(9108, ge=1, le=65535)
    stale_s: float = Field(
        10.0,
        gt=0,
        description="/healthz fails a streaming camera with no frame processed for this long "
        "(or three of its detect_fps periods, if longer)",
    )


class DebugViewConfig(StrictModel):
    """Annotated frames for a person to look at: ``/cameras/<name>/latest.jpg`` and
    ``/cameras/<name>/stream.mjpeg``. Drawn only while someone fetches them. Served by the
    metrics server when host and port are the same as its own."""

    host: str = "127.0.0.1"
    port: int = Field(9109, ge=1, le=65535)
    jpeg_quality: int = Field(80, ge=10, le=100)
    stream_fps: float = Field(10.0, gt=0, le=60, description="at most this many MJPEG parts/s")
