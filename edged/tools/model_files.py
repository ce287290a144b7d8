"""The files a model conversion reads and writes: where the converted model goes, the manifest
beside it, and the source model loaded as a detector on the CPU."""

from __future__ import annotations

from pathlib import Path

import yaml

from edged.config.model import ModelConfig
from edged.core.files import sha256_of
from edged.models.detector import Detector, load_detector
from edged.models.manifest import load_manifest


class QuantizeError(Exception):
    """The model could not be converted, or the result is broken."""


def output_path(model_path: Path, out_path: Path | str | None, precision: str) -> Path:
    """``out_path``, by default ``<model>-<precision>.onnx`` beside the model; QuantizeError
    when it is not a .onnx file."""
    out = (
        Path(out_path) if out_path else model_path.with_name(f"{model_path.stem}-{precision}.onnx")
    )
    if out.suffix != ".onnx":
        raise QuantizeError(f"{out}: the output must be a .onnx file")
    return out


def write_manifest(source_model: Path | str, out_model: Path | str, precision: str) -> Path:
    """``<out_model>.yaml``: the source's manifest with ``file``, ``sha256``, ``precision``
    and ``derived_from`` (the source's sha256) set. The source manifest is verified first."""
    source_model, out_model = Path(source_model), Path(out_model)
    load_manifest(source_model)  # validates it and checks the source file's sha256
    data = yaml.safe_load(source_model.with_suffix(".yaml").read_text(encoding="utf-8"))
    source_sha = data["sha256"]
    data["file"] = out_model.name
    data["sha256"] = sha256_of(out_model)
    data["precision"] = precision
    data["derived_from"] = source_sha
    # what was measured of the source is not true of this file
    data.pop("measured", None)
    data.pop("recipe", None)
    path = out_model.with_suffix(".yaml")
    header = (
        f"# {precision.upper()} model derived from {source_model.name} (sha256 {source_sha})\n"
        "# by edged (edged convert / edged calibrate); regenerate it rather than editing it.\n"
    )
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True), "utf-8")
    return path


def load_cpu_detector(path: Path | str, threads: int = 2) -> Detector:
    """``load_detector`` on ONNX Runtime's CPU provider."""
    # the file itself, whatever its precision: a tool compares exactly the files it is given
    return load_detector(
        ModelConfig(path=Path(path), backend="cpu", threads=threads, precision=None)
    )
