"""YAML as people write it: ``on``/``off``/``yes``/``no`` are words unless the field is a
boolean, and every YAML block of the README is a config (or a part of one, or a model
manifest) that edged accepts."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from edged.config import load
from edged.config.loader import load_model
from edged.config.store import StoreConfig
from edged.models.manifest import Manifest
from tests.paths import CLIP, MODEL, ROOT

README = ROOT / "README.md"
BLOCKS = re.findall(r"^```yaml\n(.*?)^```", README.read_text(encoding="utf-8"), re.S | re.M)

# a camera the README's camera-level parts go into: the zone and line its scene parts name
CAMERA: dict[str, Any] = {
    "source": {"uri": str(CLIP)},
    "detect": {"model": "coco", "classes": ["person"]},
    "zones": {"yard": {"polygon": [[0.1, 0.5], [0.6, 0.5], [0.6, 0.9], [0.1, 0.9]]}},
    "lines": {"gate": {"points": [[0.5, 0.2], [0.5, 0.9]]}},
}
ENV = {
    "MQTT_PASSWORD": "secret",
    "CAM_PASS": "secret",
    "EDGED_HTTP_TOKEN": "token",
    "NATS_PASSWORD": "secret",
    "REDIS_PASSWORD": "secret",
}


def base() -> dict[str, Any]:
    return {
        "device_id": "readme",
        "models": {"coco": {"path": str(MODEL)}},
        "cameras": {"front": yaml.safe_load(yaml.safe_dump(CAMERA))},
    }


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edged.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def with_cameras(cameras: str) -> str:
    """A config of the cameras written as YAML text (as a user writes them)."""
    return f"device_id: words\nmodels:\n  coco: {{path: {MODEL}}}\ncameras:\n{cameras}"


def test_on_off_yes_no_are_words_where_the_field_takes_words(tmp_path: Path) -> None:
    cameras = f"""\
  front:
    source: {{uri: {CLIP}}}
    detect: {{model: coco}}
    snapshots:
      on: [new, alert]
      privacy: {{blur: off, classes: [person]}}
"""
    config = load(write(tmp_path, with_cameras(cameras)), env={})
    snapshots = config.cameras["front"].snapshots
    assert snapshots is not None
    assert set(snapshots.on) == {"new", "alert"}
    assert snapshots.privacy.blur == "off"


def test_the_same_words_are_booleans_where_the_field_is_one(tmp_path: Path) -> None:
    cameras = f"""\
  front:
    source: {{uri: {CLIP}, realtime: no, loop: yes}}
    detect: {{model: coco, motion: {{enabled: off}}}}
  back:
    enabled: off
    source: {{uri: {CLIP}}}
    detect: {{model: coco}}
"""
    config = load(write(tmp_path, with_cameras(cameras)), env={})
    front = config.cameras["front"]
    assert front.source.realtime is False
    assert front.source.loop is True
    assert front.detect.motion.enabled is False
    assert config.cameras["back"].enabled is False


def test_a_set_override_reads_words_the_same_way(tmp_path: Path) -> None:
    text = yaml.safe_dump(base())
    config = load(
        write(tmp_path, text),
        ["cameras.front.snapshots.privacy.blur=off", "cameras.front.source.realtime=no"],
        env={},
    )
    snapshots = config.cameras["front"].snapshots
    assert snapshots is not None and snapshots.privacy.blur == "off"
    assert config.cameras["front"].source.realtime is False


def test_the_readme_has_yaml_blocks_of_each_kind() -> None:
    kinds = [kind(block) for block in BLOCKS]
    assert {"config", "camera part", "config part", "manifest", "store config"} <= set(kinds)


def kind(block: str) -> str:
    data = yaml.safe_load(textwrap.dedent(block))
    if block.startswith(" "):
        return "camera part"
    if "family" in data and "labels" in data:
        return "manifest"
    if "device_id" in data and "cameras" in data:
        return "config"
    if "postgres" in data:
        return "store config"
    return "config part"


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_every_yaml_block_of_the_readme_is_accepted(tmp_path: Path, number: int) -> None:
    block = BLOCKS[number]
    what = kind(block)
    if what == "manifest":
        # the README's placeholders for what only the user's file can give
        text = block.replace("<sha256sum of the file>", "ab" * 32)
        Manifest.model_validate(yaml.safe_load(text))
        return
    if what == "store config":
        path = write(tmp_path, block)
        assert load_model(StoreConfig, path, env={"PG_PASSWORD": "secret"}).postgres
        return
    if what == "config":
        # the files it names are the user's; here they are empty stand-ins
        for path in sorted(set(re.findall(r"/etc/edged/[\w.-]+", block))):
            stand_in = tmp_path / Path(path).name
            stand_in.write_text("")
            block = block.replace(path, str(stand_in))
        config = load(write(tmp_path, block), env=ENV)
        assert config.cameras, "the README's config has cameras"
        return
    # a part goes in as text, where it belongs, so its words are read as edged reads them
    text = yaml.safe_dump(base(), sort_keys=False)
    part = textwrap.dedent(block)
    if what == "camera part":
        text = text.replace("  front:\n", "  front:\n" + textwrap.indent(part, "    "), 1)
    else:
        text += part
    load(write(tmp_path, text), env=ENV)
