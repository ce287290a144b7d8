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


def test_calibrate_for_tensorrt_gives_symmetric_int8_that_runs_on_the_cpu(tmp_path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    from edged.config.model import ModelConfig
    from edged.models.detector import DetectRequest, load_detector
    from tests.paths import CLIP

    out = tmp_path / "nd-int8.onnx"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edged",
            "calibrate",
            str(MODEL),
            "--from",
            str(CLIP),
            "--frames",
            "20",
            "--target",
            "tensorrt",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "int8 symmetric activations" in result.stdout
    model = onnx.load(str(out))
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    zero_points = [
        consts[n.input[2]]
        for n in model.graph.node
        if n.op_type == "QuantizeLinear" and len(n.input) > 2
    ]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    detector = load_detector(ModelConfig(path=out, backend="cpu"))
    assert detector.manifest.precision == "int8"
    import cv2

    _, image = cv2.VideoCapture(str(CLIP)).read()
    people = detector.detect([DetectRequest(image, 0.5, 0.5)])[0].detections
    assert (people.class_id == 0).sum() >= 3


def test_calibrate_without_frames_is_a_usage_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edged", "calibrate", str(MODEL)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--from" in result.stderr
