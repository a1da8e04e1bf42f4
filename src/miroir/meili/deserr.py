"""Meilisearch's request-validation messages (its `deserr` wording), as small pure helpers.

Owns the text of type errors, unknown fields/parameters and bad query values, so every module
that validates input words its errors the same way Meilisearch does. It never decides codes on
its own: callers pass the code of the field being validated.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from miroir.core.errors import MeiliError
from miroir.core.json_values import describe


def at(path: str) -> str:
    return f" at `{path}`" if path else ""


def type_error(code: str, path: str, expected: str, value: Any) -> MeiliError:
    return MeiliError(
        code, f"Invalid value type{at(path)}: expected {expected}, but found {describe(value)}"
    )


def invalid_value(code: str, path: str, detail: str) -> MeiliError:
    return MeiliError(code, f"Invalid value{at(path)}: {detail}")


def unknown_value(code: str, path: str, value: str, allowed: Iterable[str]) -> MeiliError:
    return MeiliError(
        code, f"Unknown value `{value}`{at(path)}: expected one of {_backticked(allowed)}"
    )


def unknown_field(code: str, path: str, field: str, allowed: Iterable[str]) -> MeiliError:
    inside = f" inside `{path}`" if path else ""
    return MeiliError(
        code, f"Unknown field `{field}`{inside}: expected one of {_backticked(allowed)}"
    )


def missing_field(code: str, path: str, field: str) -> MeiliError:
    inside = f" inside `{path}`" if path else ""
    return MeiliError(code, f"Missing field `{field}`{inside}")


def check_fields(obj: Mapping[str, Any], allowed: Iterable[str], *, path: str, code: str) -> None:
    """Reject the first key of `obj` that is not in `allowed` (deserr denies unknown fields)."""
    allowed = tuple(allowed)
    for key in obj:
        if key not in allowed:
            raise unknown_field(code, path, key, allowed)


def unknown_parameter(name: str, allowed: Iterable[str]) -> MeiliError:
    return MeiliError(
        "bad_request", f"Unknown parameter `{name}`: expected one of {_backticked(allowed)}"
    )


def bad_parameter(code: str, name: str, detail: str) -> MeiliError:
    return MeiliError(code, f"Invalid value in parameter `{name}`: {detail}")


def parse_query_usize(code: str, name: str, text: str) -> int:
    """A query-string integer >= 0, with Meilisearch's message when it is not one."""
    if text.isascii() and text.isdigit():
        return int(text)
    raise bad_parameter(code, name, f"could not parse `{text}` as a positive integer")


def parse_query_bool(code: str, name: str, text: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise bad_parameter(
        code, name, f"could not parse `{text}` as a boolean, expected either `true` or `false`"
    )


def body_usize(code: str, path: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise type_error(code, path, "a positive integer", value)


def body_bool(code: str, path: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise type_error(code, path, "a boolean", value)


def body_string(code: str, path: str, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise type_error(code, path, "a string", value)


def body_string_list(code: str, path: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise type_error(code, path, "an array", value)
    for position, item in enumerate(value):
        if not isinstance(item, str):
            raise type_error(code, f"{path}[{position}]", "a string", item)
    return list(value)


def body_object(code: str, path: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    raise type_error(code, path, "an object", value)


def _backticked(names: Iterable[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)
