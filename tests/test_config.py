"""Config loading: interpolation, overrides, and errors that name file, line and field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edged.config import ConfigError, load
from tests.paths import DEMO, MODEL

GOOD = f"""\
device_id: box-1
mqtt:
  host: ${{TEST_MQTT_HOST:-10.1.2.3}}
  port: 1884
models:
  coco: {{path: {MODEL}}}
cameras:
  front:
    source: {{uri: clip.mp4, detect_fps: 5}}
    detect: {{model: coco, classes: [person]}}
    zones:
      door: {{polygon: [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]], loiter_s: 30}}
    lines:
      gate: {{points: [[0.5, 0.2], [0.5, 0.9]], directions: {{in: left_to_right}}}}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edged.yaml"
    path.write_text(text)
    return path


def check(path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edged", "check", str(path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_good_config_loads_with_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load(write(tmp_path, GOOD), env={})
    assert config.mqtt is not None and config.mqtt.host == "10.1.2.3"
    cam = config.cameras["front"]
    assert cam.source.uri == str(tmp_path / "clip.mp4")
    assert cam.source.resolved_kind == "file"
    assert cam.lines["gate"].directions.in_ == "left_to_right"
    assert cam.tracker.min_hits == 2


def test_env_and_overrides(tmp_path: Path) -> None:
    config = load(
        write(tmp_path, GOOD),
        overrides=["mqtt.port=1999", "cameras.front.source.realtime=false"],
        env={"TEST_MQTT_HOST": "broker.local"},
    )
    assert config.mqtt is not None
    assert (config.mqtt.host, config.mqtt.port) == ("broker.local", 1999)
    assert config.cameras["front"].source.realtime is False


def test_override_error_names_the_override(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, GOOD), overrides=["mqtt.port=not-a-port"], env={})
    assert err.value.problems[0].startswith("--set mqtt.port: mqtt.port:")


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "message"),
    [
        (
            "    detect: {model: coco, classes: [person]}\n",
            "    detect: {classes: [person]}\n",
            10,
            "cameras.front.detect.model",
            "required field is missing",
        ),
        ("  port: 1884\n", "  port: 1884\n  colour: blue\n", 5, "mqtt.colour", "unknown key"),
        (
            "[[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]]",
            "[[0.1, 0.5], [0.4, 0.9], [0.4, 0.5], [0.1, 0.9]]",
            12,
            "cameras.front.zones.door.polygon",
            "Self-intersection",
        ),
        (
            "${TEST_MQTT_HOST:-10.1.2.3}",
            "${TEST_MQTT_HOST}",
            3,
            "mqtt.host",
            "environment variable TEST_MQTT_HOST is not set",
        ),
        (
            "{model: coco,",
            "{model: yolo,",
            10,
            "cameras.front.detect.model",
            "unknown model 'yolo'",
        ),
        (
            "[[0.5, 0.2], [0.5, 0.9]]",
            "[[0.5, 0.2]]",
            14,
            "cameras.front.lines.gate.points",
            "exactly 2",
        ),
    ],
    ids=["missing-field", "unknown-key", "bad-polygon", "unset-env", "unknown-model", "short-line"],
)
def test_errors_name_file_line_and_field(
    tmp_path: Path, old: str, new: str, line: int, field: str, message: str
) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new))
    env = {"PATH": "/usr/bin:/bin"}
    result = check(path, env=env)
    assert result.returncode == 2, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {path}:{line}:"), first
    assert f": {field}: " in first
    assert message in first


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("  port: 1884\n", "  port: [1884\n"))
    result = check(path)
    assert result.returncode == 2
    assert f"error: {path}:" in result.stderr and "YAML syntax" in result.stderr


def test_unknown_class_is_reported_with_the_model_loaded(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("classes: [person]", "classes: [person, unicorn]"))
    result = check(path)
    assert result.returncode == 2
    assert f"error: {path}:10:" in result.stderr
    assert "cameras.front.detect.classes" in result.stderr and "unicorn" in result.stderr


def test_line_parallel_to_its_direction_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("{in: left_to_right}", "{in: top_to_bottom}"))
    result = check(path)
    assert result.returncode == 2
    assert f"error: {path}:14:" in result.stderr
    assert "cameras.front.lines.gate" in result.stderr and "parallel" in result.stderr


def test_demo_config_checks_clean() -> None:
    result = check(DEMO)
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_schema_is_json_schema_of_the_config() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edged", "schema"], capture_output=True, text=True, timeout=60
    )
    schema = json.loads(result.stdout)
    assert set(schema["required"]) == {"device_id", "models", "cameras"}
    assert schema["additionalProperties"] is False
    assert "ZoneConfig" in schema["$defs"]


def test_names_that_become_topic_levels_are_checked(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("      door:", "      front/door:"))
    with pytest.raises(ConfigError, match=r"cameras\.front\.zones: .*'front/door'"):
        load(path, env={})


def test_models_lists_the_shipped_models() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edged", "models", str(MODEL.parent)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "nanodet-g-416.onnx: nanodet fp32 416x416" in result.stdout
    assert "selfie-256.onnx: selfie fp32 256x256" in result.stdout
