"""GET/POST /indexes/{uid}/similar across shards.

Owns `similar(cluster, uid, params)`. Meilisearch's similar search takes one document's
embedding and ranks the other documents by similarity to it; behind Miroir only the document's
own shard knows that embedding. So: read the document (with `retrieveVectors`) from a replica
of its shard, then run a semantic search with its first embedding as `vector` over every shard
(`search.search_index`, merged by similarity, exact), drop the document itself and documents
without an embedding (Meilisearch's similar never returns those), and cut the client's window.
`estimatedTotalHits` is the filter's documents minus the document itself, as Meilisearch counts
it. It must never render HTTP; `params` come validated (the proxy checks them with the devnode's
`check_similar`, Meilisearch's codes).

Known differences (docs/http-api.md): ranking rules with a custom `field:asc` rule order a
semantic search, not a similar one; with `rankingScoreThreshold` the total counts every
document above the threshold; for a document without an embedding and a `filter`, the total
counts the document itself when it matches the filter (its primary key need not be filterable,
so Miroir cannot ask).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from miroir.cluster.indexes import index_settings, primary_key
from miroir.cluster.read_documents import get_document
from miroir.cluster.runtime import Cluster, NodeRejected
from miroir.cluster.search import PARTIAL, ReadResult, search_index
from miroir.core.errors import MeiliError
from miroir.core.merge import without_path


def _embedding(document: Mapping[str, Any], embedder: str) -> list[float] | None:
    entry = (document.get("_vectors") or {}).get(embedder)
    embeddings = entry.get("embeddings") if isinstance(entry, Mapping) else entry
    if isinstance(embeddings, list) and embeddings:
        first = embeddings[0]
        if isinstance(first, list):
            return first or None
        return embeddings  # one embedding given flat
    return None


# Over the complexity bar on purpose: Meilisearch's similar rules (its errors, the document
# itself, documents without an embedding, the window and total) read in one place.
async def similar(  # noqa: C901
    cluster: Cluster, uid: str, params: Mapping[str, Any], *, policy: str = PARTIAL
) -> ReadResult:
    settings = await index_settings(cluster, uid)
    name = params["embedder"]
    if name not in (settings.get("embedders") or {}):
        raise MeiliError("invalid_similar_embedder", f"Cannot find embedder with name `{name}`.")
    doc_id = str(params["id"])
    key = await primary_key(cluster, uid)
    try:
        document = await get_document(cluster, uid, doc_id, {"retrieveVectors": "true"})
    except (NodeRejected, MeiliError) as error:
        code = error.code if isinstance(error, MeiliError) else _code(error)
        if code in ("document_not_found", "index_not_found"):
            if code == "index_not_found":
                raise
            raise MeiliError("not_found_similar_id", f"Document `{doc_id}` not found.") from None
        raise
    offset, limit = params["offset"], params["limit"]
    target = _embedding(document, name)
    search: dict[str, Any] = {
        "vector": target,
        "hybrid": {"embedder": name, "semanticRatio": 1.0},
        "offset": 0,
        "limit": offset + limit + 1,  # the document itself comes back too
        "showRankingScore": True,
        "showRankingScoreDetails": True,
        "retrieveVectors": params.get("retrieveVectors", False),
        "showPerformanceDetails": params.get("showPerformanceDetails", False),
    }
    if params.get("filter") is not None:
        search["filter"] = params["filter"]
    if params.get("rankingScoreThreshold") is not None:
        search["rankingScoreThreshold"] = params["rankingScoreThreshold"]
    added: list[str] = []
    retrieve = params.get("attributesToRetrieve")
    if retrieve is not None:
        if key and "*" not in retrieve and key not in retrieve:
            added.append(key)
        search["attributesToRetrieve"] = [*retrieve, *added]
    if target is None:
        # No embedding to compare with: no hits; the total still counts the filter's documents.
        search.pop("vector")
        search.pop("hybrid")
        search["limit"] = 0
    try:
        result = await search_index(cluster, uid, search, policy=policy)
    except NodeRejected as rejected:
        body = _body(rejected)
        code = body.get("code")
        if isinstance(code, str) and code.startswith("invalid_search_"):
            # The node judged a search; the client sent a similar query: its codes.
            similar_code = "invalid_similar_" + code.removeprefix("invalid_search_")
            raise MeiliError(similar_code, body.get("message", "")) from None
        raise
    answer = result.response
    kept: list[dict[str, Any]] = []
    itself = False
    for hit in answer.get("hits") or ():
        if not itself and key is not None and str(hit.get(key)) == doc_id:
            itself = True
            continue
        similarity = ((hit.get("_rankingScoreDetails") or {}).get("vectorSort") or {}).get(
            "similarity"
        )
        if similarity is None:
            continue  # no embedding: never similar
        shown: Mapping[str, Any] = hit
        for path in added:
            shown = without_path(shown, path)
        shown = dict(shown)
        if not params.get("showRankingScore"):
            shown.pop("_rankingScore", None)
        if not params.get("showRankingScoreDetails"):
            shown.pop("_rankingScoreDetails", None)
        kept.append(shown)
    total = answer.get("estimatedTotalHits", 0)
    if itself or (target is None and params.get("filter") is None):
        total = max(total - 1, 0)
    response = {
        "hits": kept[offset : offset + limit],
        "id": doc_id,
        "processingTimeMs": answer.get("processingTimeMs", 0),
        "limit": limit,
        "offset": offset,
        "estimatedTotalHits": total,
    }
    if "performanceDetails" in answer:
        response["performanceDetails"] = answer["performanceDetails"]
    return ReadResult(response, result.missing)


def _body(rejected: NodeRejected) -> dict[str, Any]:
    try:
        body = rejected.response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _code(rejected: NodeRejected) -> str | None:
    return _body(rejected).get("code")
