"""The editor's save, without a browser: the YAML written into a config file, the save's
checks and backups, and the POST guard."""

from __future__ import annotations

import http.client
from pathlib import Path

import pytest
import yaml

from edged.config import ConfigError, load
from edged.config.edit import Geometry, LineEdit, set_geometry, snippet
from edged.web.config_save import BACKUPS_KEPT, ConfigFile, ConfigSaver
from edged.web.console import parse_geometry
from edged.web.recent import RecentEvents
from edged.web.server import Request, WebServer
from tests.mqtt_helpers import free_port
from tests.paths import DEMO, ROOT

GATE = Geometry(
    zones={"plaza": [(0.1, 0.1), (0.5, 0.1), (0.5, 0.5)]},
    lines={"gate": LineEdit(((0.1, 0.9), (0.9, 0.9)), "top_to_bottom")},
)


def test_geometry_replaces_zones_and_lines_and_keeps_everything_else() -> None:
    text = DEMO.read_text()
    out = set_geometry(text, "walkway", GATE)
    data, old = yaml.safe_load(out), yaml.safe_load(text)
    cam = data["cameras"]["walkway"]
    # the zone keeps its other settings; the line the editor dropped is gone
    assert cam["zones"]["plaza"] == {
        **old["cameras"]["walkway"]["zones"]["plaza"],
        "polygon": [
            [0.1, 0.1],
            [0.5, 0.1],
            [0.5, 0.5],
        ],
    }
    assert cam["lines"] == {
        "gate": {"points": [[0.1, 0.9], [0.9, 0.9]], "directions": {"in": "top_to_bottom"}}
    }
    # comments, ${ENV} references and the other sections as they were
    assert "# the paved area around the sign" in out
    assert "${EDGED_MQTT_HOST:-127.0.0.1}" in out
    assert {k: v for k, v in data.items() if k != "cameras"} == {
        k: v for k, v in old.items() if k != "cameras"
    }
    assert "polygon: [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]]" in out  # one line, as people write it


def test_an_empty_geometry_removes_the_sections_and_unknown_cameras_are_refused() -> None:
    out = set_geometry(DEMO.read_text(), "walkway", Geometry({}, {}))
    cam = yaml.safe_load(out)["cameras"]["walkway"]
    assert "zones" not in cam and "lines" not in cam
    with pytest.raises(ConfigError, match=r"cameras\.nope: not in the config file"):
        set_geometry(DEMO.read_text(), "nope", GATE)
    assert snippet(GATE).startswith("zones:\n  plaza:\n    polygon: [[0.1, 0.1]")


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([], "a JSON object"),
        ({"zones": {"a b": [[0, 0], [1, 0], [1, 1]]}}, "letters, digits"),
        ({"zones": {"z": [[0, 0], [2, 0], [1, 1]]}}, "within 0–1"),
        ({"zones": {"z": [[0, 0], "x"]}}, r"zones\.z: a list of \[x, y\] numbers"),
        ({"lines": {"l": {"points": [[0, 0]], "in": "left_to_right"}}}, "2 points, got 1"),
        ({"lines": {"l": {"points": [[0, 0], [1, 1]], "in": "up"}}}, "one of left_to_right"),
    ],
)
def test_the_editors_json_is_refused_with_the_reason(body: object, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_geometry(body)


def saver_for(tmp_path: Path) -> tuple[Path, ConfigSaver, list[str]]:
    config = tmp_path / "edged.yaml"
    text = DEMO.read_text().replace("../", f"{ROOT}/")
    config.write_text(text)
    recent = RecentEvents("demo")
    asked: list[str] = []

    def reload() -> None:
        from edged.core.event import Event

        asked.append("reload")
        recent([Event("config_reload", None, "config", {"status": "ok", "updated": ["walkway"]})])

    return config, ConfigSaver(ConfigFile(config, lambda p: load(p)), recent, reload), asked


def test_a_save_is_checked_backed_up_and_reloaded(tmp_path: Path) -> None:
    config, saver, asked = saver_for(tmp_path)
    before = config.read_text()
    saved = saver.save("walkway", GATE)
    assert saved.ok, saved.errors
    assert asked == ["reload"] and saved.reload is not None
    assert saved.reload["kind"] == "config_reload" and saved.reload["updated"] == ["walkway"]
    assert saved.backup is not None and Path(saved.backup).read_text() == before
    assert "gate" in yaml.safe_load(config.read_text())["cameras"]["walkway"]["lines"]
    # a bow tie is refused by the config's rules, named by the real file, and nothing changes
    text = config.read_text()
    bad = Geometry({"tie": [(0.1, 0.1), (0.3, 0.3), (0.3, 0.1), (0.1, 0.3)]}, {})
    refused = saver.save("walkway", bad)
    assert not refused.ok and asked == ["reload"]
    assert any(str(config) in e and "invalid polygon" in e for e in refused.errors), refused.errors
    assert config.read_text() == text
    assert not list(tmp_path.glob(".edged.yaml.*"))  # no candidate left behind
    for _ in range(BACKUPS_KEPT + 2):
        assert saver.save("walkway", GATE).ok
    assert len(list(tmp_path.glob("edged.yaml.*.bak"))) == BACKUPS_KEPT


def test_a_save_into_a_folder_it_cannot_write_says_what_to_do(tmp_path: Path) -> None:
    _, saver, asked = saver_for(tmp_path)
    tmp_path.chmod(0o500)
    try:
        if _writable(tmp_path):
            pytest.skip("this user writes into read-only folders (root)")
        saved = saver.save("walkway", GATE)
    finally:
        tmp_path.chmod(0o700)
    assert not saved.ok and asked == []
    assert "copy the YAML" in saved.errors[0] and "ReadWritePaths" in saved.errors[0]


def _writable(folder: Path) -> bool:
    try:
        (folder / "probe").write_text("")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


def test_a_change_is_taken_only_as_json_from_the_servers_own_pages() -> None:
    seen: list[bytes] = []

    def post(req: Request, path: str) -> bool:
        body = req.body()
        if body is not None:
            seen.append(body)
            req.send(200, "text/plain", b"ok\n")
        return True

    port = free_port()
    server = WebServer("127.0.0.1", port, [], post_routes=[post])
    server.start()
    try:

        def status(headers: dict[str, str], body: bytes = b"{}") -> int:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/x", body=body, headers=headers)
            code = conn.getresponse().status
            conn.close()
            return code

        host = f"127.0.0.1:{port}"
        assert status({"Content-Type": "application/x-www-form-urlencoded"}) == 403
        assert status({"Content-Type": "application/json", "Origin": "http://evil.example"}) == 403
        assert status({"Content-Type": "application/json", "Origin": f"http://{host}"}) == 200
        assert status({"Content-Type": "application/json"}, b"x" * ((1 << 20) + 1)) == 413
        assert seen == [b"{}"]
    finally:
        server.close()
