"""Configuration: pydantic models split by domain, and the YAML loader."""

from edged.config.camera import CameraConfig, DetectConfig, LineConfig, SourceConfig, ZoneConfig
from edged.config.events import JournalConfig, MqttConfig
from edged.config.loader import ConfigError, load
from edged.config.model import ModelConfig
from edged.config.root import Config

__all__ = [
    "CameraConfig",
    "Config",
    "ConfigError",
    "DetectConfig",
    "JournalConfig",
    "LineConfig",
    "ModelConfig",
    "MqttConfig",
    "SourceConfig",
    "ZoneConfig",
    "load",
]
