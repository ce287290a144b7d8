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


def edged(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edged", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


@pytest.mark.parametrize("given", [True, False], ids=["the folder given", "run elsewhere"])
def test_models_lists_the_shipped_models(tmp_path: Path, given: bool) -> None:
    # run from a folder with no engines/: without a folder it still finds the shipped ones
    result = edged("models", *([str(MODEL.parent)] if given else []), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "nanodet-g-416.onnx: nanodet fp32 416x416" in result.stdout
    assert "nanodet-g-416-int8.onnx: nanodet int8 416x416" in result.stdout
    assert "selfie-256.onnx: selfie fp32 256x256" in result.stdout


def test_models_in_a_folder_without_any(tmp_path: Path) -> None:
    result = edged("models", str(tmp_path))
    assert result.returncode == 1
    assert f"no .onnx models in {tmp_path}" in result.stderr


@pytest.mark.parametrize(
    ("text", "line", "col", "message"),
    [
        (
            b"device_id: box-1\nmqtt:\n  host: caf\xe9\n",
            3,
            12,
            "not UTF-8 text (byte 0xe9)",
        ),
        (b"device_id: box-1\n? [1, 2]\n: x\n", 2, 3, "a key must be a plain value, not a list"),
        (b"device_id: box-1\nmqtt: {{host: a}: 1}\n", 2, 8, "not a mapping"),
        (b"device_id: &a [1, *a]\n", 1, 12, "device_id[1]: recursive YAML alias"),
        (b"device_id: box-1\nstats_interval_s: !!float soon\n", 2, 19,
         "'soon' is not a valid float"),
        (b"device_id: !!timestamp tomorrow\n", 1, 12, "'tomorrow' is not a valid timestamp"),
        (b"device_id: box\x07\n", 1, 15, "special characters are not allowed (U+0007)"),
        (b"device_id: " + b"[" * 3000 + b"]" * 3000 + b"\n", 1, None, "nested too deeply"),
    ],
    ids=["not-utf8", "list-key", "mapping-key", "recursive-alias", "bad-float", "bad-timestamp",
         "control-char", "deep"],
)  # fmt: skip
def test_yaml_that_crashed_the_loader_is_a_placed_error(
    tmp_path: Path, text: bytes, line: int, col: int | None, message: str
) -> None:
    path = tmp_path / "edged.yaml"
    path.write_bytes(text)
    result = check(path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {path}:{line}:{'' if col is None else f'{col}:'}"), first
    assert message in first


def test_aliases_that_multiply_are_refused(tmp_path: Path) -> None:
    # a "billion laughs": nine levels of ten aliases each
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    path = tmp_path / "edged.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"expands to more than 100000 values"):
        load(path, env={})


def test_aliases_within_bounds_still_work(tmp_path: Path) -> None:
    text = GOOD.replace(
        "      door: {polygon: [[0.1, 0.5]", "      door: {polygon: &door [[0.1, 0.5]"
    )
    text = text.replace("    lines:\n", "      back: {polygon: *door}\n    lines:\n")
    config = load(write(tmp_path, text), env={})
    zones = config.cameras["front"].zones
    assert zones["back"].polygon == zones["door"].polygon


def test_the_environment_given_is_the_whole_environment(tmp_path: Path) -> None:
    # env={} means none set, not "use os.environ"
    text = GOOD.replace("${TEST_MQTT_HOST:-10.1.2.3}", "${HOME}")
    with pytest.raises(ConfigError, match="environment variable HOME is not set"):
        load(write(tmp_path, text), env={})


@pytest.mark.parametrize(
    ("old", "new", "field", "message"),
    [
        ("detect_fps: 5}", "detect_fps: 5, open_timeout_s: .inf}", "source.open_timeout_s",
         "finite number"),
        ("detect_fps: 5}", "detect_fps: 5, read_timeout_s: .nan}", "source.read_timeout_s",
         "finite number"),
        ("detect_fps: 5}", "detect_fps: 5, stall_timeout_s: 86401}", "source.stall_timeout_s",
         "less than or equal to 86400"),
        ("detect_fps: 5}", "detect_fps: 5, reconnect: {floor_s: 1e308}}",
         "source.reconnect.floor_s", "less than or equal to 86400"),
        ("detect_fps: 5}", "detect_fps: 5, reconnect: {ceiling_s: .inf}}",
         "source.reconnect.ceiling_s", "finite number"),
        ("detect_fps: 5}", "detect_fps: 5, reconnect: {floor_s: 10, ceiling_s: 5}}",
         "source.reconnect", "ceiling_s must not be below floor_s"),
        ("detect_fps: 5}", "detect_fps: 1e9}", "source.detect_fps", "less than or equal to 1000"),
        ("loiter_s: 30}", "loiter_s: 1e12}", "zones.door.loiter_s", "less than or equal to 86400"),
        ("loiter_s: 30}", "loiter_s: 30, min_stay_s: .inf}", "zones.door.min_stay_s",
         "finite number"),
        ("{in: left_to_right}}", "{in: left_to_right}, cancel_s: 1e6}", "lines.gate.cancel_s",
         "less than or equal to 86400"),
    ],
    ids=["open-inf", "read-nan", "stall-day", "floor-huge", "ceiling-inf", "ceiling-below",
         "fps", "loiter", "min-stay", "cancel"],
)  # fmt: skip
def test_durations_are_finite_and_at_most_a_day(
    tmp_path: Path, old: str, new: str, field: str, message: str
) -> None:
    assert old in GOOD
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, GOOD.replace(old, new)), env={})
    (problem,) = err.value.problems
    assert f": cameras.front.{field}: " in problem and message in problem, problem


def test_broker_and_tracker_durations_are_bounded(tmp_path: Path) -> None:
    text = GOOD.replace("  front:\n", "  front:\n    tracker: {lost_track_buffer_s: 1e9}\n", 1)
    text = text.replace(
        "  port: 1884\n", "  port: 1884\n  reconnect_max_s: 1e308\n  expiry_s: 5000000000\n"
    )
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), env={})
    assert sorted(p.split(": ")[1] for p in err.value.problems) == [
        "cameras.front.tracker.lost_track_buffer_s",
        "mqtt.expiry_s",
        "mqtt.reconnect_max_s",
    ]


def test_root_durations_are_bounded(tmp_path: Path) -> None:
    text = GOOD + "stats_interval_s: .inf\nservice: {ready_timeout_s: 1e300}\n"
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), env={})
    assert [p.split(": ")[1] for p in err.value.problems] == [
        "stats_interval_s",
        "service.ready_timeout_s",
    ]


@pytest.mark.parametrize(
    "polygon",
    [
        "[[0.1, 0.5], [640, 0.5], [640, 480]]",
        "[[0, 0.5], [640, 0], [640, 480]]",
        "[[10, 10], [0.9, 400], [640, 480]]",
    ],
)
def test_a_polygon_mixing_relative_and_pixel_values_is_refused(
    tmp_path: Path, polygon: str
) -> None:
    old = "[[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]]"
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, GOOD.replace(old, polygon)), env={})
    (problem,) = err.value.problems
    assert problem.startswith(f"{tmp_path / 'edged.yaml'}:12:")
    assert "cameras.front.zones.door.polygon: mixes relative and pixel coordinates" in problem


def test_a_line_mixing_relative_and_pixel_values_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("[[0.5, 0.2], [0.5, 0.9]]", "[[0.5, 0.2], [640, 480]]")
    with pytest.raises(ConfigError, match=r"lines\.gate\.points: mixes relative and pixel"):
        load(write(tmp_path, text), env={})


@pytest.mark.parametrize(
    ("points", "refused"),
    [
        ("[[1, 0], [2, 1]]", True),  # meant relative, read as pixels: 1.4 px
        ("[[0, 0], [3, 0]]", True),
        ("[[0, 0], [4, 0]]", False),
        ("[[0, 0], [1, 1]]", False),  # relative: the picture's diagonal
    ],
)
def test_a_line_of_a_few_pixels_is_refused(tmp_path: Path, points: str, refused: bool) -> None:
    text = GOOD.replace("[[0.5, 0.2], [0.5, 0.9]]", points)
    if not refused:
        load(write(tmp_path, text), env={})
        return
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text), env={})
    (problem,) = err.value.problems
    assert "lines.gate.points: is " in problem and "px long" in problem, problem


@pytest.mark.parametrize(
    "polygon",
    [
        "[[0, 0], [640, 0], [640, 480]]",  # pixels near the origin
        "[[0, 0], [1, 0], [1, 1], [0, 1]]",  # the whole picture, relative
        "[[1, 1], [2, 1], [2, 2]]",  # pixels, tiny
        "[[0.5, 0.5], [1, 0.5], [1, 1]]",  # relative
    ],
)
def test_unmixed_polygons_pass(tmp_path: Path, polygon: str) -> None:
    old = "[[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]]"
    load(write(tmp_path, GOOD.replace(old, polygon)), env={})


def test_log_level_goes_before_or_after_the_subcommand() -> None:
    from edged.cli import _parser

    parse = _parser().parse_args
    assert parse(["check", "x.yaml"]).log_level == "INFO"
    assert parse(["--log-level", "DEBUG", "check", "x.yaml"]).log_level == "DEBUG"
    assert parse(["check", "x.yaml", "--log-level", "WARNING"]).log_level == "WARNING"
    # one given to the subcommand wins
    assert parse(["--log-level", "DEBUG", "run", "x.yaml", "--log-level", "ERROR"]).log_level == (
        "ERROR"
    )
    assert parse(["engine", "build", "m.onnx", "--log-level", "DEBUG"]).log_level == "DEBUG"
    result = check(DEMO, "--log-level", "WARNING")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout
