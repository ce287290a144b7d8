"""``edged check`` finds what would fail at start: a model ONNX Runtime cannot load or that
does not fit its manifest, folders that cannot be written, TLS files that are not what they
say, HTTP ports in use, pixel geometry outside the picture. Each problem is
``file:line:col: field: message``, exit 2."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from edged.config import ConfigError
from edged.service.check import load_checked
from edged.web.server import WebServer
from tests.daemon import Daemon
from tests.mqtt_helpers import free_port
from tests.onnx_fixtures import model_beside
from tests.paths import CLIP, MODEL, ROOT, SEGMENTER
from tests.tls_certs import Certs, make_certs


def base(tmp_path: Path, model: Path = MODEL) -> dict[str, Any]:
    return {
        "device_id": "box-1",
        "journal": {"path": str(tmp_path / "journal" / "events.db")},
        "models": {"coco": {"path": str(model), "backend": "cpu"}},
        "cameras": {
            "front": {
                "source": {"uri": str(CLIP)},
                "detect": {"model": "coco", "classes": ["person"]},
            }
        },
    }


def write(tmp_path: Path, config: dict[str, Any]) -> Path:
    path = tmp_path / "edged.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def line_of(path: Path, key: str, after: str | None = None) -> int:
    """The 1-based line where ``key:`` is written (the first after ``after:``, if given)."""
    lines = path.read_text().splitlines()
    start = 0 if after is None else next(i for i, t in enumerate(lines) if f"{after}:" in t)
    return next(i for i, t in enumerate(lines[start:], start) if f"{key}:" in t) + 1


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_checked(path)
    return err.value.problems


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edged", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_problem(path: Path, field: str, key: str, after: str | None = None) -> str:
    """The single problem of ``path``, which must name the place of ``key`` and ``field``."""
    found = problems(path)
    assert len(found) == 1, found
    prefix = f"{path}:{line_of(path, key, after)}:"
    assert found[0].startswith(prefix) and f": {field}: " in found[0], found[0]
    return found[0]


def test_a_good_config_passes(tmp_path: Path) -> None:
    config = load_checked(write(tmp_path, base(tmp_path)))
    assert config.cameras["front"].detect.model == "coco"
    # a check creates nothing: the journal's folder is made at start
    assert not (tmp_path / "journal").exists()


# --- models -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (MODEL.read_bytes()[:100_000], "ONNX Runtime cannot load the model"),
        (b"", "ONNX Runtime cannot load the model"),
        (b"name: not a model\n", "ONNX Runtime cannot load the model"),
    ],
    ids=["truncated", "zero-bytes", "not-onnx"],
)
def test_a_model_file_onnx_runtime_cannot_load(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path, base(tmp_path, model_beside(tmp_path, data)))
    result = check(path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {path}:{line_of(path, 'path', 'coco')}:"), first
    assert ": models.coco.path: " in first and message in first


def nanodet_decode(**changes: Any) -> dict[str, Any]:
    spec = yaml.safe_load(MODEL.with_suffix(".yaml").read_text())["decode"]
    return {**spec, **changes}


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (
            {"input": {**yaml.safe_load(MODEL.with_suffix(".yaml").read_text())["input"],
                       "name": "images"}},
            "input 'images' is not among the model's inputs",
        ),
        (
            {"decode": nanodet_decode(
                outputs=[{"stride": 8, "scores": "Identity:0", "boxes": "boxes:0"}]
            )},
            "names output 'boxes:0'",
        ),
        ({"decode": nanodet_decode(reg_max=7)}, "do not fit the manifest's nanodet decode"),
        ({"family": "yolov8", "decode": {}}, "names output 'output0'"),
        (
            {"input": {**yaml.safe_load(MODEL.with_suffix(".yaml").read_text())["input"],
                       "size": [320, 320]}},
            "does not run on the 320x320 input its manifest describes",
        ),
    ],
    ids=["input-name", "output-name", "decode-shape", "family", "input-size"],
)  # fmt: skip
def test_a_manifest_the_model_does_not_fit(
    tmp_path: Path, manifest: dict[str, Any], message: str
) -> None:
    path = write(tmp_path, base(tmp_path, model_beside(tmp_path, **manifest)))
    found = one_problem(path, "models.coco.path", "path", "coco")
    assert message in found


def test_a_precision_the_backend_cannot_run(tmp_path: Path) -> None:
    config = base(tmp_path)
    config["models"]["coco"]["precision"] = "fp16"
    path = write(tmp_path, config)
    assert "precision fp16 on backend cpu needs a fp16 model" in one_problem(
        path, "models.coco.path", "path", "coco"
    )


def test_a_segmenter_is_run_too(tmp_path: Path) -> None:
    folder = tmp_path / "seg"
    folder.mkdir()
    model = folder / SEGMENTER.name
    model.symlink_to(SEGMENTER)
    spec = yaml.safe_load(SEGMENTER.with_suffix(".yaml").read_text())
    spec["decode"] = {"output": "mask"}
    model.with_suffix(".yaml").write_text(yaml.safe_dump(spec))
    config = base(tmp_path)
    config["models"]["people"] = {"path": str(model), "backend": "cpu"}
    config["cameras"]["front"]["segment"] = {"model": "people"}
    path = write(tmp_path, config)
    assert "names output 'mask'" in one_problem(path, "models.people.path", "path", "people")


# --- folders and files written from the start ----------------------------------------------


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain-file"
    path.write_text("not a folder\n")
    return path


def test_a_journal_under_a_regular_file(tmp_path: Path, a_file: Path) -> None:
    config = base(tmp_path)
    config["journal"]["path"] = str(a_file / "state" / "events.db")
    found = one_problem(write(tmp_path, config), "journal.path", "path", "journal")
    assert f"cannot be created: {a_file} is not a folder" in found


def test_a_journal_path_that_is_a_folder(tmp_path: Path) -> None:
    config = base(tmp_path)
    config["journal"]["path"] = str(tmp_path)
    found = one_problem(write(tmp_path, config), "journal.path", "path", "journal")
    assert "is a folder; the journal is one SQLite file" in found


def test_a_journal_that_is_not_sqlite_passes_and_is_moved_aside_at_start(
    tmp_path: Path, a_file: Path
) -> None:
    from edged.outputs.journal import Journal

    a_file.write_text("x" * 200)
    config = base(tmp_path)
    config["journal"]["path"] = str(a_file)
    checked = load_checked(write(tmp_path, config))
    Journal(checked.journal).close()
    (moved,) = a_file.parent.glob(f"{a_file.name}.corrupt-*")
    assert moved.read_text() == "x" * 200


def test_an_existing_journal_passes(tmp_path: Path) -> None:
    from edged.config.events import JournalConfig
    from edged.outputs.journal import Journal

    config = base(tmp_path)
    Journal(JournalConfig(path=Path(config["journal"]["path"]))).close()
    load_checked(write(tmp_path, config))


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder no one may write in, root included: immutable (``chattr +i``)."""
    folder = tmp_path / "frozen"
    folder.mkdir()
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed: no way to make a folder read-only for root")
    done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"this file system has no immutable flag: {done.stderr.strip()}")
    yield folder
    subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_journal_in_a_read_only_folder(tmp_path: Path, read_only_dir: Path) -> None:
    config = base(tmp_path)
    config["journal"]["path"] = str(read_only_dir / "events.db")
    found = one_problem(write(tmp_path, config), "journal.path", "path", "journal")
    assert f"cannot write in {read_only_dir}: Operation not permitted" in found


def with_snapshots(tmp_path: Path, folder: Path) -> Path:
    config = base(tmp_path)
    config["cameras"]["front"]["snapshots"] = {"dir": str(folder)}
    return write(tmp_path, config)


def test_a_snapshot_dir_under_a_regular_file(tmp_path: Path, a_file: Path) -> None:
    path = with_snapshots(tmp_path, a_file / "snaps")
    found = one_problem(path, "cameras.front.snapshots.dir", "dir", "snapshots")
    assert f"cannot be created: {a_file} is not a folder" in found


def test_a_snapshot_dir_in_a_read_only_folder(tmp_path: Path, read_only_dir: Path) -> None:
    path = with_snapshots(tmp_path, read_only_dir)
    found = one_problem(path, "cameras.front.snapshots.dir", "dir", "snapshots")
    assert "cannot be created: cannot write in" in found and "Operation not permitted" in found


def test_a_writable_snapshot_dir_passes(tmp_path: Path) -> None:
    load_checked(with_snapshots(tmp_path, tmp_path / "snaps"))


# --- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("certs"))


def with_tls(tmp_path: Path, **tls: Path) -> Path:
    config = base(tmp_path)
    config["mqtt"] = {"port": 8883, "tls": {k: str(v) for k, v in tls.items()}}
    return write(tmp_path, config)


def test_good_tls_files_pass(tmp_path: Path, certs: Certs) -> None:
    load_checked(with_tls(tmp_path, ca=certs.ca, cert=certs.client_cert, key=certs.client_key))


def test_a_ca_that_is_not_a_certificate(tmp_path: Path, certs: Certs) -> None:
    path = with_tls(tmp_path, ca=certs.client_key)
    found = one_problem(path, "mqtt.tls.ca", "ca")
    assert f"{certs.client_key} holds no PEM certificate" in found


def test_a_client_key_of_another_certificate(tmp_path: Path, certs: Certs) -> None:
    path = with_tls(tmp_path, ca=certs.ca, cert=certs.client_cert, key=certs.server_key)
    found = one_problem(path, "mqtt.tls.key", "key")
    assert f"{certs.server_key} is not the private key of the certificate" in found


def test_a_garbage_key(tmp_path: Path, certs: Certs) -> None:
    garbage = tmp_path / "garbage.key"
    garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n")
    path = with_tls(tmp_path, cert=certs.client_cert, key=garbage)
    assert f"{garbage} holds no PEM private key" in one_problem(path, "mqtt.tls.key", "key")


def test_a_garbage_client_certificate(tmp_path: Path, certs: Certs) -> None:
    path = with_tls(tmp_path, cert=certs.client_key, key=certs.client_key)
    found = one_problem(path, "mqtt.tls.cert", "cert")
    assert f"{certs.client_key} holds no PEM certificate" in found


def test_an_encrypted_key(tmp_path: Path, certs: Certs) -> None:
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(
        ["openssl", "pkey", "-in", str(certs.client_key), "-aes256", "-passout", "pass:secret",
         "-out", str(encrypted)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    path = with_tls(tmp_path, cert=certs.client_cert, key=encrypted)
    found = one_problem(path, "mqtt.tls.key", "key")
    assert "is encrypted with a passphrase" in found


def test_the_streams_tls_files_are_checked_too(tmp_path: Path, certs: Certs) -> None:
    config = base(tmp_path)
    tls = {"ca": str(certs.ca), "cert": str(certs.client_cert), "key": str(certs.server_key)}
    config["outputs"] = {"nats": {"servers": ["tls://nats.example:4222"], "tls": tls}}
    found = one_problem(write(tmp_path, config), "outputs.nats.tls.key", "key")
    assert f"{certs.server_key} is not the private key of the certificate" in found


# --- HTTP ports ---------------------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("section", ["metrics", "debug_view"])
def test_a_port_in_use(tmp_path: Path, taken_port: int, section: str) -> None:
    config = base(tmp_path)
    config[section] = {"port": taken_port}
    path = write(tmp_path, config)
    result = check(path)
    assert result.returncode == 2, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"error: {path}:{line_of(path, 'port', section)}:"), first
    assert f": {section}.port: cannot serve HTTP on 127.0.0.1:{taken_port}" in first
    assert "Address already in use" in first


def test_metrics_and_debug_view_may_share_a_port(tmp_path: Path) -> None:
    port = free_port()
    config = base(tmp_path)
    config["metrics"] = {"port": port}
    config["debug_view"] = {"port": port}
    load_checked(write(tmp_path, config))
    # released: the daemon can bind it next
    WebServer("127.0.0.1", port, []).server_close()


def test_a_host_not_on_this_machine(tmp_path: Path) -> None:
    config = base(tmp_path)
    config["metrics"] = {"host": "192.0.2.1", "port": free_port(), "insecure": True}
    found = one_problem(write(tmp_path, config), "metrics.host", "host", "metrics")
    assert "cannot serve HTTP on 192.0.2.1" in found


def test_a_reload_does_not_trip_over_the_ports_the_daemon_holds(tmp_path: Path) -> None:
    config = base(tmp_path)
    config["metrics"] = {"port": free_port()}
    path = write(tmp_path, config)
    running = load_checked(path)
    assert running.metrics is not None
    server = WebServer("127.0.0.1", running.metrics.port, [])
    try:
        assert "Address already in use" in problems(path)[0]
        assert load_checked(path, serving=running).metrics == running.metrics
    finally:
        server.server_close()


def test_a_sighup_reload_of_a_daemon_with_metrics_is_applied(tmp_path: Path) -> None:
    config = base(tmp_path)
    config["models"]["coco"]["threads"] = 1
    config["metrics"] = {"port": free_port()}
    config["cameras"]["front"]["source"] = {"uri": str(CLIP), "loop": True}
    path = write(tmp_path, config)
    daemon = Daemon(path)
    try:
        assert daemon.logged("HTTP on http://127.0.0.1", 60), daemon.stderr
        config["cameras"]["front"]["detect"]["min_score"] = 0.4
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        daemon.reload()
        assert daemon.wait_for(lambda ev: any(e["kind"] == "config_reload" for e in ev), 60)
        (event,) = daemon.kinds("config_reload")
        assert event["status"] == "ok", event
        assert event["updated"] == ["front"]
    finally:
        daemon.terminate(10)


# --- geometry against the picture ---------------------------------------------------------

# vtest.mp4 is 768x576
OUTSIDE = [[800, 10], [900, 10], [900, 100]]
INSIDE = [[0, 0], [640, 0], [640, 480]]


def with_geometry(
    tmp_path: Path, source: dict[str, Any], zones: dict[str, Any], lines: dict[str, Any]
) -> Path:
    config = base(tmp_path)
    config["cameras"]["front"].update(source=source, zones=zones, lines=lines)
    return write(tmp_path, config)


def test_pixel_zones_and_lines_outside_a_file_picture(tmp_path: Path) -> None:
    path = with_geometry(
        tmp_path,
        {"uri": str(CLIP)},
        {"inside": {"polygon": INSIDE}, "away": {"polygon": OUTSIDE}},
        {
            "gate": {"points": [[10, 300], [700, 300]]},
            "beyond": {"points": [[800, 600], [900, 700]]},
            "far": {"points": [[800, 0], [790, 100]], "segment": False},
            "steep": {"points": [[800, 0], [801, 100]], "segment": False},
        },
    )
    found = problems(path)
    where = f"lies wholly outside the 768x576 picture of {CLIP}"
    # the infinite line through "far" crosses the picture, the one through "steep" does not
    expected = [
        ("polygon", "away", "zones.away.polygon"),
        ("points", "beyond", "lines.beyond.points"),
        ("points", "steep", "lines.steep.points"),
    ]
    assert len(found) == len(expected), found
    for problem, (key, after, field) in zip(found, expected, strict=True):
        assert problem.startswith(f"{path}:{line_of(path, key, after)}:"), problem
        assert problem.endswith(f": cameras.front.{field}: {where}"), problem


def test_a_usb_camera_with_a_size_is_checked(tmp_path: Path) -> None:
    source = {"uri": "/dev/video42", "usb": {"width": 640, "height": 480}}
    path = with_geometry(
        tmp_path, source, {"away": {"polygon": [[0, 500], [10, 500], [10, 600]]}}, {}
    )
    assert "outside the 640x480 picture" in one_problem(
        path, "cameras.front.zones.away.polygon", "polygon"
    )


def test_geometry_is_not_checked_where_the_picture_is_unknown(tmp_path: Path) -> None:
    zones = {"away": {"polygon": OUTSIDE}}
    load_checked(with_geometry(tmp_path, {"uri": "rtsp://cam.local/live"}, zones, {}))
    # a file that is not there: that is the one problem, not its geometry
    absent = with_geometry(tmp_path, {"uri": str(tmp_path / "absent.mp4")}, zones, {})
    assert "file not found" in one_problem(absent, "cameras.front.source.uri", "uri")


# --- file sources -------------------------------------------------------------------------


def test_a_file_source_that_is_not_there(tmp_path: Path) -> None:
    config = base(tmp_path)
    config["cameras"]["front"]["source"] = {"uri": "clips/absent.mp4"}
    path = write(tmp_path, config)
    problem = one_problem(path, "cameras.front.source.uri", "uri")
    # the path as the daemon would open it: relative to the config file
    assert problem.endswith(f"file not found: {tmp_path / 'clips' / 'absent.mp4'}"), problem


def not_a_video(folder: Path, what: str) -> Path:
    if what == "a folder":
        return folder
    target = folder / "clip.mp4"
    target.write_bytes(b"" if what == "empty" else (ROOT / "README.md").read_bytes())
    return target


@pytest.mark.parametrize(
    ("what", "message"),
    [("a folder", "is not a file"), ("text", "cannot open"), ("empty", "cannot open")],
)
def test_a_file_source_that_is_not_a_video(tmp_path: Path, what: str, message: str) -> None:
    folder = tmp_path / "media"
    folder.mkdir()
    config = base(tmp_path)
    config["cameras"]["front"]["source"] = {"uri": str(not_a_video(folder, what))}
    problem = one_problem(write(tmp_path, config), "cameras.front.source.uri", "uri")
    assert message in problem, problem


def test_kind_file_with_a_network_address(tmp_path: Path) -> None:
    config = base(tmp_path)
    config["cameras"]["front"]["source"] = {"uri": "rtsp://cam.local/live", "kind": "file"}
    problem = one_problem(write(tmp_path, config), "cameras.front.source.uri", "uri")
    assert "network address" in problem, problem


def test_a_disabled_camera_with_a_missing_file_passes(tmp_path: Path) -> None:
    config = base(tmp_path)
    config["cameras"]["back"] = {
        "enabled": False,
        "source": {"uri": str(tmp_path / "absent.mp4")},
        "detect": {"model": "coco"},
    }
    load_checked(write(tmp_path, config))


# --- manifest labels ----------------------------------------------------------------------


def test_every_shipped_label_is_valid() -> None:
    from edged.models.manifest import load_manifest

    labels = load_manifest(MODEL).labels
    assert len(labels) == 80 and "traffic light" in labels and "teddy bear" in labels


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("cars/vans", "contains '/'"),
        ("car+", "contains '+'"),
        ("#1", "contains '#'"),
        ("", "is empty"),
        (" car", "starts or ends with whitespace"),
        ("car\t", "starts or ends with whitespace"),
        ("car\x00park", "contains '\\x00'"),
        ("two\nlines", "contains '\\n'"),
        ("non\u00a0breaking", "contains '\\xa0'"),
    ],
    ids=[
        "slash",
        "plus",
        "hash",
        "empty",
        "leading-space",
        "trailing-tab",
        "nul",
        "newline",
        "nbsp",
    ],
)
def test_a_label_that_cannot_be_a_topic_level_is_refused(
    tmp_path: Path, label: str, message: str
) -> None:
    from edged.models.manifest import ModelError, load_manifest

    labels = yaml.safe_load(MODEL.with_suffix(".yaml").read_text())["labels"]
    labels[3] = label
    model = model_beside(tmp_path, labels=labels)
    with pytest.raises(ModelError) as err:
        load_manifest(model)
    text = str(err.value)
    assert text.startswith(f"{model.with_suffix('.yaml')}: labels.3: label {label!r}"), text
    assert message in text
    # and edged check says so, at the model's path
    path = write(tmp_path, base(tmp_path, model))
    assert message in one_problem(path, "models.coco.path", "path", "coco")


def test_an_unknown_class_names_the_closest_labels(tmp_path: Path) -> None:
    config = base(tmp_path)
    config["cameras"]["front"]["detect"]["classes"] = ["persn", "car", "zebraa", "xyz"]
    problem = one_problem(write(tmp_path, config), "cameras.front.detect.classes", "classes")
    assert "'persn' (did you mean 'person'?)" in problem, problem
    assert "'zebraa' (did you mean 'zebra'?)" in problem, problem
    # nothing close: no guess
    assert "'xyz', " in problem, problem
