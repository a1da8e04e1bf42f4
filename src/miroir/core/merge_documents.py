"""GET /indexes/{uid}/documents and POST /documents/fetch across shards.

Owns `plan_documents_query(params, primary_key, order) -> DocumentsPlan` and
`merge_documents(plan, node_bodies) -> dict`. Pure; it never sends a request.

One node lists documents in its internal id order (insertion order), which no set of shards can
reproduce. Miroir documents one of two deterministic orders instead; both give an exact page
from one scatter in which every request asks for the first `offset+limit` documents:

- `order="shard"` (the default; works with any node): shard by shard in ascending shard id,
  and inside a shard in the order of the node that serves it (its insertion order; replicas
  receive the same batches in the same order, so a replica gives the same order). The proxy
  sends one request per shard, `restrict_to_shards(plan.node_params, [shard])`, and passes the
  bodies in ascending shard order. The page is cut from their concatenation.
- `order="primary_key"`: the client's `sort` rules if any, then the primary key ascending
  (Meilisearch's sort order: numbers, then normalized strings by bytes, then no value). It
  depends only on the documents, so it is stable across replicas, groups and rebalancing, and
  needs one request per node (a k-way merge of the nodes' sorted pages); but the nodes must
  sort documents (`sort` on the documents routes, with the primary key in their
  sortableAttributes). When the client sorts and the primary key is not sortable
  (`pk_sortable=False`), the nodes get the client's rules only, and documents tied on all of
  them come node by node, each node's in its own order: exact like one node except for the
  order inside a tie, which one node breaks by its internal ids (insertion order).

`total` is the sum of the bodies' totals, which is exact (each document lives on one shard).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from miroir.core.errors import MeiliError
from miroir.core.filters import normalize_facet
from miroir.core.merge import without_path
from miroir.core.merge_order import sort_value_key
from miroir.core.search_plan import SortRule, parse_sort

DEFAULT_DOCUMENTS_LIMIT = 20
_RESERVED_PREFIX = "_miroir_"


@dataclass(frozen=True, slots=True)
class DocumentsPlan:
    node_params: dict[str, Any]
    offset: int
    limit: int
    by_shard: bool
    order: tuple[SortRule, ...]
    added_fields: tuple[str, ...]


def _given(params: Mapping[str, Any], name: str, default: Any) -> Any:
    value = params.get(name)
    return default if value is None else value


def plan_documents_query(
    params: Mapping[str, Any], primary_key: str, order: str = "shard", *, pk_sortable: bool = True
) -> DocumentsPlan:
    """Rewrite a documents listing (offset, limit, fields, filter, sort, ids), checked by
    `miroir.meili.params.check_documents_fetch`, for the nodes."""
    offset = _given(params, "offset", 0)
    limit = _given(params, "limit", DEFAULT_DOCUMENTS_LIMIT)
    if order == "shard":
        if params.get("sort") is not None:
            raise MeiliError(
                "invalid_document_sort",
                "Sorting documents needs nodes that sort documents (order=\"primary_key\").",
            )
        node_params = {**params, "offset": 0, "limit": offset + limit}
        return DocumentsPlan(node_params, offset, limit, True, (), ())
    if order != "primary_key":
        raise ValueError(f"unknown documents order {order!r}")
    try:
        client_sort = parse_sort(params.get("sort"))
    except MeiliError as error:
        raise MeiliError("invalid_document_sort", error.message) from None
    order = client_sort
    if (pk_sortable or not client_sort) and all(rule.field != primary_key for rule in client_sort):
        order = (*client_sort, SortRule(primary_key, True))

    node_params = dict(params)
    node_params["offset"] = 0
    node_params["limit"] = offset + limit
    node_params["sort"] = [f"{r.field}:{'asc' if r.ascending else 'desc'}" for r in order]
    added: list[str] = []
    fields = params.get("fields")
    if fields is not None and "*" not in fields:
        for rule in order:
            if rule.field not in fields and rule.field not in added:
                added.append(rule.field)
        node_params["fields"] = fields + added
    return DocumentsPlan(node_params, offset, limit, False, order, tuple(added))


def _facet_value(value: Any) -> Any:
    # Strings sort as Meilisearch stores string facets: normalized (trimmed, lower-case).
    return normalize_facet(value) if isinstance(value, str) else value


def _sort_field_key(document: Mapping[str, Any], rule: SortRule) -> tuple:
    value: Any = document
    for part in rule.field.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if isinstance(value, list):
        # An array sorts by its best value in the rule's direction.
        keys = [
            sort_value_key(_facet_value(v), rule.ascending)
            for v in value
            if v is not None and not isinstance(v, Mapping | list)
        ]
        return min(keys) if keys else sort_value_key(None, rule.ascending)
    if isinstance(value, Mapping):
        value = None
    return sort_value_key(_facet_value(value), rule.ascending)


def merge_documents(plan: DocumentsPlan, node_bodies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """`{results, offset, limit, total}` from the bodies' `{results, total, ...}`.

    With `by_shard`, `node_bodies` are one per shard in ascending shard order.
    """
    documents: list[Mapping[str, Any]] = []
    for body in node_bodies:
        documents.extend(body.get("results") or ())
    if not plan.by_shard:  # shard order is the concatenation itself
        order = plan.order
        documents.sort(key=lambda doc: tuple(_sort_field_key(doc, rule) for rule in order))
    window = documents[plan.offset : plan.offset + plan.limit]
    results = []
    for document in window:
        cleaned: Mapping[str, Any] = {
            k: v for k, v in document.items() if not k.startswith(_RESERVED_PREFIX)
        }
        for path in plan.added_fields:
            cleaned = without_path(cleaned, path)
        results.append(dict(cleaned))
    return {
        "results": results,
        "offset": plan.offset,
        "limit": plan.limit,
        "total": sum(body.get("total", 0) for body in node_bodies),
    }
