"""The manifest beside every shipped model: what it is, how to feed it, how to read it."""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import AfterValidator, Field, ValidationError, model_validator

from edged.config.base import StrictModel
from edged.core.files import sha256_of

T = TypeVar("T", bound=StrictModel)


class ModelError(Exception):
    """A model file or its manifest is missing, corrupt or inconsistent."""


class InputSpec(StrictModel):
    name: str
    size: tuple[int, int] = Field(description="width, height")
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    color: Literal["BGR", "RGB"] = "BGR"
    resize: Literal["stretch", "letterbox"] = "stretch"
    pad_value: int = Field(114, ge=0, le=255, description="letterbox border grey level")
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


def _label(label: str) -> str:
    """A label becomes an MQTT topic level (``<camera>/snapshots/<label>``) and part of a
    snapshot's file name: words and spaces ("traffic light"), nothing that splits a topic,
    is a wildcard, or cannot be seen."""
    if not label:
        raise ValueError("label '' is empty: a label needs a name")
    if label != label.strip():
        raise ValueError(f"label {label!r} starts or ends with whitespace")
    bad = sorted({c for c in label if c in "/+#" or unicodedata.category(c)[0] in "CZ"} - {" "})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ValueError(
            f"label {label!r} contains {shown}: a label must have no '/', '+', '#', control "
            "or other invisible characters (spaces between words are fine)"
        )
    return label


Family = Literal["nanodet", "yolov5", "yolov8", "yolov8-seg", "rtdetr", "selfie"]


class Manifest(StrictModel):
    """``decode`` holds what the family's adapter needs to read the outputs; each adapter
    validates it with its own model, so a wrong key names the manifest and the field."""

    name: str
    family: Family
    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    license: str
    source: str
    precision: Literal["fp32", "fp16", "int8"] = "fp32"
    derived_from: str | None = Field(
        None, pattern=r"^[0-9a-f]{64}$", description="sha256 of the FP32 model this came from"
    )
    recipe: str | None = Field(None, description="how this file was made from derived_from")
    measured: str | None = Field(
        None, description="accuracy measured on real data, with the command that measured it"
    )
    input: InputSpec
    decode: dict[str, Any] = Field(default_factory=dict)
    labels: list[Annotated[str, AfterValidator(_label)]] = Field(min_length=1)
    min_scores: dict[str, Annotated[float, Field(gt=0.0, le=1.0)]] = Field(
        default_factory=dict,
        description="per label, the detection floor a camera gets by default (measured: how "
        "is in `measured`); labels not named get detect.min_score's default",
    )

    @model_validator(mode="after")
    def _floors_of_labels(self) -> Manifest:
        unknown = sorted(set(self.min_scores) - set(self.labels))
        if unknown:
            raise ValueError(f"min_scores names labels the model does not have: {unknown}")
        return self


def _message(error: Any) -> str:
    return str(error["msg"]).removeprefix("Value error, ")


def load_manifest(model_path: Path, verify: bool = True) -> Manifest:
    """Read ``<model>.yaml`` beside ``model_path`` and check that it describes that file."""
    if not model_path.is_file():
        raise ModelError(f"{model_path}: model file not found")
    manifest_path = model_path.with_suffix(".yaml")
    try:
        data = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelError(f"{manifest_path}: cannot read the model's manifest: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ModelError(f"{manifest_path}: not UTF-8 text at byte {exc.start}") from None
    except yaml.YAMLError as exc:
        raise ModelError(f"{manifest_path}: invalid YAML: {exc}") from exc
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {_message(e)}" for e in exc.errors()
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


def decode_spec(manifest: Manifest, model: type[T]) -> T:
    """The family-specific ``decode`` section, validated, with errors naming the manifest."""
    try:
        return model.model_validate(manifest.decode)
    except ValidationError as exc:
        problems = "; ".join(
            f"decode.{'.'.join(str(p) for p in e['loc'])}: {_message(e)}" for e in exc.errors()
        )
        raise ModelError(f"{manifest.file} manifest: {problems}") from None
