"""The checks beyond the config's own: ``edged check``, and a reload before it applies.

``model_problems`` loads every model (on the CPU, run once) and checks what the cameras ask
of it; ``start_problems`` looks at what the daemon opens at start: the journal, snapshot
folders, the broker's TLS files, the HTTP ports, file sources, and pixel geometry against
the picture.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from pathlib import Path

from edged.config import Config, ConfigError, load
from edged.config.errors import FieldError
from edged.config.loader import place_of
from edged.config.root import Loc


def model_problems(config: Config) -> list[str]:
    """Problems only visible with the models loaded: files, manifests, labels, geometry;
    each as ``file:line:col: field: message``."""
    from edged.camera.analytics import CameraAnalytics
    from edged.models.detector import ADAPTERS
    from edged.models.manifest import ModelError
    from edged.models.segmenter import SEMANTIC_FAMILIES
    from edged.models.verify import verify_model

    problems: list[FieldError] = []
    labels: dict[str, list[str]] = {}
    floors: dict[str, dict[str, float]] = {}
    families: dict[str, str] = {}
    for name, model in config.models.items():
        try:
            manifest = verify_model(model)
        except ModelError as exc:
            problems.append(FieldError(("models", name, "path"), str(exc)))
            continue
        labels[name], families[name] = manifest.labels, manifest.family
        floors[name] = manifest.min_scores
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
                CameraAnalytics(name, cam, labels[cam.detect.model], floors[cam.detect.model])
            except FieldError as exc:
                problems.append(exc)
    return [f"{place_of(config, p.loc)}: {p}" for p in problems]


def start_problems(config: Config, serving: Config | None = None) -> list[str]:
    """What would fail when the daemon starts, each as ``file:line:col: field: message``.
    ``serving``: the config of the daemon running now (a reload), which holds its ports."""
    from edged.service.check_frames import frame_problems
    from edged.service.check_paths import path_problems
    from edged.service.check_ports import port_problems
    from edged.service.check_sources import source_problems
    from edged.service.check_tls import tls_problems

    found: list[tuple[Loc, str]] = path_problems(config)
    if config.mqtt is not None and config.mqtt.tls is not None:
        found += tls_problems(config.mqtt.tls)
    for name in ("nats", "redis"):
        output = getattr(config.outputs, name)
        if output is not None and output.tls is not None:
            found += tls_problems(output.tls, ("outputs", name, "tls"))
    found += port_problems(config, serving)
    for name, cam in config.cameras.items():
        problems, size = source_problems(name, cam, decode=serving is None)
        # a source that cannot run has no picture to place the geometry in
        found += problems or frame_problems(name, cam, size)
    return [f"{place_of(config, loc)}: {FieldError(loc, message)}" for loc, message in found]


def load_checked(
    path: str | Path, overrides: Iterable[str] = (), serving: Config | None = None
) -> Config:
    """``load`` plus ``model_problems`` and ``start_problems``: the config ``edged check``
    accepts, or ConfigError."""
    config = load(path, overrides)
    problems = model_problems(config) + start_problems(config, serving)
    if problems:
        raise ConfigError(problems)
    return config
