"""How Meilisearch's validation messages name a JSON value: its kind and its compact JSON
(`a string: `"5"``). Pure; shared by the request contract (`miroir.meili.deserr`) and the key
payloads (`miroir.core.keys`), which core cannot import from `meili`."""

from __future__ import annotations

import json
from typing import Any

import orjson


def render_json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # an integer past 64 bits, which orjson will not write
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def describe(value: Any) -> str:
    """`a string: `"x"``, deserr's name for the kind of a JSON value followed by the value."""
    if value is None:
        kind = "null"
    elif isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, int):
        kind = "a positive integer" if value >= 0 else "a negative integer"
    elif isinstance(value, float):
        kind = "a number"
    elif isinstance(value, str):
        kind = "a string"
    elif isinstance(value, list):
        kind = "an array"
    else:
        kind = "an object"
    return f"{kind}: `{render_json(value)}`"
