"""The reference search the engine is checked against: every rule, per document, no index.

It states what `run_search` must answer with none of its shortcuts: the filter through
`core.filters.matches` on each document (not the facet bitmaps), matching and every rank from
`DocRanking` with no query plan (positions only), a full sort of all matches by their rule keys
then internal id, distinct and facets counted from each document's own values. It is the
engine's algorithm before the bitmaps and the bucket-by-bucket sort, kept as the test oracle.
"""

from __future__ import annotations

from typing import Any

from miroir.core import filters as f
from miroir.devnode.search.execute import (
    Hit,
    SearchOutcome,
    SearchRequest,
    check_facets,
    check_sortable,
    displayed_predicate,
    facet_counts,
    searchable_field_ids,
)
from miroir.devnode.search.index import IndexSearcher
from miroir.devnode.search.query import derive, parse_query
from miroir.devnode.search.ranking import DocRanking, build_rules


def _facet_keys(document: dict[str, Any], attribute: str) -> set[Any]:
    facts = f.field_facts(document, attribute)
    if not facts.exists:
        return set()
    return {("s", f.normalize_facet(s)) for s in facts.strings} | {("n", n) for n in facts.numbers}


# Over the complexity bar on purpose: the brute-force oracle reads top to bottom.
def oracle_search(searcher: IndexSearcher, request: SearchRequest) -> SearchOutcome:  # noqa: C901
    settings = searcher.settings
    node = searcher.parse_filter(request.filter, error_code=request.filter_error_code)
    check_sortable(searcher, request.sort)
    facet_names = check_facets(searcher, request.facets) if request.facets is not None else None
    allowed = (
        searchable_field_ids(searcher, request.attributes_to_search_on)
        if request.attributes_to_search_on is not None
        else None
    )
    query = parse_query(request.q or "", settings)
    prefix_search = settings.get("prefixSearch", "indexingTime") != "disabled"
    for term in query.terms:
        derive(term, searcher.trie, settings, prefix_search=prefix_search)
    strategy = "last" if request.matching_strategy == "frequency" else request.matching_strategy
    rules = build_rules(settings, query, request.sort, strategy)
    displayed = displayed_predicate(settings)

    matches: list[DocRanking] = []
    for internal_id in sorted(searcher.documents):
        document = searcher.documents[internal_id]
        if node is not None and not f.matches(node, document):
            continue
        ranking = DocRanking(searcher, query, strategy, internal_id, allowed, None)
        if not query.is_placeholder and not ranking.kept:
            continue
        if ranking.excluded():
            continue
        matches.append(ranking)
    matches.sort(key=lambda r: ([r.rule_key(rule) for rule in rules], r.internal_id))
    if request.ranking_score_threshold is not None:
        matches = [
            r
            for r in matches
            if r.score_and_details(rules, displayed)[0] >= request.ranking_score_threshold
        ]
    counted = {r.internal_id for r in matches}
    total = len(matches)
    distinct = request.distinct if request.distinct is not None else settings.get(
        "distinctAttribute"
    )
    if distinct:
        seen: set[Any] = set()
        total = 0
        for internal_id in sorted(counted):
            keys = _facet_keys(searcher.documents[internal_id], distinct)
            if not keys or not keys & seen:
                total += 1
            seen |= keys
        taken: set[Any] = set()
        kept = []
        for r in matches:
            keys = _facet_keys(searcher.documents[r.internal_id], distinct)
            if not keys & taken:
                kept.append(r)
            taken |= keys
        matches = kept
    hits = []
    for r in matches[request.offset : request.offset + request.limit]:
        score, details = r.score_and_details(rules, displayed)
        hits.append(Hit(r.internal_id, score, details, r.federation_values(rules)))
    outcome = SearchOutcome(hits, total, query, rules, matched_ids=counted)
    if facet_names is not None:

        def per_document(index: Any, ids: Any) -> tuple[dict, dict]:
            strings: dict[str, int] = {}
            numbers: dict[float, int] = {}
            for internal_id in ids:
                facts = f.field_facts(searcher.documents[internal_id], index.attribute)
                if not facts.exists:
                    continue
                for key in {f.normalize_facet(s) for s in facts.strings}:
                    strings[key] = strings.get(key, 0) + 1
                for number in set(facts.numbers):
                    numbers[number] = numbers.get(number, 0) + 1
            return strings, numbers

        outcome.facet_distribution, outcome.facet_stats = facet_counts(
            searcher, facet_names, counted, counter=per_document
        )
    return outcome
