"""YAML → ``Config``: environment interpolation, ``--set`` overrides, and errors that say where.

Every error names the file, line and column and the dotted field, e.g.
``configs/demo.yaml:14:7: cameras.front.zones.door.polygon: a polygon needs at least 3 points``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from edged.config.errors import dotted
from edged.config.root import Config, Loc

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """One or more problems in a config, each already formatted with its place."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Places:
    """Where each value came from: ``file:line:col`` or ``--set key``."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.at: dict[Loc, str] = {}

    def mark(self, loc: Loc, node: yaml.Node) -> None:
        m = node.start_mark
        self.at[loc] = f"{self.file}:{m.line + 1}:{m.column + 1}"

    def of(self, loc: Loc) -> str:
        """The place of ``loc`` or of its nearest ancestor that has one."""
        for n in range(len(loc), -1, -1):
            if loc[:n] in self.at:
                return self.at[loc[:n]]
        return self.file


def _interpolate(text: str, env: dict[str, str], missing: list[str]) -> str:
    def sub(m: re.Match[str]) -> str:
        name, default = m.group(1), m.group(2)
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                missing.append(name)
                return m.group(0)
            return default
        return value

    return _ENV.sub(sub, text)


def _build(
    loader: yaml.SafeLoader,
    node: yaml.Node,
    loc: Loc,
    places: _Places,
    env: dict[str, str],
    problems: list[str],
) -> Any:
    places.mark(loc, node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key == "<<":
                raise ConfigError([f"{places.of(loc)}: YAML merge keys are not supported"])
            if key in out:
                places.mark((*loc, key), key_node)
                problems.append(f"{places.of((*loc, key))}: {dotted((*loc, key))}: duplicate key")
                continue
            out[key] = _build(loader, value_node, (*loc, key), places, env, problems)
            places.mark((*loc, key), key_node)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [
            _build(loader, item, (*loc, i), places, env, problems)
            for i, item in enumerate(node.value)
        ]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, str) and "${" in value:
        missing: list[str] = []
        value = _interpolate(value, env, missing)
        for name in missing:
            problems.append(
                f"{places.of(loc)}: {dotted(loc)}: environment variable {name} is not set "
                f"(write ${{{name}:-default}} for a default)"
            )
    return value


def _apply_override(data: dict[str, Any], spec: str, places: _Places) -> None:
    key, sep, raw = spec.partition("=")
    if not sep or not key.strip():
        raise ConfigError([f"--set {spec}: expected dotted.key=value"])
    parts = key.strip().split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part) if isinstance(node, dict) else None
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError([f"--set {spec}: {'.'.join(parts[: i + 1])} is not a mapping"])
        node = nxt
    try:
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError([f"--set {spec}: value is not valid YAML: {exc}"]) from exc
    places.at[tuple(parts)] = f"--set {key.strip()}"


def _describe(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required field is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def load(
    path: str | Path,
    overrides: Iterable[str] = (),
    env: dict[str, str] | None = None,
) -> Config:
    """Read, interpolate, override and validate a config file; raise ``ConfigError``."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read config: {exc.strerror or exc}"]) from exc
    places = _Places(file)
    problems: list[str] = []
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = (
            {}
            if node is None
            else _build(loader, node, (), places, env or dict(os.environ), problems)
        )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        raise ConfigError([f"{where}: YAML syntax: {exc.problem or exc}"]) from exc
    finally:
        loader.dispose()
    if problems:
        raise ConfigError(problems)
    if not isinstance(data, dict):
        raise ConfigError([f"{file}:1:1: the config must be a mapping of sections"])
    for spec in overrides:
        _apply_override(data, spec, places)
    try:
        config = Config.model_validate(data, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(
            [
                f"{places.of(loc)}: {dotted(loc)}: {_describe(e)}"
                for e in exc.errors()
                for loc in [_data_loc(data, e["loc"])]
            ]
        ) from None
    refs = config.reference_errors()
    if refs:
        raise ConfigError([f"{places.of(loc)}: {dotted(loc)}: {msg}" for loc, msg in refs])
    config._places = places.at
    return config


def _data_loc(data: Any, loc: Loc) -> Loc:
    """``loc`` without the tags pydantic adds for tagged unions (``scene.retail_shelf.slots``
    is ``scene.slots`` in the file), so an error names the key as written."""
    out: list[str | int] = []
    node = data
    for part in loc:
        present = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if present:
            node = node[part]
        elif isinstance(node, dict) and isinstance(part, str) and part in node.values():
            continue  # the tag of a tagged union: the value of its discriminator key
        else:
            node = None
        out.append(part)
    return tuple(out)


def place_of(config: Config, loc: Loc) -> str:
    """``file:line:col`` (or ``--set key``) of a field of a loaded config, or of its parent."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in config._places:
            return config._places[loc[:n]]
    return "config"
