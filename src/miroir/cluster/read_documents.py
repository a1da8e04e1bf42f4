"""Reading documents: one by id (GET /indexes/{uid}/documents/{id}), and listings across shards
(GET /indexes/{uid}/documents and POST /documents/fetch).

Owns `get_document(cluster, uid, raw_id, query)`: the document's shard is asked of its readable
owners one after another, in the order `miroir.core.replicas.read_candidates` gives (the read
path's own replica rotation), until one answers. And `fetch_documents(cluster, uid, params)`:
plan the listing in the core (`plan_documents_query`), scatter it to a covering set
(`search.gather_shards`, same group fallback and unavailable-shard policy as search), merge in
the core (`merge_documents`). It must never render HTTP and never return a window cut from one
shard's view.

The global order is the client's `sort`, then the primary key ascending (see
`miroir.core.merge_documents`): it depends only on the documents, so it is the same on every
call, whichever group or replica answers. Two ways to get each node's part of it:

- sorted (one round trip): each node is asked for its first `offset+limit` documents in that
  order. Nodes can only do that when the primary key (and the client's sort fields) are in
  their sortableAttributes.
- exhaustive (the fallback): a node that refuses the sort with `invalid_document_sort` while
  the client sent no sort of its own is asked instead for all of its documents matching the
  filter, unsorted, and the merge orders them. Exact but proportional to the index size; the
  choice is remembered in the index catalog (until the index changes, e.g. its settings) so
  the refused request is not repeated on every call.
`total` is exact either way: every document lives on exactly one shard.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import orjson

from miroir.cluster.indexes import index_settings, primary_key
from miroir.cluster.runtime import Cluster, NodeRejected
from miroir.cluster.search import PARTIAL, ReadResult, check_coverage, gather_shards
from miroir.core.documents import canonical_document_id
from miroir.core.errors import MeiliError
from miroir.core.merge_documents import DocumentsPlan, merge_documents, plan_documents_query
from miroir.core.placement import shard_for_key
from miroir.core.replicas import read_candidates
from miroir.core.routing import strip_internal_fields
from miroir.core.search_plan import restrict_to_shards
from miroir.transport.base import NodeResponse

# The exhaustive fallback asks for everything; Meilisearch's `limit` is a usize.
EXHAUSTIVE_LIMIT = 2**31 - 1
# The core planner offers several documented orders; this module serves the primary-key one
# (stable across replicas, whatever order each node inserted its documents in).
_ORDER_ARGS = {"order": "primary_key"}


async def get_document(
    cluster: Cluster, uid: str, raw_id: str, query: Mapping[str, str]
) -> dict[str, Any]:
    """GET /indexes/{uid}/documents/{raw_id}?query from a readable owner of its shard, with
    `_miroir_*` fields stripped.

    Raises `document_not_found` for an id no document can have, the node's refusal as
    `NodeRejected` (e.g. `document_not_found`, `index_not_found`), and
    `miroir_shard_unavailable` when no owner of the shard answered."""
    try:
        doc_id = canonical_document_id(raw_id)
    except MeiliError:
        raise MeiliError("document_not_found", f"Document `{raw_id}` not found.") from None
    shard_map = cluster.shard_map_for(uid)
    shard = shard_for_key(doc_id, shard_map.shards)
    candidates = read_candidates(shard_map, shard, cluster.next_query_seq())
    params = "&".join(f"{k}={quote(v, safe=',*')}" for k, v in query.items())
    path = f"/indexes/{uid}/documents/{quote(doc_id)}" + (f"?{params}" if params else "")
    result = await cluster.first_success(candidates, "GET", path)
    if not isinstance(result, NodeResponse) or result.status >= 500:
        raise MeiliError(
            "miroir_shard_unavailable", f"No replica could be reached for shard {shard}."
        )
    if not result.ok:
        raise NodeRejected(result)
    return strip_internal_fields(result.json())


def _body_for(node_params: Mapping[str, Any]):
    full = orjson.dumps(node_params)

    def body(shards: Sequence[int] | None) -> bytes:
        return full if shards is None else orjson.dumps(restrict_to_shards(node_params, shards))

    return body


async def _scatter(cluster: Cluster, uid: str, node_params: Mapping[str, Any], policy: str):
    gathered = await gather_shards(
        cluster, "POST", f"/indexes/{uid}/documents/fetch", _body_for(node_params),
        shard_map=cluster.shard_map_for(uid),
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
    entry = await cluster.catalog.entry(uid)  # before asking: sortability is filed under it
    key = await primary_key(cluster, uid)
    if key is None:
        # No primary key yet means no document yet; still validate the parameters.
        plan = plan_documents_query(params, "id", **_ORDER_ARGS)
        return ReadResult({"results": [], "offset": plan.offset, "limit": plan.limit, "total": 0})
    plan = plan_documents_query(
        params, key, **_ORDER_ARGS, pk_sortable=await _pk_sortable(cluster, uid, key)
    )
    client_sorts = params.get("sort") not in (None, "", [])
    if not client_sorts and entry.unsortable:
        gathered = await _scatter(cluster, uid, _exhaustive_params(plan), policy)
    else:
        try:
            gathered = await _scatter(cluster, uid, plan.node_params, policy)
        except NodeRejected as rejected:
            if client_sorts or _code(rejected.response) != "invalid_document_sort":
                raise
            entry.unsortable = True
            gathered = await _scatter(cluster, uid, _exhaustive_params(plan), policy)
    return ReadResult(merge_documents(plan, gathered.bodies()), gathered.missing)


async def _pk_sortable(cluster: Cluster, uid: str, key: str) -> bool:
    """Whether the nodes can break sort ties by the primary key (it is sortable)."""
    settings = await index_settings(cluster, uid)
    sortable = settings.get("sortableAttributes") or []
    return any(s == key or key.startswith(s + ".") for s in sortable)


def _code(response: NodeResponse) -> str | None:
    try:
        body = response.json()
    except orjson.JSONDecodeError:
        return None
    return body.get("code") if isinstance(body, dict) else None
