"""The checks that need the models loaded (``edged check``, and a reload before it applies)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

from edged.config import Config, ConfigError, load
from edged.config.errors import FieldError
from edged.config.loader import place_of


def model_problems(config: Config) -> list[str]:
    """Problems only visible with the models loaded: files, manifests, labels, geometry;
    each as ``file:line:col: field: message``."""
    from edged.camera.analytics import CameraAnalytics
    from edged.models.detector import ADAPTERS
    from edged.models.manifest import ModelError, load_manifest
    from edged.models.segmenter import SEMANTIC_FAMILIES

    problems: list[FieldError] = []
    labels: dict[str, list[str]] = {}
    families: dict[str, str] = {}
    for name, model in config.models.items():
        try:
            manifest = load_manifest(model.path)
        except ModelError as exc:
            problems.append(FieldError(("models", name, "path"), str(exc)))
            continue
        labels[name], families[name] = manifest.labels, manifest.family
    for name, cam in config.cameras.items():
        used: list[tuple[str, str, Collection[str]]] = [("detect", cam.detect.model, ADAPTERS)]
        if cam.segment is not None:
            used.append(("segment", cam.segment.model, SEMANTIC_FAMILIES))
        for section, used_model, allowed in used:
            if used_model in families and families[used_model] not in allowed:
                problems.append(
                    FieldError(
                        ("cameras", name, section, "model"),
                        f"{used_model} is a {families[used_model]} model; {section} needs one of "
                        f"{', '.join(sorted(allowed))}",
                    )
                )
    for name, cam in config.cameras.items():
        if cam.detect.model in labels:
            try:
                CameraAnalytics(name, cam, labels[cam.detect.model])
            except FieldError as exc:
                problems.append(exc)
    return [f"{place_of(config, p.loc)}: {p}" for p in problems]


def load_checked(path: str | Path, overrides: Iterable[str] = ()) -> Config:
    """``load`` plus ``model_problems``: the config ``edged check`` accepts, or ConfigError."""
    config = load(path, overrides)
    problems = model_problems(config)
    if problems:
        raise ConfigError(problems)
    return config
