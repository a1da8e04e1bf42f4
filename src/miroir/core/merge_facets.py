"""Facet counts from several shards summed into the answer one node would give.

Owns `merge_facet_distributions`, `merge_facet_stats`, `facet_value_order_key` and
`merge_facet_search`. It never reads hits and never drops a count: truncation to
`maxValuesPerFacet` happens once, after the sums.

Exactness. With `sortFacetValuesBy: alpha` (the default) the merged answer is exact even though
every shard truncated its own list: a value among the first M of the whole index is among the
first M of every shard that has it (a shard's values are a subset), so every count it has is
present. With `count` a value can be cut on a shard where it is rare and be popular overall;
the merged counts are then a lower bound. The proxy can make `count` exact by giving the nodes
a larger `maxValuesPerFacet` than the client sees (the merge truncates to the client's value).

Value order (Meilisearch's): number values first, ascending, then strings by their normalized
form (`alpha`); or numbers then strings, each by count descending with ties in `alpha` order
(`count`). Number values arrive
as JSON object keys, so they are recognised by their decimal spelling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from miroir.core.filters import normalize_facet

_NUMBER_KEY = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_RESERVED_PREFIX = "_miroir_"


def facet_value_order_key(value: str) -> tuple:
    """Meilisearch's `alpha` order of facet values: numbers ascending, then strings."""
    if _NUMBER_KEY.fullmatch(value):
        return (0, float(value), "")
    return (1, 0.0, normalize_facet(value))


def facet_value_count_key(value: str, count: int) -> tuple:
    """Meilisearch's `count` order: numbers first, then strings, each by count descending."""
    number = _NUMBER_KEY.fullmatch(value) is not None
    return (0 if number else 1, -count, *facet_value_order_key(value)[1:])


def _ordering(sort_by: Mapping[str, str], attribute: str) -> str:
    return sort_by.get(attribute) or sort_by.get("*") or "alpha"


def merge_value_counts(
    counts: Iterable[Mapping[str, int]], order: str, max_values: int
) -> dict[str, int]:
    """One attribute's `{value: count}` maps summed, ordered and truncated to `max_values`.

    String values are one value when their normalized forms are equal ("B" and "b"); the
    spelling shown is the first one met, in `counts` order (a node shows the spelling of the
    document it indexed first, which the shards cannot tell apart).
    """
    total: dict[str, int] = {}
    shown: dict[str, str] = {}
    for per_shard in counts:
        for value, count in per_shard.items():
            key = value if _NUMBER_KEY.fullmatch(value) else normalize_facet(value)
            total[key] = total.get(key, 0) + count
            shown.setdefault(key, value)
    if order == "count":
        ranked = sorted(total, key=lambda k: facet_value_count_key(shown[k], total[k]))
    else:
        ranked = sorted(total, key=lambda k: facet_value_order_key(shown[k]))
    return {shown[key]: total[key] for key in ranked[:max_values]}


def merge_facet_distributions(
    distributions: Iterable[Mapping[str, Mapping[str, int]] | None],
    max_values: int,
    sort_by: Mapping[str, str],
) -> dict[str, dict[str, int]]:
    """Per-shard `facetDistribution`s summed per attribute; `_miroir_*` attributes dropped."""
    per_attribute: dict[str, list[Mapping[str, int]]] = {}
    for distribution in distributions:
        for attribute, counts in (distribution or {}).items():
            if attribute.startswith(_RESERVED_PREFIX):
                continue
            per_attribute.setdefault(attribute, []).append(counts)
    return {
        attribute: merge_value_counts(counts, _ordering(sort_by, attribute), max_values)
        for attribute, counts in sorted(per_attribute.items())
    }


def merge_facet_stats(
    stats: Iterable[Mapping[str, Mapping[str, float]] | None],
) -> dict[str, dict[str, float]]:
    """Per-shard `facetStats`: min of the mins and max of the maxes, per attribute."""
    merged: dict[str, dict[str, float]] = {}
    for per_shard in stats:
        for attribute, bounds in (per_shard or {}).items():
            if attribute.startswith(_RESERVED_PREFIX):
                continue
            current = merged.get(attribute)
            if current is None:
                merged[attribute] = {"min": bounds["min"], "max": bounds["max"]}
            else:
                current["min"] = min(current["min"], bounds["min"])
                current["max"] = max(current["max"], bounds["max"])
    return dict(sorted(merged.items()))


def merge_facet_search(
    params: Mapping[str, Any], settings: Mapping[str, Any], node_bodies: list[Mapping[str, Any]]
) -> dict[str, Any]:
    """POST /indexes/{uid}/facet-search answers from every shard, summed per value.

    Each node sends `{facetHits: [{value, count}], facetQuery, processingTimeMs}`. Counts of one
    value add up across shards; the list is ordered like facetDistribution for that attribute
    (`sortFacetValuesBy`) and truncated to `maxValuesPerFacet`, which is how many facet hits
    Meilisearch returns at most. processingTimeMs is the slowest shard's.
    """
    faceting = settings.get("faceting") or {}
    max_values = faceting.get("maxValuesPerFacet", 100)
    sort_by = faceting.get("sortFacetValuesBy") or {"*": "alpha"}
    attribute = params.get("facetName") or ""
    counts = [
        {hit["value"]: hit["count"] for hit in body.get("facetHits", ())} for body in node_bodies
    ]
    merged = merge_value_counts(counts, _ordering(sort_by, attribute), max_values)
    return {
        "facetHits": [{"value": value, "count": count} for value, count in merged.items()],
        "facetQuery": params.get("facetQuery"),
        "processingTimeMs": max((b.get("processingTimeMs", 0) for b in node_bodies), default=0),
    }
