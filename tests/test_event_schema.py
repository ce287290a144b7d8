"""The shipped JSON Schema v1 (edged/events/event-v1.schema.json) against events as edged
makes them; the demo and fault tests validate real published events with it too."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest

from edged.config.events import JournalConfig
from edged.config.scene_traffic import TrafficConfig
from edged.config.scenes import PRESETS
from edged.core.event import Event
from edged.outputs import schema as event_schema
from edged.outputs.journal import Journal
from edged.outputs.schema import GENERIC_KINDS, event_kinds, json_schema
from tests.schema import validator


def test_the_schema_is_shipped_valid_and_names_every_kind() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["v"] == {"const": 1, "description": "schema version"}
    assert set(schema["required"]) == {
        "v",
        "seq",
        "id",
        "ts",
        "frame_ts",
        "device",
        "camera",
        "kind",
    }
    assert "overflow" in schema["properties"]["kind"]["enum"]


def test_the_kinds_are_the_generic_ones_and_every_presets() -> None:
    schema = json_schema()
    kinds = schema["properties"]["kind"]["enum"]
    assert kinds == event_kinds()
    assert set(kinds) == set(GENERIC_KINDS) | {
        k for model in PRESETS.values() for k in model.event_kinds
    }
    assert kinds == [
        "alert",
        "alerts_active",
        "camera_status",
        "checkout_queue",
        "config_reload",
        "entrance_occupancy",
        "journal_recovered",
        "line_crossing",
        "line_totals",
        "object",
        "overflow",
        "shopper_dwell",
        "stats",
        "stock_change",
        "traffic_passage",
        "traffic_totals",
        "zone_enter",
        "zone_exit",
        "zone_occupancy",
    ]
    # each kind requires its own definition, and every definition exists
    dispatch = {c["if"]["properties"]["kind"]["const"]: c["then"]["$ref"] for c in schema["allOf"]}
    assert dispatch == {k: f"#/$defs/{k}" for k in kinds}
    assert all(k in schema["$defs"] for k in kinds)


def test_a_kind_without_its_definition_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Mystery(TrafficConfig):
        event_kinds = ("traffic_mystery",)

    monkeypatch.setattr(event_schema, "PRESETS", {**PRESETS, "mystery": Mystery})
    with pytest.raises(LookupError, match="traffic_mystery"):
        json_schema()


def test_an_overflow_event_from_the_journal_validates(tmp_path: Path) -> None:
    # one event more than the least bound a config may set: the oldest goes, and is reported
    j = Journal(JournalConfig(path=tmp_path / "j.db", max_backlog=100, overflow_every_s=0))
    stored = j.append(
        [
            Event(
                kind="zone_enter",
                camera="c",
                topic="c/zones/z",
                payload={"zone": "z", "track_id": i, "label": "person", "dwell_s": 0.0},
            )
            for i in range(101)
        ]
    )
    j.close()
    assert stored[-1].kind == "overflow"
    check = validator()
    for e in stored:
        check.validate(e.envelope("dev1"))


@pytest.mark.parametrize(
    "broken",
    [
        {"seq": 0},
        {"id": "not-a-uuid"},
        {"kind": "mystery"},
        {"v": 2},
        {"device": "a/b"},
    ],
)
def test_broken_envelopes_are_rejected(broken: dict) -> None:
    good = Event(
        kind="stats",
        camera=None,
        topic="stats",
        payload={"cameras": {}, "events": {}, "backlog": 0},
        seq=5,
    ).envelope("dev1")
    validator().validate(good)
    with pytest.raises(jsonschema.ValidationError):
        validator().validate({**good, **broken})


def test_a_kind_missing_its_fields_is_rejected() -> None:
    ev = Event(kind="line_crossing", camera="c", topic="c/lines/l", payload={"line": "l"}, seq=3)
    with pytest.raises(jsonschema.ValidationError, match="direction"):
        validator().validate(ev.envelope("dev1"))


def test_cli_prints_the_event_schema(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from edged.cli import main

    assert main(["schema", "--events"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()
