"""What the settings of every scene preset declare: the preset's name (its ``preset``
literal) and the kinds of alerts and scene events it can raise. Home Assistant's alert
entities and the event schema's kinds are read from these declarations."""

from __future__ import annotations

from typing import ClassVar, get_args

from edged.config.base import StrictModel


class PresetConfig(StrictModel):
    # each preset sets both, and a field ``preset: Literal["<name>"]``
    alerts: ClassVar[tuple[str, ...]]  # on ``<camera>/alerts/<kind>``
    event_kinds: ClassVar[tuple[str, ...]]  # the ``kind`` of its own events

    @classmethod
    def preset_name(cls) -> str:
        (name,) = get_args(cls.model_fields["preset"].annotation)
        return str(name)
