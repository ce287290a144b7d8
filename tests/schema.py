"""The shipped event schema as a ``jsonschema`` validator (jsonschema is a dev dependency)."""

from __future__ import annotations

import jsonschema

from edged.outputs.schema import json_schema


def validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)
