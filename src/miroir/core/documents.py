"""Document ids and primary-key inference, exactly as Meilisearch applies them.

The canonical id string is what placement hashes: the integer 42 and the string "42" are the
same document, so both canonicalise to "42" and land on the same shard.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from miroir.core.errors import MeiliError

MAX_ID_BYTES = 511
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_INT_RANGE = (-(2**63), 2**64 - 1)  # JSON integers Meilisearch accepts: i64 or u64


def _invalid_id_message(value: Any) -> str:
    import json

    rendered = json.dumps(value, ensure_ascii=False)
    return (
        f"Document identifier `{rendered}` is invalid. A document identifier can be of type "
        "integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), hyphens (-) "
        f"and underscores (_), and can not be more than {MAX_ID_BYTES} bytes."
    )


def canonical_document_id(value: Any) -> str:
    """The canonical string of a document id, or `invalid_document_id`."""
    if isinstance(value, bool):
        raise MeiliError("invalid_document_id", _invalid_id_message(value))
    if isinstance(value, int):
        if not _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            raise MeiliError("invalid_document_id", _invalid_id_message(value))
        return str(value)
    if isinstance(value, str):
        if (
            0 < len(value) <= MAX_ID_BYTES
            and len(value.encode()) <= MAX_ID_BYTES
            and _ID_PATTERN.fullmatch(value)
        ):
            return value
    raise MeiliError("invalid_document_id", _invalid_id_message(value))


def lookup_primary_key_value(document: Mapping[str, Any], primary_key: str) -> Any:
    """The value of the primary key in `document`, following dotted paths.

    Raises `missing_document_id` when absent and `invalid_document_id` when a dotted path
    matches more than once (a flattened key and a nested object both holding it).
    """
    matches: list[Any] = []
    _collect_path(document, primary_key, matches)
    if not matches:
        raise MeiliError(
            "missing_document_id",
            f"Document doesn't have a `{primary_key}` attribute: `{_render(document)}`.",
        )
    if len(matches) > 1:
        raise MeiliError(
            "invalid_document_id",
            f"Document has several values for the primary key `{primary_key}`.",
        )
    return matches[0]


def document_id(document: Mapping[str, Any], primary_key: str) -> str:
    """The canonical id of `document` under `primary_key`."""
    return canonical_document_id(lookup_primary_key_value(document, primary_key))


def _collect_path(obj: Mapping[str, Any], path: str, out: list[Any]) -> None:
    if path in obj:
        out.append(obj[path])
    # A dotted key may also be reached through nested objects: "a.b" in {"a": {"b": 1}}.
    for key, value in obj.items():
        if isinstance(value, Mapping) and path.startswith(key + "."):
            _collect_path(value, path[len(key) + 1 :], out)


def _render(document: Mapping[str, Any]) -> str:
    import json

    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def infer_primary_key(documents: Sequence[Mapping[str, Any]]) -> str:
    """Meilisearch's inference: the first document's top-level keys ending in `id` (any case).

    Exactly one candidate wins; none or several is an error the task fails with.
    """
    if not documents:
        raise MeiliError(
            "index_primary_key_no_candidate_found",
            "The primary key inference failed as the engine did not find any field ending "
            "with `id` in its name. Please specify the primary key manually using the "
            "`primaryKey` query parameter.",
        )
    candidates = sorted(key for key in documents[0] if key.lower().endswith("id"))
    if not candidates:
        raise MeiliError(
            "index_primary_key_no_candidate_found",
            "The primary key inference failed as the engine did not find any field ending "
            "with `id` in its name. Please specify the primary key manually using the "
            "`primaryKey` query parameter.",
        )
    if len(candidates) > 1:
        raise MeiliError(
            "index_primary_key_multiple_candidates_found",
            "The primary key inference failed as the engine found "
            f"{len(candidates)} fields ending with `id` in their names: '{candidates[0]}' and "
            f"'{candidates[1]}'. Please specify the primary key manually using the "
            "`primaryKey` query parameter.",
        )
    return candidates[0]
