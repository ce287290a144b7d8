"""A camera's zones and lines written into its YAML file, the rest of the file kept as it was
(comments, order, ``${ENV}`` references): what the console's editor saves.

Only the geometry and a line's ``in`` direction come from the editor; a zone's or line's other
settings (classes, loiter_s, hysteresis…) stay. A zone or line the editor no longer has is
removed; a new one gets just its geometry, so the defaults apply."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from edged.config.loader import ConfigError

Point = tuple[float, float]
DIGITS = 4  # a ten-thousandth of the picture: well under a pixel at 4K


@dataclass(frozen=True, slots=True)
class LineEdit:
    points: tuple[Point, Point]
    in_direction: str  # left_to_right | right_to_left | top_to_bottom | bottom_to_top


@dataclass(frozen=True, slots=True)
class Geometry:
    """One camera's zones (polygons) and lines, relative to the picture (0–1)."""

    zones: Mapping[str, Sequence[Point]]
    lines: Mapping[str, LineEdit]


def _yaml() -> YAML:
    y = YAML()  # round trip
    y.preserve_quotes = True
    y.width = 4096  # a polygon stays on its line
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _points(points: Sequence[Point]) -> CommentedSeq:
    out = CommentedSeq()
    for x, y in points:
        pair = CommentedSeq([round(float(x), DIGITS), round(float(y), DIGITS)])
        pair.fa.set_flow_style()
        out.append(pair)
    out.fa.set_flow_style()
    return out


def _section(camera: CommentedMap, key: str) -> CommentedMap:
    section = camera.get(key)
    if section is None:
        section = camera[key] = CommentedMap()
    if not isinstance(section, CommentedMap):
        raise ConfigError([f"cameras.{key}: not a mapping, so the editor cannot write into it"])
    return section


def _apply(section: CommentedMap, wanted: Mapping[str, Any], fill: Any) -> None:
    for name in [n for n in section if n not in wanted]:
        del section[name]
    for name, value in wanted.items():
        entry = section.get(name)
        if not isinstance(entry, CommentedMap):
            entry = section[name] = CommentedMap()
        fill(entry, value)


def _zone(entry: CommentedMap, polygon: Sequence[Point]) -> None:
    entry["polygon"] = _points(polygon)


def _line(entry: CommentedMap, line: LineEdit) -> None:
    entry["points"] = _points(line.points)
    directions = CommentedMap({"in": line.in_direction})
    directions.fa.set_flow_style()
    entry["directions"] = directions  # 'out' is the opposite of 'in'


def set_geometry(text: str, camera: str, geometry: Geometry) -> str:
    """``text`` (a config file) with camera ``camera``'s zones and lines replaced."""
    y = _yaml()
    try:
        data = y.load(text)
    except YAMLError as exc:
        raise ConfigError([f"the config file is not valid YAML: {exc}"]) from None
    cameras = data.get("cameras") if isinstance(data, CommentedMap) else None
    if not isinstance(cameras, CommentedMap) or camera not in cameras:
        raise ConfigError([f"cameras.{camera}: not in the config file"])
    cam = cameras[camera]
    if not isinstance(cam, CommentedMap):
        raise ConfigError([f"cameras.{camera}: not a mapping"])
    _apply(_section(cam, "zones"), geometry.zones, _zone)
    _apply(_section(cam, "lines"), geometry.lines, _line)
    for key in ("zones", "lines"):
        if not cam[key]:
            del cam[key]
    out = io.StringIO()
    y.dump(data, out)
    return out.getvalue()


def snippet(geometry: Geometry) -> str:
    """The ``zones:`` and ``lines:`` sections alone, to paste under a camera."""
    y = _yaml()
    data = CommentedMap()
    if geometry.zones:
        zones = data["zones"] = CommentedMap()
        for name, polygon in geometry.zones.items():
            zones[name] = CommentedMap()
            _zone(zones[name], polygon)
    if geometry.lines:
        lines = data["lines"] = CommentedMap()
        for name, line in geometry.lines.items():
            lines[name] = CommentedMap()
            _line(lines[name], line)
    if not data:
        return "zones: {}\nlines: {}\n"
    out = io.StringIO()
    y.dump(data, out)
    return out.getvalue()
