"""Routing a batch of documents to the nodes that own them.

Owns: id extraction, shard choice, per-node batching and `_miroir_shard` injection for writes.
Validation is all-or-nothing: the whole batch is checked before anything is routed, so a bad
document means nothing is written. Must never copy documents it can annotate in place: the
proxy decodes every batch itself, so the dicts are ours, and the hot path touches each once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from miroir.core.documents import MAX_ID_BYTES, canonical_document_id, lookup_primary_key_value
from miroir.core.errors import MeiliError
from miroir.core.placement import shard_for_key
from miroir.core.topology import ShardMap

SHARD_FIELD = "_miroir_shard"
RESERVED_PREFIX = "_miroir_"


@attrs.frozen
class RoutedBatch:
    """Per-node document lists and, per shard, how many documents it received."""

    per_node: dict[str, list[dict[str, Any]]]
    shards_written: frozenset[int]


def _fast_id(value: Any) -> str | None:
    # The common cases without the general path's checks: plain ints and short ascii ids.
    kind = type(value)
    if kind is int:
        return str(value) if -(2**63) <= value < 2**64 else None
    if kind is str and 0 < len(value) <= MAX_ID_BYTES and value.isascii():
        stripped = value.replace("-", "").replace("_", "")
        if stripped.isalnum() or (not stripped and value):
            return value
    return None


def route_documents(
    documents: Sequence[dict[str, Any]], primary_key: str, shard_map: ShardMap
) -> RoutedBatch:
    """Validate every document, then annotate and batch them per owning node.

    Raises MeiliError (missing_document_id, invalid_document_id, miroir_reserved_field)
    before anything is annotated when any document is bad.
    """
    shards = shard_map.shards
    keys: list[int] = []
    dotted = "." in primary_key
    for position, document in enumerate(documents):
        if not isinstance(document, dict):
            raise MeiliError(
                "malformed_payload",
                f"The document at position {position} is not a JSON object.",
            )
        for field in document:
            if field.startswith(RESERVED_PREFIX):
                raise MeiliError(
                    "miroir_reserved_field",
                    f"The document at position {position} has the field `{field}`: fields "
                    f"starting with `{RESERVED_PREFIX}` are reserved by Miroir.",
                )
        if not dotted and primary_key in document:
            key = _fast_id(document[primary_key])
            if key is None:
                key = canonical_document_id(document[primary_key])
        else:
            key = canonical_document_id(lookup_primary_key_value(document, primary_key))
        keys.append(shard_for_key(key, shards))

    targets_of_shard: dict[int, list[str]] = {}
    per_node: dict[str, list[dict[str, Any]]] = {}
    for document, shard in zip(documents, keys, strict=True):
        targets = targets_of_shard.get(shard)
        if targets is None:
            targets = [node for _, node in shard_map.write_targets(shard)]
            targets_of_shard[shard] = targets
        document[SHARD_FIELD] = shard
        for node in targets:
            batch = per_node.get(node)
            if batch is None:
                per_node[node] = batch = []
            batch.append(document)
    return RoutedBatch(per_node=per_node, shards_written=frozenset(targets_of_shard))


# A node's message may list `_miroir_shard` among the filterable (or facet-searchable)
# attributes: alone, or in a list written as "`a`, `b`" or as "`a, b`".
_SHARD_ALONE = re.compile(
    r"Available (filterable|facet-searchable) attributes? patterns are: `_miroir_shard`\."
)
_SHARD_IN_LIST = re.compile(r"`_miroir_shard`, |, `_miroir_shard`|_miroir_shard, |, _miroir_shard")


def hide_shard_field(message: str) -> str:
    """A node's error message as the client should read it: without Miroir's `_miroir_shard`,
    worded as Meilisearch words it when no other attribute is filterable."""
    if SHARD_FIELD not in message:
        return message
    message = _SHARD_ALONE.sub(r"This index does not have configured \1 attributes.", message)
    return _SHARD_IN_LIST.sub("", message)


def strip_internal_fields(document: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `document` without Miroir's `_miroir_*` fields."""
    return {k: v for k, v in document.items() if not k.startswith(RESERVED_PREFIX)}
