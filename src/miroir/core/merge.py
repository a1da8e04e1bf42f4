"""The search merger: per-shard answers in, the answer one big node would give out.

Owns `merge_search(plan, node_bodies) -> dict` and `merge_search_outcome(...)`. Pure: no I/O,
no clock, inputs are never mutated. The plan comes from `miroir.core.search_plan.plan_node_query`;
each node body is a Meilisearch search response to `plan.node_params` (restricted to the
node's shards), in the covering set's order.

Contract, in the order the merge applies it:

1. Order. All hits are sorted by one key (`miroir.core.merge_order`): `_rankingScore`
   descending when the details report relevancy rules only, otherwise rule by rule from
   `_rankingScoreDetails` (relevancy rules by score, sort rules, from the query or custom
   `field:asc` ranking rules, by value, in the configured rule order). The sort is stable over the bodies concatenated in order, so exact ties keep the
   order of `node_bodies` and each node's own order: deterministic for a given covering set.
2. Distinct. With a distinct attribute (query `distinct` or the setting), the first hit of each
   distinct value in the global order is kept, exactly as Meilisearch keeps the best document
   of each value; hits without the attribute are always kept. Values compare like facet values
   (numbers by value, strings by `normalize_facet`; an array is several values).
   Each shard already removed its own duplicates, but two shards may both return a value, so
   the merged list can come up short. `merge_search_outcome` then returns a refetch plan asking
   every node for more hits; the proxy repeats the scatter until it gets None back.
3. Window. offset/limit (or page/hitsPerPage) are applied to the merged list, after the
   maxTotalHits cap computed by the plan.
4. Totals. `estimatedTotalHits` / `totalHits` = min(sum of the shards' totals, maxTotalHits);
   `totalPages` from that. With distinct the sum counts a value once per shard holding it: the
   duplicates seen in the fetched hits are subtracted, and when every shard returned all its
   hits the total is the exact number of merged hits.
5. Facets. facetDistribution summed and re-truncated (`miroir.core.merge_facets`), facetStats
   min/max, both without `_miroir_*` attributes. processingTimeMs is the slowest shard's,
   `query` is echoed.
6. Hits. `_miroir_*` fields and the fields the plan added for sort/distinct are removed from
   the hit, `_formatted` and `_matchesPosition`; `_rankingScore` and `_rankingScoreDetails` are
   kept only if the client asked; everything else is passed through per hit.

`requestUid` is not produced here (it is random); the proxy adds its own.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from miroir.core.filters import normalize_facet
from miroir.core.merge_facets import merge_facet_distributions, merge_facet_stats
from miroir.core.merge_order import (
    KeyShapeMismatch,
    RankingKeys,
    compile_hit_key,
    reports_values,
    score_key,
)
from miroir.core.routing import SHARD_FIELD
from miroir.core.search_plan import NodePlan, with_fetch_limit

_RESERVED_PREFIX = "_miroir_"
_SCORE = "_rankingScore"
_DETAILS = "_rankingScoreDetails"
_by_score = operator.itemgetter(_SCORE)


@dataclass(frozen=True, slots=True)
class SearchMergeOutcome:
    """The merged response, and the plan to scatter again if distinct left the window short.

    `refetch` is None when the response is exact (or cannot get more exact: the nodes were
    already asked for maxTotalHits).
    """

    response: dict[str, Any]
    refetch: NodePlan | None


def merge_search(plan: NodePlan, node_bodies: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The client's search response from the nodes' answers to `plan.node_params`."""
    return merge_search_outcome(plan, node_bodies).response


def _node_total(body: Mapping[str, Any]) -> int:
    total = body.get("totalHits")
    if total is None:
        total = body.get("estimatedTotalHits", 0)
    return total


def order_hits(node_bodies: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Every hit of every body in the global order (step 1 of the contract)."""
    all_hits: list[Mapping[str, Any]] = []
    for body in node_bodies:
        all_hits.extend(body.get("hits") or ())
    if not all_hits:
        return all_hits
    names = tuple(all_hits[0].get(_DETAILS) or ())
    if not reports_values(names):
        # Relevancy rules only: `_rankingScore` is their lexicographic fold. Decided from the
        # details, not from the query's `sort`: a custom `field:desc` ranking rule in the
        # settings reports values too.
        try:
            # The same order as `score_key` (the sort is stable either way), with a C key.
            all_hits.sort(key=_by_score, reverse=True)
        except (KeyError, TypeError):  # a hit without a score: the general fast-path key
            all_hits = [hit for body in node_bodies for hit in body.get("hits") or ()]
            all_hits.sort(key=score_key)
        return all_hits
    try:
        all_hits.sort(key=compile_hit_key(names))
    except (KeyShapeMismatch, KeyError, TypeError, AttributeError):
        # Some hit has other detail names (a cutoff's `skipped`, say): the general keys.
        all_hits = [hit for body in node_bodies for hit in body.get("hits") or ()]
        all_hits.sort(key=RankingKeys().hit_key)
    return all_hits


def _exact_prefix(
    merged: list[Mapping[str, Any]], plan: NodePlan, node_bodies: Sequence[Mapping[str, Any]]
) -> tuple[int, bool]:
    """How many merged hits are certainly the global top, and whether every body was complete.

    A body that returned `fetch_limit` hits but has more may hide hits ranked after its last
    one; everything up to the earliest such last hit is certain.
    """
    last_of_truncated: set[int] = set()
    for body in node_bodies:
        hits = body.get("hits") or ()
        if len(hits) >= plan.fetch_limit and _node_total(body) > len(hits):
            if not hits:
                return 0, False
            last_of_truncated.add(id(hits[-1]))
    if not last_of_truncated:
        return len(merged), True
    for position, hit in enumerate(merged):
        if id(hit) in last_of_truncated:
            return position + 1, False
    return len(merged), False


def _field_values(document: Any, path: str) -> list[Any]:
    """Values at a dotted `path`, arrays flattened (Meilisearch's facet view of a field)."""
    if isinstance(document, list):  # an array of objects on the way: each element counts
        return [value for element in document for value in _field_values(element, path)]
    if not isinstance(document, Mapping):
        return []
    if path in document:
        found = [document[path]]
    else:
        found = []
        for key, value in document.items():
            if path.startswith(key + "."):
                found.extend(_field_values(value, path[len(key) + 1 :]))
        return found
    flat: list[Any] = []
    while found:
        value = found.pop()
        if isinstance(value, list):
            found.extend(value)
        elif value is not None:
            flat.append(value)
    return flat


def distinct_values(hit: Mapping[str, Any], attribute: str) -> set[Any]:
    """The facet values of `attribute` in `hit`, normalised the way distinct compares them."""
    values: set[Any] = set()
    for value in _field_values(hit, attribute):
        if isinstance(value, bool):
            values.add(("s", "true" if value else "false"))
        elif isinstance(value, int | float):
            values.add(("n", float(value)))
        elif isinstance(value, str):
            values.add(("s", normalize_facet(value)))
    return values


def apply_distinct(hits: Iterable[Mapping[str, Any]], attribute: str) -> tuple[list, int]:
    """Keep the first hit of each distinct value; returns (kept, number dropped)."""
    seen: set[Any] = set()
    kept: list[Mapping[str, Any]] = []
    dropped = 0
    for hit in hits:
        values = distinct_values(hit, attribute)
        if values & seen:
            dropped += 1
            continue
        seen |= values
        kept.append(hit)
    return kept, dropped


def without_path(document: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    """`document` without the (possibly dotted) `path`; an emptied parent goes too."""
    if path in document:
        return {k: v for k, v in document.items() if k != path}
    for key, value in document.items():
        if isinstance(value, Mapping) and path.startswith(key + "."):
            inner = without_path(value, path[len(key) + 1 :])
            if inner is value:
                continue
            if inner:
                return {k: (inner if k == key else v) for k, v in document.items()}
            return {k: v for k, v in document.items() if k != key}
    return document


class _ReservedStripper:
    """Removes `_miroir_*` keys, remembering the field names already known to be clean.

    Hits of one index share their field names, so after the first hit the test is one C-speed
    subset check; a name never seen before is looked at once.
    """

    __slots__ = ("clean",)

    def __init__(self) -> None:
        self.clean: set[str] = set()

    def strip(self, mapping: dict[str, Any]) -> None:
        mapping.pop(SHARD_FIELD, None)  # every stored document carries it
        if mapping.keys() <= self.clean:
            return
        for key in list(mapping):
            if key.startswith(_RESERVED_PREFIX):
                del mapping[key]
            else:
                self.clean.add(key)


def clean_hit(
    hit: Mapping[str, Any],
    added_fields: Sequence[str],
    keep_score: bool,
    keep_details: bool,
    stripper: _ReservedStripper | None = None,
) -> dict[str, Any]:
    """A hit as the client sees it (step 6 of the contract); `hit` itself is not changed."""
    stripper = stripper or _ReservedStripper()
    cleaned = dict(hit)
    if not keep_score:
        cleaned.pop(_SCORE, None)
    if not keep_details:
        cleaned.pop(_DETAILS, None)
    stripper.strip(cleaned)
    if "_formatted" in cleaned or "_matchesPosition" in cleaned:
        for nested in ("_formatted", "_matchesPosition"):
            value = cleaned.get(nested)
            if isinstance(value, Mapping):
                value = dict(value)
                stripper.strip(value)
                for path in added_fields:
                    value = without_path(value, path)
                cleaned[nested] = value
    for path in added_fields:
        cleaned = dict(without_path(cleaned, path))
    return cleaned


def merge_search_outcome(
    plan: NodePlan, node_bodies: Sequence[Mapping[str, Any]]
) -> SearchMergeOutcome:
    """`merge_search`, plus the refetch plan when distinct left the merged window short."""
    merged = order_hits(node_bodies)
    shard_total = sum(_node_total(body) for body in node_bodies)

    refetch: NodePlan | None = None
    if plan.distinct:
        # Only distinct needs to know how much of the merged list is certainly the global top.
        certain, complete = _exact_prefix(merged, plan, node_bodies)
        kept, dropped = apply_distinct(merged, plan.distinct)
        certain_kept, _ = apply_distinct(merged[:certain], plan.distinct)
        if complete:
            total = len(kept)
        else:
            total = max(shard_total - dropped, len(kept))
            if plan.fetch_limit < plan.max_total_hits:
                if plan.page_mode:
                    # totalHits is exhaustive: count every distinct value, so fetch everything.
                    refetch = with_fetch_limit(plan, plan.max_total_hits)
                elif len(certain_kept) < plan.needed:
                    grown = max(plan.fetch_limit * 2, plan.needed * 2, 1)
                    refetch = with_fetch_limit(plan, min(grown, plan.max_total_hits))
    else:
        kept, total = merged, shard_total
    total = min(total, plan.max_total_hits)

    window = kept[plan.offset : plan.offset + plan.limit]
    stripper = _ReservedStripper()
    hits = [
        clean_hit(hit, plan.added_fields, plan.show_ranking_score,
                  plan.show_ranking_score_details, stripper)
        for hit in window
    ]
    response: dict[str, Any] = {"hits": hits, "query": plan.query}
    first = node_bodies[0] if node_bodies else {}
    if "queryVector" in first:  # a semantic search with retrieveVectors: the nodes' vector
        response["queryVector"] = first["queryVector"]
    response["processingTimeMs"] = max(
        (b.get("processingTimeMs", 0) for b in node_bodies), default=0
    )
    if plan.page_mode:
        response["hitsPerPage"] = plan.hits_per_page
        response["page"] = plan.page
        response["totalPages"] = (
            math.ceil(total / plan.hits_per_page) if plan.hits_per_page else 0
        )
        response["totalHits"] = total
    else:
        response["limit"] = plan.requested_limit
        response["offset"] = plan.requested_offset
        response["estimatedTotalHits"] = total
    if plan.facets_requested or any("facetDistribution" in b for b in node_bodies):
        response["facetDistribution"] = merge_facet_distributions(
            (b.get("facetDistribution") for b in node_bodies),
            plan.max_values_per_facet,
            plan.sort_facet_values_by,
        )
        response["facetStats"] = merge_facet_stats(b.get("facetStats") for b in node_bodies)
    if "semanticHitCount" in first:
        # A semantic-only search: every hit it returns is semantic (hybrid queries are mixed
        # by miroir.core.merge_hybrid instead).
        response["semanticHitCount"] = len(hits)
    return SearchMergeOutcome(response, refetch)
