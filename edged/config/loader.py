"""YAML → ``Config``: environment interpolation, ``--set`` overrides, and errors that say where.

Every error names the file, line and column and the dotted field, e.g.
``configs/demo.yaml:14:7: cameras.front.zones.door.polygon: a polygon needs at least 3 points``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from edged.config.errors import dotted
from edged.config.root import Config, Loc

M = TypeVar("M", bound=BaseModel)
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_BOOL = "tag:yaml.org,2002:bool"


class _Loader(yaml.SafeLoader):
    """YAML as people write configs: only ``true`` and ``false`` are booleans (as in YAML
    1.2). PyYAML follows YAML 1.1, where ``on``, ``off``, ``yes`` and ``no`` are booleans too,
    which turned ``snapshots: {on: [new]}`` into a key ``True`` and ``blur: off`` into
    ``False``; a field that is a boolean still takes those words (pydantic reads them)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _BOOL]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


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


def _interpolate(text: str, env: Mapping[str, str], missing: list[str]) -> str:
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


# a device config is a few hundred values; far more means aliases that multiply (a "billion
# laughs"), and far deeper nesting than any section has means a mistake, not a config
MAX_VALUES = 100_000
MAX_DEPTH = 32


class _Builder:
    """YAML nodes → plain data, marking where each value is and collecting problems: a key
    that is not a plain value, a recursive or exploding alias, a value its tag cannot read."""

    def __init__(
        self, loader: yaml.SafeLoader, places: _Places, env: Mapping[str, str], problems: list[str]
    ) -> None:
        self.loader = loader
        self.places = places
        self.env = env
        self.problems = problems
        self._open: set[int] = set()  # the nodes being built: one met again is a cycle
        self._count = 0

    def build(self, node: yaml.Node, loc: Loc) -> Any:
        self.places.mark(loc, node)
        self._count += 1
        if self._count > MAX_VALUES:
            raise ConfigError(
                [
                    f"{self.places.of(loc)}: the config expands to more than {MAX_VALUES} "
                    "values (YAML aliases that repeat aliases?)"
                ]
            )
        if not isinstance(node, yaml.ScalarNode):
            if id(node) in self._open:
                raise ConfigError(
                    [
                        f"{self.places.of(loc)}: {dotted(loc) or 'the config'}: recursive YAML "
                        "alias (an anchor used inside its own value)"
                    ]
                )
            if len(loc) >= MAX_DEPTH:
                raise ConfigError(
                    [f"{self.places.of(loc)}: {dotted(loc)}: nested more than {MAX_DEPTH} deep"]
                )
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, loc)
            if isinstance(node, yaml.SequenceNode):
                return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
            assert isinstance(node, yaml.ScalarNode)  # PyYAML has no fourth kind of node
            return self._scalar(node, loc)
        finally:
            self._open.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.places.mark((*loc, "?"), key_node)
                kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
                self.problems.append(
                    f"{self.places.of((*loc, '?'))}: {dotted(loc) or 'the config'}: a key must "
                    f"be a plain value, not a {kind}"
                )
                continue
            key = self._construct(key_node, loc)
            if key == "<<":
                raise ConfigError([f"{self.places.of(loc)}: YAML merge keys are not supported"])
            if key in out:
                self.places.mark((*loc, key), key_node)
                self.problems.append(
                    f"{self.places.of((*loc, key))}: {dotted((*loc, key))}: duplicate key"
                )
                continue
            out[key] = self.build(value_node, (*loc, key))
            self.places.mark((*loc, key), key_node)
        return out

    def _construct(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except (ValueError, TypeError, AttributeError, OverflowError):
            # PyYAML's constructors fail on an explicit tag its text does not fit
            # (``!!float abc``, ``!!timestamp soon``) with plain Python errors
            m = node.start_mark
            self.problems.append(
                f"{self.places.file}:{m.line + 1}:{m.column + 1}: {dotted(loc) or 'the config'}: "
                f"{node.value!r} is not a valid {node.tag.rsplit(':', 1)[-1]}"
            )
            return None

    def _scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        value = self._construct(node, loc)
        if isinstance(value, str) and "${" in value:
            missing: list[str] = []
            value = _interpolate(value, self.env, missing)
            for name in missing:
                self.problems.append(
                    f"{self.places.of(loc)}: {dotted(loc)}: environment variable {name} is not "
                    f"set (write ${{{name}:-default}} for a default)"
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
        node[parts[-1]] = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([f"--set {spec}: value is not valid YAML: {exc.problem}"]) from None
    except yaml.reader.ReaderError as exc:
        raise ConfigError([f"--set {key.strip()}: value is not valid YAML: {exc.reason}"]) from None
    except RecursionError:
        raise ConfigError([f"--set {key.strip()}: value is nested too deeply"]) from None
    places.at[tuple(parts)] = f"--set {key.strip()}"


def _describe(err: ErrorDetails) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required field is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def _read(path: Path) -> str:
    file = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read config: {exc.strerror or exc}"]) from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line = raw.count(b"\n", 0, exc.start) + 1
        col = len(raw[line_start : exc.start].decode("utf-8", errors="replace")) + 1
        raise ConfigError(
            [f"{file}:{line}:{col}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8"]
        ) from None


def _text_place(file: str, text: str, position: int) -> str:
    line = text.count("\n", 0, position) + 1
    col = position - (text.rfind("\n", 0, position) + 1) + 1
    return f"{file}:{line}:{col}"


def _parse(text: str, places: _Places, env: Mapping[str, str]) -> Any:
    """The YAML text as plain data, every value's place marked in ``places``."""
    file = places.file
    problems: list[str] = []
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        raise ConfigError(
            [
                f"{_text_place(file, text, exc.position)}: YAML syntax: {exc.reason} "
                f"(U+{ord(text[exc.position]):04X})"
            ]
        ) from None
    try:
        node = loader.get_single_node()
        data = {} if node is None else _Builder(loader, places, env, problems).build(node, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        raise ConfigError([f"{where}: YAML syntax: {exc.problem or exc}"]) from exc
    except RecursionError:
        # the composer recurses once per level of nesting
        mark = loader.get_mark()
        raise ConfigError(
            [f"{file}:{mark.line + 1}:{mark.column + 1}: YAML nested too deeply"]
        ) from None
    finally:
        loader.dispose()
    if problems:
        raise ConfigError(problems)
    return data


def load(
    path: str | Path,
    overrides: Iterable[str] = (),
    env: dict[str, str] | None = None,
) -> Config:
    """Read, interpolate, override and validate a config file; raise ``ConfigError``."""
    config, places = _load(Config, path, overrides, env)
    refs = config.reference_errors()
    if refs:
        raise ConfigError([f"{places.of(loc)}: {dotted(loc)}: {msg}" for loc, msg in refs])
    config._places = places.at
    return config


def load_model(model: type[M], path: str | Path, env: dict[str, str] | None = None) -> M:
    """Another service's config file (``edged store``), read and checked the same way."""
    return _load(model, path, (), env)[0]


def _load(
    model: type[M], path: str | Path, overrides: Iterable[str], env: dict[str, str] | None
) -> tuple[M, _Places]:
    path = Path(path)
    file = str(path)
    places = _Places(file)
    data = _parse(_read(path), places, os.environ if env is None else env)
    if not isinstance(data, dict):
        raise ConfigError([f"{file}:1:1: the config must be a mapping of sections"])
    for spec in overrides:
        _apply_override(data, spec, places)
    try:
        config = model.model_validate(data, context={"base_dir": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(
            [
                f"{places.of(loc)}: {dotted(loc)}: {_describe(e)}"
                for e in exc.errors()
                for loc in [_data_loc(data, e["loc"])]
            ]
        ) from None
    return config, places


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
