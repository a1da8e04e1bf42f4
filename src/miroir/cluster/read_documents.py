"""Listing documents across shards: GET /indexes/{uid}/documents and POST /documents/fetch.

Owns `fetch_documents(cluster, uid, params)`: plan the listing in the core
(`plan_documents_query`), scatter it to a covering set (`search.gather_shards`, same group
fallback and unavailable-shard policy as search), merge in the core (`merge_documents`).
It must never render HTTP and never return a window cut from one shard's view.

The global order is the client's `sort`, then the primary key ascending (see
`miroir.core.merge_documents`): it depends only on the documents, so it is the same on every
call, whichever group or replica answers. Two ways to get each node's part of it:

- sorted (one round trip): each node is asked for its first `offset+limit` documents in that
  order. Nodes can only do that when the primary key (and the client's sort fields) are in
  their sortableAttributes.
- exhaustive (the fallback): a node that refuses the sort with `invalid_document_sort` while
  the client sent no sort of its own is asked instead for all of its documents matching the
  filter, unsorted, and the merge orders them. Exact but proportional to the index size; the
  choice is remembered per index so the refused request is not repeated on every call.
`total` is exact either way: every document lives on exactly one shard.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from miroir.cluster.runtime import Cluster, NodeRejected
from miroir.cluster.search import PARTIAL, ReadResult, check_coverage, gather_shards
from miroir.core.errors import MeiliError
from miroir.core.merge_documents import DocumentsPlan, merge_documents, plan_documents_query
from miroir.core.search_plan import restrict_to_shards
from miroir.transport.base import NodeResponse, is_node_failure

# The exhaustive fallback asks for everything; Meilisearch's `limit` is a usize.
EXHAUSTIVE_LIMIT = 2**31 - 1
_UNSORTABLE: weakref.WeakKeyDictionary[Cluster, set[str]] = weakref.WeakKeyDictionary()
# The core planner offers several documented orders; this module serves the primary-key one
# (stable across replicas, whatever order each node inserted its documents in).
_ORDER_ARGS = {"order": "primary_key"}


async def primary_key(cluster: Cluster, uid: str) -> str | None:
    """The index's primary key (cached on the cluster once known); None while it has none.

    Raises `NodeRejected` with the node's answer when the index does not exist."""
    known = cluster.primary_keys.get(uid)
    if known is not None:
        return known
    result = await cluster.first_success(cluster.serving_nodes(), "GET", f"/indexes/{uid}")
    if not isinstance(result, NodeResponse) or is_node_failure(result):
        raise MeiliError("miroir_node_unavailable", "No node could be reached for the index.")
    if not result.ok:
        raise NodeRejected(result)
    key = result.json().get("primaryKey")
    if isinstance(key, str):
        cluster.primary_keys[uid] = key
        return key
    return None


def _body_for(node_params: Mapping[str, Any]):
    full = orjson.dumps(node_params)

    def body(shards: Sequence[int] | None) -> bytes:
        return full if shards is None else orjson.dumps(restrict_to_shards(node_params, shards))

    return body


async def _scatter(cluster: Cluster, uid: str, node_params: Mapping[str, Any], policy: str):
    gathered = await gather_shards(
        cluster, "POST", f"/indexes/{uid}/documents/fetch", _body_for(node_params)
    )
    check_coverage(gathered, policy)
    return gathered


def _exhaustive_params(plan: DocumentsPlan) -> dict[str, Any]:
    params = {k: v for k, v in plan.node_params.items() if k != "sort"}
    params["offset"] = 0
    params["limit"] = EXHAUSTIVE_LIMIT
    return params


async def fetch_documents(
    cluster: Cluster, uid: str, params: Mapping[str, Any], *, policy: str = PARTIAL
) -> ReadResult:
    """One window of the index's documents in the documented global order, with exact total."""
    key = await primary_key(cluster, uid)
    if key is None:
        # No primary key yet means no document yet; still validate the parameters.
        plan = plan_documents_query(params, "id", **_ORDER_ARGS)
        return ReadResult({"results": [], "offset": plan.offset, "limit": plan.limit, "total": 0})
    plan = plan_documents_query(params, key, **_ORDER_ARGS)
    client_sorts = params.get("sort") not in (None, "", [])
    unsortable = _UNSORTABLE.setdefault(cluster, set())
    if not client_sorts and uid in unsortable:
        gathered = await _scatter(cluster, uid, _exhaustive_params(plan), policy)
    else:
        try:
            gathered = await _scatter(cluster, uid, plan.node_params, policy)
        except NodeRejected as rejected:
            if client_sorts or _code(rejected.response) != "invalid_document_sort":
                raise
            unsortable.add(uid)
            gathered = await _scatter(cluster, uid, _exhaustive_params(plan), policy)
    return ReadResult(merge_documents(plan, gathered.bodies()), gathered.missing)


def forget_sortability(cluster: Cluster, uid: str | None = None) -> None:
    """Try the sorted listing again for `uid` (or every index) on the next call."""
    unsortable = _UNSORTABLE.get(cluster)
    if unsortable is not None:
        if uid is None:
            unsortable.clear()
        else:
            unsortable.discard(uid)


def _code(response: NodeResponse) -> str | None:
    try:
        body = response.json()
    except orjson.JSONDecodeError:
        return None
    return body.get("code") if isinstance(body, dict) else None
