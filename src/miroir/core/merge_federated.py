"""Federated POST /multi-search across shards: every node runs the federation over its own
shards, and the answers are merged the way Meilisearch merges federated hits.

Owns `plan_federated_query(body) -> FederatedPlan`, `restrict_federated_to_shards(...)` and
`merge_federated(plan, node_bodies) -> dict`. Pure; it never sends a request.

Order (reference/meilisearch-ranking.md §6). Each hit becomes a list of weighted values read
from its details: consecutive relevancy rules form one group worth `weight x score`, a sort
rule its value, a geo sort its distance. Lists compare element by element: scores within
f64::EPSILON tie; sort values in the same direction compare like `sort`; elements that cannot
be compared make the hit with more remaining groups win, and with equal counts
`weightedRankingScore` decides; a list that ends first loses; a full tie puts the lower
`queriesPosition` first, then the order of `node_bodies`.

Known difference: when relevancy rules sit on both sides of a sort rule, a group's score is
not recoverable from the per-rule scores in the details, so such a group compares its rules'
weighted scores lexicographically. With equal weights that is the same order; with different
weights it can differ from Meilisearch on hits from different queries.
Federated `distinct` is not de-duplicated across shards (each node applies its own).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from miroir.core.merge import clean_hit
from miroir.core.merge_facets import merge_facet_distributions, merge_facet_stats
from miroir.core.merge_order import sort_value_key
from miroir.core.search_plan import DEFAULT_LIMIT, restrict_to_shards

_EPSILON = 2.220446049250313e-16


@dataclass(frozen=True, slots=True)
class FederatedPlan:
    node_body: dict[str, Any]
    page_mode: bool
    offset: int
    limit: int
    page: int
    hits_per_page: int
    weights: tuple[float, ...]
    show_score: tuple[bool, ...]
    show_details: tuple[bool, ...]


def _given(options: Mapping[str, Any], name: str, default: int) -> int:
    value = options.get(name)
    return default if value is None else value


def plan_federated_query(body: Mapping[str, Any]) -> FederatedPlan:
    """Rewrite a federated multi-search body (checked by `miroir.meili.params.check_multi_search`)
    for the nodes."""
    federation = dict(body.get("federation") or {})
    queries = body["queries"]
    page_mode = federation.get("page") is not None or federation.get("hitsPerPage") is not None
    if page_mode:
        page = _given(federation, "page", 1)
        per_page = _given(federation, "hitsPerPage", DEFAULT_LIMIT)
        offset, limit = ((page - 1) * per_page, per_page) if page > 0 else (0, 0)
    else:
        page, per_page = 1, DEFAULT_LIMIT
        offset = _given(federation, "offset", 0)
        limit = _given(federation, "limit", DEFAULT_LIMIT)
    for name in ("offset", "limit", "page", "hitsPerPage"):
        federation.pop(name, None)
    if page_mode:
        federation.update(page=1, hitsPerPage=offset + limit)
    else:
        federation.update(offset=0, limit=offset + limit)

    weights, show_score, show_details, node_queries = [], [], [], []
    for query in queries:
        weights.append(float((query.get("federationOptions") or {}).get("weight", 1.0)))
        show_score.append(bool(query.get("showRankingScore")))
        show_details.append(bool(query.get("showRankingScoreDetails")))
        node_queries.append({**query, "showRankingScore": True, "showRankingScoreDetails": True})
    node_body = {**body, "federation": federation, "queries": node_queries}
    return FederatedPlan(node_body, page_mode, offset, limit, page, per_page,
                         tuple(weights), tuple(show_score), tuple(show_details))


def restrict_federated_to_shards(node_body: Mapping[str, Any], shards: Sequence[int]) -> dict:
    """`node_body` with every query answering only for `shards`."""
    return {**node_body,
            "queries": [restrict_to_shards(q, shards) for q in node_body.get("queries", ())]}


def _weighted_values(hit: Mapping[str, Any], weight: float) -> list[tuple]:
    """§6's list: ("score", tuple of weighted rule scores) | ("sort", asc, key) | ("geo", ...)."""
    values: list[tuple] = []
    group: list[float] = []
    details = hit.get("_rankingScoreDetails") or {}
    relevancy_groups = 0
    for name, entry in details.items():
        if not isinstance(entry, Mapping):
            continue
        if "score" in entry:
            group.append(entry["score"] * weight)
            continue
        if group:
            values.append(("score", tuple(group)))
            relevancy_groups += 1
            group = []
        if name.startswith("_geoPoint("):
            values.append(("geo", name.endswith(":asc"), entry.get("distance")))
        elif name.endswith(":asc") or name.endswith(":desc"):
            ascending = name.endswith(":asc")
            values.append(("sort", ascending, sort_value_key(entry.get("value"), ascending)))
        elif name == "vectorSort":
            values.append(("score", ((entry.get("similarity") or 0.0) * weight,)))
    if group:
        values.append(("score", tuple(group)))
        relevancy_groups += 1
    if not values:
        # A placeholder query has no rule to report: its hits rank by global score x weight.
        return [("score", (hit.get("_rankingScore", 1.0) * weight,))]
    if relevancy_groups == 1:
        # One group: its score is the global score, which Meilisearch compares (not the rules).
        score = hit.get("_rankingScore", 0.0) * weight
        values = [("score", (score,)) if v[0] == "score" else v for v in values]
    return values


def _compare_values(a: tuple, b: tuple) -> int | None:
    """-1 if `a` ranks first, 1 if `b`, 0 on a tie, None if they cannot be compared."""
    if a[0] != b[0]:
        return None
    if a[0] == "score":
        for x, y in zip(a[1], b[1], strict=False):
            if abs(x - y) > _EPSILON:
                return -1 if x > y else 1
        return 0
    if a[1] != b[1]:  # opposite directions
        return None
    if a[0] == "sort":
        return (a[2] > b[2]) - (a[2] < b[2])
    da, db = a[2], b[2]
    if da is None or db is None:
        return (da is None) - (db is None)
    first = da < db if a[1] else da > db
    return 0 if da == db else (-1 if first else 1)


def _compare_hits(a: tuple, b: tuple) -> int:
    (values_a, weighted_a, position_a), (values_b, weighted_b, position_b) = a, b
    for index, (x, y) in enumerate(zip(values_a, values_b, strict=False)):
        result = _compare_values(x, y)
        if result is None:
            left_a, left_b = len(values_a) - index, len(values_b) - index
            if left_a != left_b:
                return -1 if left_a > left_b else 1
            if weighted_a != weighted_b:
                return -1 if weighted_a > weighted_b else 1
            break
        if result:
            return result
    else:
        if len(values_a) != len(values_b):
            return -1 if len(values_a) > len(values_b) else 1
    return position_a - position_b


def merge_federated(
    plan: FederatedPlan,
    node_bodies: Sequence[Mapping[str, Any]],
    faceting_by_index: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The client's federated response from every node's federated response."""
    decorated = []
    for body in node_bodies:
        for hit in body.get("hits") or ():
            federation = hit.get("_federation") or {}
            position = federation.get("queriesPosition", 0)
            weight = plan.weights[position] if position < len(plan.weights) else 1.0
            weighted = federation.get("weightedRankingScore", hit.get("_rankingScore", 0.0) * weight)
            decorated.append(((_weighted_values(hit, weight), weighted, position), hit))
    compare = functools.cmp_to_key(_compare_hits)
    decorated.sort(key=lambda item: compare(item[0]))

    hits = []
    for (_, _, position), hit in decorated[plan.offset : plan.offset + plan.limit]:
        keep_score = position < len(plan.show_score) and plan.show_score[position]
        keep_details = position < len(plan.show_details) and plan.show_details[position]
        hits.append(clean_hit(hit, (), keep_score, keep_details))
    total = sum(b.get("totalHits", b.get("estimatedTotalHits", 0)) for b in node_bodies)
    response: dict[str, Any] = {
        "hits": hits,
        "processingTimeMs": max((b.get("processingTimeMs", 0) for b in node_bodies), default=0),
    }
    if plan.page_mode:
        response.update(hitsPerPage=plan.hits_per_page, page=plan.page,
                        totalPages=math.ceil(total / plan.hits_per_page) if plan.hits_per_page else 0,
                        totalHits=total)
    else:
        response.update(limit=plan.limit, offset=plan.offset, estimatedTotalHits=total)
    _merge_federated_facets(response, node_bodies, faceting_by_index or {})
    return response


def _merge_federated_facets(
    response: dict[str, Any],
    node_bodies: Sequence[Mapping[str, Any]],
    faceting_by_index: Mapping[str, Mapping[str, Any]],
) -> None:
    def faceting(uid: str) -> tuple[int, Mapping[str, str]]:
        settings = faceting_by_index.get(uid) or {}
        return settings.get("maxValuesPerFacet", 100), settings.get("sortFacetValuesBy") or {}

    if any("facetsByIndex" in b for b in node_bodies):
        uids = sorted({uid for b in node_bodies for uid in (b.get("facetsByIndex") or {})})
        merged = {}
        for uid in uids:
            parts = [(b.get("facetsByIndex") or {}).get(uid) or {} for b in node_bodies]
            max_values, sort_by = faceting(uid)
            merged[uid] = {
                "distribution": merge_facet_distributions(
                    (p.get("distribution") for p in parts), max_values, sort_by),
                "stats": merge_facet_stats(p.get("stats") for p in parts),
            }
        response["facetsByIndex"] = merged
    if any("facetDistribution" in b for b in node_bodies):
        max_values = max((faceting(uid)[0] for uid in faceting_by_index), default=100)
        response["facetDistribution"] = merge_facet_distributions(
            (b.get("facetDistribution") for b in node_bodies), max_values, {"*": "alpha"})
        response["facetStats"] = merge_facet_stats(b.get("facetStats") for b in node_bodies)
