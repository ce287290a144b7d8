"""The manifest beside every shipped model: what it is, how to feed it, how to read it."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError

from edged.config.base import StrictModel


class ModelError(Exception):
    """A model file or its manifest is missing, corrupt or inconsistent."""


class InputSpec(StrictModel):
    name: str
    size: tuple[int, int] = Field(description="width, height")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    color: Literal["BGR", "RGB"] = "BGR"
    resize: Literal["stretch"] = "stretch"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


class StrideOutputs(StrictModel):
    stride: int = Field(gt=0)
    scores: str
    boxes: str


class Manifest(StrictModel):
    name: str
    family: Literal["nanodet"]
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    license: str
    source: str
    input: InputSpec
    outputs: list[StrideOutputs]
    reg_max: int = Field(gt=0)
    labels: list[str] = Field(min_length=1)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_manifest(model_path: Path, verify: bool = True) -> Manifest:
    """Read ``<model>.yaml`` beside ``model_path`` and check that it describes that file."""
    if not model_path.is_file():
        raise ModelError(f"{model_path}: model file not found")
    manifest_path = model_path.with_suffix(".yaml")
    try:
        data = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"{manifest_path}: cannot read the model's manifest: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ModelError(f"{manifest_path}: invalid YAML: {exc}") from exc
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ModelError(f"{manifest_path}: {problems}") from None
    if manifest.file != model_path.name:
        raise ModelError(f"{manifest_path}: describes {manifest.file!r}, not {model_path.name!r}")
    if verify:
        actual = sha256_of(model_path)
        if actual != manifest.sha256:
            raise ModelError(
                f"{model_path}: sha256 {actual} does not match the manifest's {manifest.sha256} "
                "(corrupt or replaced file)"
            )
    return manifest
