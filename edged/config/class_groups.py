"""Class groups: one name for several detector labels, usable wherever a config lists
``classes`` (detection, zones, lines, scenes, privacy), so that a line counting vehicles
counts a car and a truck alike. ``vehicle`` is shipped; ``class_groups:`` adds or replaces."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from edged.config.base import NAME

# COCO's road vehicles with an engine (the traffic preset also counts bicycles)
DEFAULT_GROUPS: dict[str, list[str]] = {"vehicle": ["car", "truck", "bus", "motorcycle"]}


def check_groups(groups: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """Group names are plain words; members are labels, never other groups."""
    for name, members in groups.items():
        if not re.match(NAME, name):
            raise ValueError(f"group name {name!r} must match {NAME}")
        if not members:
            raise ValueError(f"group {name!r} names no labels")
    every = {**DEFAULT_GROUPS, **groups}
    for name, members in groups.items():
        nested = sorted(set(members) & set(every))
        if nested:
            raise ValueError(f"group {name!r} names groups {nested}: list their labels instead")
    return dict(groups)


def expand_classes(data: Any, groups: Mapping[str, list[str]]) -> Any:
    """``data`` (a raw config section) with the group names in every ``classes`` list (and
    each list of ``same_object``) replaced by their labels, in order, each label once; the
    input is not changed."""
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            if key == "classes" and isinstance(value, list):
                out[key] = _expand(value, groups)
            elif key == "same_object" and isinstance(value, list):
                out[key] = [_expand(v, groups) if isinstance(v, list) else v for v in value]
            else:
                out[key] = expand_classes(value, groups)
        return out
    if isinstance(data, list):
        return [expand_classes(item, groups) for item in data]
    return data


def _expand(names: list[Any], groups: Mapping[str, list[str]]) -> list[Any]:
    out: list[Any] = []
    for name in names:
        for label in groups.get(name, [name]) if isinstance(name, str) else [name]:
            if label not in out:
                out.append(label)
    return out
