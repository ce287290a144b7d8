"""``edged engine build`` where there is no GPU: clear errors, never a fake plan."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.paths import MODEL


def build(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "edged",
            "engine",
            "build",
            str(MODEL),
            "--cache-dir",
            str(tmp_path),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_tensorrt_says_how_to_get_it(tmp_path: Path) -> None:
    result = build(tmp_path, "--precision", "fp16")
    assert result.returncode == 1
    assert "TensorRT is not installed" in result.stderr
    assert not list(tmp_path.rglob("*.plan"))


def test_int8_needs_an_int8_model(tmp_path: Path) -> None:
    result = build(tmp_path, "--precision", "int8")
    assert result.returncode == 1
    assert "is fp32; precision int8" in result.stderr and "edged calibrate" in result.stderr


def test_graph_preprocessing_is_prepared_before_the_build(tmp_path: Path) -> None:
    result = build(tmp_path, "--precision", "fp16", "--graph-preprocess")
    assert result.returncode == 1 and "TensorRT is not installed" in result.stderr
    assert list((tmp_path / "prepared").glob("nanodet-g-416-*.onnx"))
