"""The shipped detector batches, and ``precision: auto`` runs its INT8 variant where the CPU
makes INT8 fast: the real model files, real frames, the real loading path."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from edged.config.model import ModelConfig
from edged.models.detector import DetectRequest, load_detector
from edged.models.int8_speed import time_pair
from edged.models.variants import choose_file, cpu_int8_features
from tests.paths import CLIP, MODEL

INT8 = MODEL.with_name("nanodet-g-416-int8.onnx")


def frames(n: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(CLIP))
    out = []
    for i in range(n * 10):
        ok, frame = cap.read()
        assert ok
        if i % 10 == 0:
            out.append(frame)
    cap.release()
    return out


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_a_batch_of_four_gives_what_four_batches_of_one_give(precision: str) -> None:
    detector = load_detector(
        ModelConfig(path=MODEL, backend="cpu", precision=precision, max_batch=4)
    )
    assert detector.max_batch == 4 and detector.engine.max_batch is None
    assert detector.manifest.precision == precision
    requests = [DetectRequest(f, 0.3, 0.5) for f in frames(4)]
    batched = detector.detect(requests)
    assert sum(len(d.detections) for d in batched) >= 8, "real people in real frames"
    for request, together in zip(requests, batched, strict=True):
        (alone,) = detector.detect([request])
        np.testing.assert_allclose(together.detections.xyxy, alone.detections.xyxy, atol=1e-3)
        np.testing.assert_allclose(together.detections.score, alone.detections.score, atol=1e-5)
        assert list(together.detections.class_id) == list(alone.detections.class_id)


def test_auto_picks_int8_here_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    """With VNNI/AMX by the CPU's flags; without, by the speed check, which on a CPU that
    runs INT8 no faster keeps FP32 (the next tests cover both answers)."""
    with caplog.at_level(logging.INFO, logger="edged.models.detector"):
        detector = load_detector(ModelConfig(path=MODEL, backend="cpu"))
    (line,) = [r.getMessage() for r in caplog.records if "precision auto" in r.getMessage()]
    if cpu_int8_features():
        assert "int8 (nanodet-g-416-int8.onnx)" in line and "VNNI" in line
    else:
        assert "measured on this CPU" in line, line
        if "precision auto: fp32" in line:
            pytest.skip(f"this CPU runs INT8 no faster: {line}")
    assert detector.manifest.precision == "int8"
    assert detector.manifest.file == INT8.name


def slower_int8(fp32: Path, int8: Path) -> tuple[float, float]:
    return 40.0, 38.0


def faster_int8(fp32: Path, int8: Path) -> tuple[float, float]:
    return 40.0, 16.0


def test_auto_picks_fp32_when_told_the_cpu_has_no_vnni_and_int8_measures_no_faster(
    tmp_path: Path,
) -> None:
    config = ModelConfig(path=MODEL, backend="cpu", cache_dir=tmp_path)
    chosen = choose_file(config, "cpu", probe=lambda: [], timer=slower_int8)
    assert chosen.path == MODEL and chosen.manifest.precision == "fp32"
    assert "no VNNI or AMX" in chosen.why and INT8.name in chosen.why
    assert "38.0 ms per frame against 40.0 ms" in chosen.why


def test_without_vnni_a_faster_int8_is_chosen_and_the_check_is_remembered(
    tmp_path: Path,
) -> None:
    calls: list[tuple[Path, Path]] = []

    def timer(fp32: Path, int8: Path) -> tuple[float, float]:
        calls.append((fp32, int8))
        return faster_int8(fp32, int8)

    config = ModelConfig(path=MODEL, backend="cpu", cache_dir=tmp_path)
    first = choose_file(config, "cpu", probe=lambda: [], timer=timer)
    assert first.path == INT8 and "16.0 ms per frame against 40.0 ms" in first.why
    assert calls == [(MODEL, INT8)]
    again = choose_file(config, "cpu", probe=lambda: [], timer=timer)
    assert again.path == INT8 and calls == [(MODEL, INT8)]  # not measured twice
    assert f"remembered in {tmp_path / 'int8-speed.json'}" in again.why
    # another cache (another machine's) measures for itself
    other = ModelConfig(path=MODEL, backend="cpu", cache_dir=tmp_path / "other")
    assert choose_file(other, "cpu", probe=lambda: [], timer=slower_int8).path == MODEL


def test_the_speed_check_times_both_real_files() -> None:
    fp32_ms, int8_ms = time_pair(MODEL, INT8, runs=2)
    assert 0.5 < fp32_ms < 5000 and 0.5 < int8_ms < 5000


def test_an_unwritable_cache_is_logged_and_the_measurement_still_decides(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    config = ModelConfig(path=MODEL, backend="cpu", cache_dir=blocker / "cache")
    with caplog.at_level(logging.WARNING, logger="edged.models.int8_speed"):
        chosen = choose_file(config, "cpu", probe=lambda: [], timer=faster_int8)
    assert chosen.path == INT8
    assert any("cannot remember the INT8 speed check" in r.getMessage() for r in caplog.records)


def test_fp32_is_the_fp32_file_and_gpus_keep_the_file_they_are_given() -> None:
    vnni = ["AVX-512 VNNI"]
    asked = choose_file(ModelConfig(path=MODEL, precision="fp32"), "cpu", probe=lambda: vnni)
    assert asked.path == MODEL and asked.why == ""
    gpu = choose_file(ModelConfig(path=MODEL, backend="cuda"), "cuda", probe=lambda: vnni)
    assert gpu.path == MODEL


def test_int8_by_name_finds_the_variant() -> None:
    chosen = choose_file(ModelConfig(path=MODEL, precision="int8"), "cpu", probe=lambda: [])
    assert chosen.path == INT8 and chosen.manifest.precision == "int8"


def test_only_a_variant_made_from_this_very_file_is_taken(tmp_path: Path) -> None:
    for f in (MODEL, MODEL.with_suffix(".yaml"), INT8, INT8.with_suffix(".yaml")):
        shutil.copy(f, tmp_path / f.name)
    config = ModelConfig(path=tmp_path / MODEL.name)
    vnni = ["AVX-512 VNNI"]
    assert choose_file(config, "cpu", probe=lambda: vnni).path == tmp_path / INT8.name
    # an INT8 file made from some other FP32 model (its derived_from names another sha256)
    manifest = tmp_path / INT8.with_suffix(".yaml").name
    text = manifest.read_text()
    sha = text.split("derived_from: ")[1][:64]
    manifest.write_text(text.replace(f"derived_from: {sha}", f"derived_from: {'0' * 64}"))
    chosen = choose_file(config, "cpu", probe=lambda: vnni)
    assert chosen.path == tmp_path / MODEL.name and "no INT8 variant" in chosen.why


def test_the_cpu_probe_reads_cpuinfo_flags(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f avx512_vnni\n")
    assert cpu_int8_features(info) == ["AVX-512 VNNI"]
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2\n")
    assert cpu_int8_features(info) == []
    assert cpu_int8_features(tmp_path / "missing") == []
