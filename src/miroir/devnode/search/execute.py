"""Running one search against an IndexSearcher: candidates, bucket sort, window, facets.

Owns: which documents match (required terms, filter, negative terms, attributesToSearchOn),
the bucket sort (rule by rule, best bucket first; a bucket is only refined while it can still
reach the requested window; the last tie-break is internal id ascending, i.e. the order
documents were first added), distinct, rankingScoreThreshold, and the facet distribution and
stats over every matching document.

Must never: validate request JSON (search_routes does) or format hits (formatting does).
Totals count matches, never the size of the window.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pyroaring import BitMap

from miroir.core import filters as f
from miroir.core.errors import MeiliError
from miroir.devnode.search.bucketing import Ranker, phrase_starts, union
from miroir.devnode.search.facets import FieldIndex
from miroir.devnode.search.index import IndexSearcher, pattern_matches
from miroir.devnode.search.query import ParsedQuery, Term, derive, parse_query
from miroir.devnode.search.ranking import (
    Descending,
    DocRanking,
    QueryPlan,
    Rule,
    build_rules,
    is_constant,
)


@dataclass
class SearchRequest:
    q: str | None = None
    offset: int = 0
    limit: int = 20
    filter: Any = None
    sort: list[tuple[str, bool]] = field(default_factory=list)
    facets: list[str] | None = None
    distinct: str | None = None
    matching_strategy: str = "last"
    attributes_to_search_on: list[str] | None = None
    ranking_score_threshold: float | None = None
    filter_error_code: str = "invalid_search_filter"


@dataclass
class Hit:
    internal_id: int
    score: float
    details: dict[str, Any]
    values: list[tuple] = field(default_factory=list)  # for federated merging


@dataclass
class SearchOutcome:
    hits: list[Hit]
    total: int
    query: ParsedQuery
    rules: list[Rule]
    facet_distribution: dict[str, dict[str, int]] | None = None
    facet_stats: dict[str, dict[str, float]] | None = None
    matched_ids: BitMap = field(default_factory=BitMap)  # every match (before distinct)
    semantic_hit_count: int | None = None  # semantic and hybrid searches only
    query_vector: list[float] | None = None  # the vector a semantic search ranked by


def format_number(value: float) -> str:
    """A number facet value as Meilisearch prints it (Rust's f64 Display: 1.0 -> "1")."""
    if value == int(value) and abs(value) < 1e17:
        return str(int(value))
    return repr(value)


def displayed_predicate(settings: dict[str, Any]) -> Any:
    displayed = settings.get("displayedAttributes") or ["*"]
    return lambda path: any(pattern_matches(p, path) for p in displayed)


def check_sortable(searcher: IndexSearcher, sort: list[tuple[str, bool]]) -> None:
    sortable = list(searcher.settings.get("sortableAttributes") or [])
    for field_name, _ in sort:
        if any(pattern_matches(p, field_name) for p in sortable):
            continue
        if sortable:
            available = f"Available sortable attributes are: `{', '.join(sorted(sortable))}`."
        else:
            available = "This index does not have configured sortable attributes."
        raise MeiliError(
            "invalid_search_sort", f"Attribute `{field_name}` is not sortable. {available}"
        )


def check_facets(searcher: IndexSearcher, facets: list[str]) -> list[str]:
    """The facet attributes to count (`*` expands to every filterable attribute seen)."""
    filterable = searcher.settings.get("filterableAttributes") or []
    out: list[str] = []
    invalid: set[str] = set()
    for name in facets:
        if name == "*":
            for path in searcher.field_names:
                features = f.matching_features(path, filterable)
                if features is not None and features.filterable and path not in out:
                    out.append(path)
            continue
        features = f.matching_features(name, filterable)
        if features is None or not features.filterable:
            invalid.add(name)
        elif name not in out:
            out.append(name)
    if invalid:
        patterns = f.filterable_patterns(filterable)
        if patterns:
            tail = f"Available filterable attributes patterns are: `{', '.join(patterns)}`."
        else:
            tail = "This index does not have configured filterable attributes."
        names = sorted(invalid)
        if len(names) == 1:
            head = f"Attribute `{names[0]}` is not filterable."
        else:
            head = f"Attributes `{', '.join(names)}` are not filterable."
        raise MeiliError("invalid_search_facets", f"Invalid facet distribution: {head} {tail}")
    return out


def searchable_field_ids(searcher: IndexSearcher, attributes: list[str]) -> set[int]:
    searchable = searcher.searchable
    for name in attributes:
        if not any(pattern_matches(p, name) for p in searchable):
            raise MeiliError(
                "invalid_search_attributes_to_search_on",
                f"Attribute `{name}` is not searchable. Available searchable attributes are: "
                f"`{', '.join(searchable)}`.",
            )
    return {
        field_id
        for field_id, path in enumerate(searcher.field_names)
        if any(pattern_matches(name, path) for name in attributes)
    }


def phrase_docs(searcher: IndexSearcher, phrase: tuple[str, ...]) -> BitMap:
    """The documents containing the phrase (its words adjacent, in one field)."""
    key = ("phrase", phrase)
    starts = searcher.query_cache.get(key)
    if starts is None:
        starts = searcher.query_cache[key] = phrase_starts(searcher, phrase)
    return union(list(starts.values()))


def _term_docs(searcher: IndexSearcher, term: Term) -> BitMap:
    """The documents a term matches: exact for plain words and phrases; for a synonym phrase,
    the documents holding its first word (matching is then checked per document)."""
    word_docs = searcher.word_docs
    if term.is_phrase:
        return phrase_docs(searcher, term.words)
    found = [word_docs[word] for word in term.derivations if word in word_docs]
    found += [word_docs[p[0]] for p in term.synonym_phrases if p[0] in word_docs]
    return union(found)


def query_plan(
    searcher: IndexSearcher, query: ParsedQuery, allowed_fields: set[int] | None
) -> QueryPlan:
    """The per-term document sets the ranking may use instead of reading positions."""
    word_docs = searcher.word_docs
    typo_off = bool(searcher.typo_disabled_fields())
    term_docs, typo_docs, exact_docs, fast = [], [], [], []
    for term in query.terms:
        term_docs.append(_term_docs(searcher, term))
        groups: dict[int, list[BitMap]] = {}
        exact = BitMap()
        for word, derivation in term.derivations.items():
            docs = word_docs.get(word)
            if not docs:
                continue
            groups.setdefault(derivation.typos, []).append(docs)
            if derivation.exact:
                exact = docs
        typo_docs.append(sorted((typos, union(found)) for typos, found in groups.items()))
        exact_docs.append(exact)
        has_typos = any(typos for typos in groups)
        fast.append(
            not term.is_phrase
            and not term.synonym_phrases
            and allowed_fields is None
            and not (typo_off and has_typos)
        )
    return QueryPlan(term_docs, typo_docs, exact_docs, fast)


def _negative_docs(searcher: IndexSearcher, query: ParsedQuery, ids: BitMap) -> BitMap:
    """The documents of `ids` a negative term removes."""
    out = union([searcher.word_docs[w] for w in query.negative_words if w in searcher.word_docs])
    out &= ids
    for phrase in query.negative_phrases:
        out |= phrase_docs(searcher, phrase) & ids
    return out


# Over the complexity bar on purpose: the pipeline in order; split, its state would travel
# through every step.
def run_search(searcher: IndexSearcher, request: SearchRequest) -> SearchOutcome:  # noqa: C901
    settings = searcher.settings
    filter_node = searcher.parse_filter(request.filter, error_code=request.filter_error_code)
    check_sortable(searcher, request.sort)
    facet_names = check_facets(searcher, request.facets) if request.facets is not None else None
    allowed_fields = (
        searchable_field_ids(searcher, request.attributes_to_search_on)
        if request.attributes_to_search_on is not None
        else None
    )
    query = parse_query(request.q or "", settings)
    prefix_search = settings.get("prefixSearch", "indexingTime") != "disabled"
    for term in query.terms:
        derive(term, searcher.trie, settings, prefix_search=prefix_search)
    strategy = request.matching_strategy
    if strategy == "frequency":
        # Corpus frequencies would make a document's rank depend on its neighbours (and on
        # the shard it lives on); see docs/devnode.md, "Search". Words drop from the end.
        strategy = "last"
    rules = build_rules(settings, query, request.sort, strategy)

    universe = searcher.ids
    if filter_node is not None:
        universe = searcher.facets.evaluate(filter_node, universe)
    kept_levels: dict[tuple[int, ...], BitMap] | None = None  # when matching needs no positions
    plan = query_plan(searcher, query, allowed_fields)
    verified: dict[int, DocRanking] = {}
    if query.is_placeholder:
        candidates = universe
        if query.negative_words or query.negative_phrases:
            candidates = universe - _negative_docs(searcher, query, universe)
    else:
        probe = DocRanking(searcher, query, strategy, -1)
        required = (
            range(len(query.terms))
            if strategy == "all"
            else [i for i in range(len(query.terms)) if i not in probe.removal_order()]
        )
        candidates = universe
        for i in sorted(required, key=lambda i: len(plan.term_docs[i])):
            candidates = candidates & plan.term_docs[i]
            if not candidates:
                break
        if not required:
            candidates = BitMap()
        if all(
            fast or (term.is_phrase and allowed_fields is None)
            for fast, term in zip(plan.fast, query.terms, strict=True)
        ):
            # Plain words and phrases: the sets are exact, so matching needs no positions;
            # each document keeps the terms of the first removal step whose terms it has all.
            if query.negative_words or query.negative_phrases:
                candidates = candidates - _negative_docs(searcher, query, candidates)
            every = tuple(range(len(query.terms)))
            if strategy == "all":
                kept_levels = {every: candidates}
            else:
                kept_levels = {}
                left = candidates
                order = probe.removal_order()
                for step in range(len(order) + 1):
                    kept = tuple(i for i in every if i not in order[:step])
                    if not kept or not left:
                        break
                    docs = left
                    for i in kept:
                        docs = docs & plan.term_docs[i]
                    if docs:
                        kept_levels[kept] = docs
                        left = left - docs
        else:
            matched = BitMap()
            for internal_id in candidates:
                ranking = DocRanking(searcher, query, strategy, internal_id, allowed_fields, plan)
                if ranking.kept is not None and not ranking.excluded():
                    verified[internal_id] = ranking
                    matched.add(internal_id)
            candidates = matched

    ranker = Ranker(searcher, query, strategy, plan, allowed_fields, kept_levels)
    ranker.rankings.update(verified)
    ranking_of = ranker.ranking_of
    displayed = displayed_predicate(settings)
    distinct = request.distinct
    if distinct is None:
        distinct = settings.get("distinctAttribute")
    threshold = request.ranking_score_threshold
    window_end = request.offset + request.limit

    sorting_rules = [r for r in rules if not is_constant(r, query, searcher.searchable)]
    ordered = ranker.order(candidates, sorting_rules)
    scored: dict[int, tuple[float, dict]] = {}

    def score(internal_id: int) -> tuple[float, dict]:
        value = scored.get(internal_id)
        if value is None:
            value = scored[internal_id] = ranking_of(internal_id).score_and_details(
                rules, displayed
            )
        return value

    if threshold is not None:
        # Every candidate's score is needed for the total; walk the whole order.
        ordered_list = [i for i in ordered if score(i)[0] >= threshold]
        counted = BitMap(ordered_list)
        ordered = iter(ordered_list)
    else:
        counted = candidates

    if distinct:
        ordered, total = _apply_distinct(searcher, ordered, counted, distinct)
    else:
        total = len(counted)

    hits: list[Hit] = []
    for position, internal_id in enumerate(ordered):
        if position >= window_end:
            break
        if position >= request.offset:
            hit_score, details = score(internal_id)
            values = ranking_of(internal_id).federation_values(rules)
            hits.append(Hit(internal_id, hit_score, details, values))

    outcome = SearchOutcome(hits, total, query, rules, matched_ids=counted)
    if facet_names is not None:
        outcome.facet_distribution, outcome.facet_stats = facet_counts(
            searcher, facet_names, counted
        )
    return outcome


def distinct_keys(searcher: IndexSearcher, internal_id: int, attribute: str) -> set[Any]:
    """A document's distinct values, as keys (strings normalized, numbers by value)."""
    return _distinct_keys(searcher, internal_id, attribute)


def _distinct_keys(searcher: IndexSearcher, internal_id: int, attribute: str) -> set[Any]:
    facts = searcher.facets.field(attribute).facts.get(internal_id)
    if facts is None:
        return set()
    return {("s", f.normalize_facet(s)) for s in facts.strings} | {("n", n) for n in facts.numbers}


def _apply_distinct(
    searcher: IndexSearcher, ordered: Iterator[int], counted: BitMap, attribute: str
) -> tuple[Iterator[int], int]:
    # The total: documents kept when each value keeps one document (internal-id order).
    seen: set[Any] = set()
    total = 0
    for internal_id in counted:
        keys = _distinct_keys(searcher, internal_id, attribute)
        if not keys:
            total += 1
        elif not keys & seen:
            total += 1
            seen |= keys
        else:
            seen |= keys

    def kept() -> Iterator[int]:
        taken: set[Any] = set()
        for internal_id in ordered:
            keys = _distinct_keys(searcher, internal_id, attribute)
            if keys & taken:
                continue
            taken |= keys
            yield internal_id

    return kept(), total


_SETTING = object()


def count_facet_values(
    index: FieldIndex, ids: BitMap
) -> tuple[dict[str, int], dict[float, int]]:
    """(normalized string -> documents, number -> documents) among `ids`.

    Each value's count is one bitmap intersection count while the attribute has fewer values
    than there are documents; else the documents' own values are counted.
    """
    string_counts: dict[str, int] = {}
    number_counts: dict[float, int] = {}
    if len(index.strings) + len(index.numbers) < len(ids):
        for key, bucket in index.strings.items():
            count = bucket.intersection_cardinality(ids)
            if count:
                string_counts[key] = count
        for number, bucket in index.numbers.items():
            count = bucket.intersection_cardinality(ids)
            if count:
                number_counts[number] = count
    else:
        for internal_id in ids:
            facts = index.facts.get(internal_id)
            if facts is None:
                continue
            for key in {f.normalize_facet(s) for s in facts.strings}:
                string_counts[key] = string_counts.get(key, 0) + 1
            for number in set(facts.numbers):
                number_counts[number] = number_counts.get(number, 0) + 1
    return string_counts, number_counts


def facet_counts(
    searcher: IndexSearcher,
    names: list[str],
    ids: Any,
    *,
    max_values: Any = _SETTING,
    counter: Any = count_facet_values,
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """facetDistribution and facetStats of `names` over the documents `ids` (any int set)."""
    if not isinstance(ids, BitMap):
        ids = BitMap(ids)
    faceting = searcher.settings.get("faceting") or {}
    if max_values is _SETTING:
        max_values = faceting.get("maxValuesPerFacet", 100)
    sort_by = faceting.get("sortFacetValuesBy") or {"*": "alpha"}
    distribution: dict[str, dict[str, int]] = {}
    stats: dict[str, dict[str, float]] = {}
    for name in names:
        index = searcher.facets.field(name)
        string_counts, number_counts = counter(index, ids)
        order = sort_by.get(name, sort_by.get("*", "alpha"))
        numbers = sorted(number_counts.items())
        strings = sorted(string_counts.items())
        if order == "count":
            numbers.sort(key=lambda item: -item[1])
            strings.sort(key=lambda item: -item[1])
        values: dict[str, int] = {}
        for number, count in numbers:
            values[format_number(number)] = count
        for key, count in strings:
            values[index.original.get(key, key)] = count
        items = list(values.items())
        distribution[name] = dict(items if max_values is None else items[:max_values])
        if number_counts:
            stats[name] = {"min": float(min(number_counts)), "max": float(max(number_counts))}
    return distribution, stats


# ----------------------------------------------------------------------------- semantic search


def vector_rules(settings: dict[str, Any], sort: list[tuple[str, bool]]) -> list[Rule]:
    """The rules of a semantic search (milli's `get_ranking_rules_for_vector`): the first
    relevancy rule becomes `vectorSort` and the others vanish; sort rules stay in place."""
    ranking_rules = list(settings.get("rankingRules") or [])
    if sort and "sort" not in ranking_rules:
        raise MeiliError(
            "invalid_search_sort",
            "You must specify where `sort` is listed in the rankingRules setting to use the sort "
            "parameter at search time.",
        )
    rules: list[Rule] = []
    sorted_fields: set[str] = set()
    vector = False
    for name in ranking_rules:
        if name == "sort":
            for field_name, ascending in sort:
                if field_name not in sorted_fields:
                    sorted_fields.add(field_name)
                    rules.append(Rule("sort", field_name, ascending))
            continue
        custom = _CUSTOM_SORT_RULE.match(name)
        if custom:
            if custom.group(1) not in sorted_fields:
                sorted_fields.add(custom.group(1))
                rules.append(Rule("sort", custom.group(1), custom.group(2) == "asc"))
            continue
        if not vector:
            rules.append(Rule("vectorSort"))
            vector = True
    return rules


_CUSTOM_SORT_RULE = re.compile(r"^(.+):(asc|desc)$")


def _sort_value(searcher: IndexSearcher, rule: Rule, internal_id: int) -> tuple[int, Any]:
    """(bucket, value) as the keyword ranking's sort rule reads it: numbers, strings, none."""
    facts = searcher.facets.field(rule.field).facts.get(internal_id)
    if facts is not None and facts.numbers:
        return 0, (min(facts.numbers) if rule.ascending else max(facts.numbers))
    if facts is not None and facts.strings:
        values = [f.normalize_facet(s) for s in facts.strings]
        return 1, (min(values) if rule.ascending else max(values))
    return 2, None


# Over the complexity bar on purpose: the semantic search's steps (filter, rules, order,
# threshold, distinct, window, facets) read in sequence, as run_search's do.
def run_vector_search(  # noqa: C901
    searcher: IndexSearcher,
    request: SearchRequest,
    vector: list[float],
    embeddings: dict[int, list[list[float]]],
    distribution: dict[str, Any] | None,
) -> SearchOutcome:
    """A semantic search: every document matching the filter, best similarity first (documents
    without an embedding last, similarity null), with the sort rules where the settings put
    them; ties by internal id. `_rankingScore` is the similarity (0 without one)."""
    from miroir.devnode.search.vectors import similarity

    settings = searcher.settings
    filter_node = searcher.parse_filter(request.filter, error_code=request.filter_error_code)
    check_sortable(searcher, request.sort)
    facet_names = check_facets(searcher, request.facets) if request.facets is not None else None
    rules = vector_rules(settings, request.sort)
    universe = searcher.ids
    if filter_node is not None:
        universe = searcher.facets.evaluate(filter_node, universe)
    displayed = displayed_predicate(settings)
    similarities = {
        internal_id: similarity(vector, embeddings[internal_id], distribution)
        for internal_id in universe
        if internal_id in embeddings
    }

    def key(internal_id: int) -> tuple:
        parts: list[Any] = []
        for rule in rules:
            if rule.kind == "vectorSort":
                found = similarities.get(internal_id)
                parts.append((0, -found) if found is not None else (1, 0.0))
            else:
                bucket, value = _sort_value(searcher, rule, internal_id)
                if value is None:
                    parts.append((bucket,))
                elif bucket == 0:
                    parts.append((0, value if rule.ascending else -value))
                else:
                    parts.append((1, value) if rule.ascending else (1, Descending(value)))
        parts.append(internal_id)
        return tuple(parts)

    def details_of(internal_id: int) -> tuple[float, dict[str, Any], list[tuple]]:
        details: dict[str, Any] = {}
        values: list[tuple] = []
        for order, rule in enumerate(rules):
            if rule.kind == "vectorSort":
                found = similarities.get(internal_id)
                details["vectorSort"] = {"order": order, "similarity": found}
                values.append(("score", found or 0.0))
            else:
                bucket, value = _sort_value(searcher, rule, internal_id)
                name = f"{rule.field}:{'asc' if rule.ascending else 'desc'}"
                if not displayed(rule.field):
                    details[f"<hidden-rule-{order}>"] = {"order": order, "value": "<hidden>"}
                else:
                    details[name] = {"order": order, "value": value}
                values.append(("sort", rule.ascending, bucket, value))
        has_vector = any(r.kind == "vectorSort" for r in rules)
        score = (similarities.get(internal_id) or 0.0) if has_vector else 1.0
        return score, details, values

    ordered_list = sorted(universe, key=key)
    threshold = request.ranking_score_threshold
    if threshold is not None:
        ordered_list = [i for i in ordered_list if details_of(i)[0] >= threshold]
        counted = BitMap(ordered_list)
    else:
        counted = universe
    distinct = request.distinct if request.distinct is not None else settings.get("distinctAttribute")
    ordered: Iterator[int] = iter(ordered_list)
    if distinct:
        ordered, total = _apply_distinct(searcher, ordered, counted, distinct)
    else:
        total = len(counted)
    hits: list[Hit] = []
    window_end = request.offset + request.limit
    for position, internal_id in enumerate(ordered):
        if position >= window_end:
            break
        if position >= request.offset:
            score, details, values = details_of(internal_id)
            hits.append(Hit(internal_id, score, details, values))
    outcome = SearchOutcome(hits, total, parse_query("", settings), rules, matched_ids=counted)
    if facet_names is not None:
        outcome.facet_distribution, outcome.facet_stats = facet_counts(
            searcher, facet_names, counted
        )
    return outcome
