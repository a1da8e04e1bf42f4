"""The global order of hits from different shards: one sort key per hit, read from its details.

Owns `ranking_key(details)`, `RankingKeys`, `compile_hit_key(names)`, `reports_values(names)`,
`sort_value_key(value, ascending)` and `score_key(hit)`. It never reorders anything itself; `miroir.core.merge` sorts
with these keys.

Theory. Inside one index Meilisearch's bucket sort orders hits lexicographically by the
ranking rules in their configured order (reference/meilisearch-ranking.md §1, §5). Every
relevancy rule reports `score = rank / maxRank` in `_rankingScoreDetails`, and that number
depends only on the document and the query, never on the rest of the corpus; a `sort` rule
reports the document's `value` instead. So a tuple with one element per detail entry, in the
details' `order`, compares two hits from *different* shards exactly as one node holding both
would: relevancy rules by score descending, sort rules by value in their direction, with
Meilisearch's buckets (numbers, then strings, then no value; strings by bytes).

Without a `sort` rule the tuple collapses: `_rankingScore` is the lexicographic fold of the
same ranks (`s(r1..rn) = (r1 - 1 + s(r2..rn)) / m1`), so comparing it alone gives the same
order. That is the fast path (`score_key`). As soon as a `sort` rule sits between relevancy
rules the fold skips it and the full tuple is required.

Exact ties (identical details) are not decided here: the merge sorts stably, so ties keep the
order of the node bodies and, inside a body, the node's own order.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from operator import itemgetter
from typing import Any

# Sort-value buckets, in Meilisearch's order for asc and desc alike.
_NUMBER, _STRING, _MISSING, _HIDDEN = 0, 1, 2, 3

# How each detail entry is read, decided once per entry name.
_RELEVANCY, _SORT, _GEO, _VECTOR, _SKIPPED, _PIN = range(6)


def _desc_string(text: str) -> tuple[int, ...]:
    """A key that orders strings by descending bytes (UTF-8 order = code point order).

    Negated code points, then a terminator larger than any of them, so a prefix sorts after
    the strings it prefixes ("abc" before "ab" when descending).
    """
    return (*(-ord(ch) for ch in text), 1)


def sort_value_key(value: Any, ascending: bool) -> tuple:
    """The key of one `sort` detail value: numbers, then strings, then missing, either way."""
    if value is None:
        return (_MISSING,)
    if isinstance(value, bool):  # booleans are string facets in Meilisearch
        value = "true" if value else "false"
    if isinstance(value, int | float):
        return (_NUMBER, value if ascending else -value)
    if isinstance(value, str):
        if value == "<hidden>":
            return (_HIDDEN,)
        return (_STRING, value) if ascending else (_STRING, _desc_string(value))
    return (_HIDDEN,)


def _entry_kind(name: str) -> tuple[int, bool]:
    if name.startswith("_geoPoint("):
        return _GEO, name.endswith(":asc")
    if name.endswith(":asc"):
        return _SORT, True
    if name.endswith(":desc"):
        return _SORT, False
    if name.startswith("<hidden-rule-"):
        return _SORT, True  # value is "<hidden>" whatever the direction
    if name == "vectorSort":
        return _VECTOR, False
    if name == "skipped":
        return _SKIPPED, False
    if name == "pin":
        return _PIN, True
    return _RELEVANCY, False


class RankingKeys:
    """Builds rule-by-rule keys for the hits of one merge.

    The key is a tuple of segments: each run of consecutive relevancy rules becomes one tuple
    of negated scores, each other rule one element. All hits of one query carry the same detail
    names in the same order, so the first hit's names give a specialised plan whose relevancy
    runs are read with `itemgetter`; a hit with other names (a cutoff's `skipped`, say) takes
    the general path, which yields the same shape. (`compile_hit_key` is the faster flat form
    the merge tries first; this class is its fallback and the readable reference.)

    `hit_key` also replaces a relevancy run that ends the rules (after a sort) by
    `-_rankingScore`: when everything before it ties, the global score, a fold of all the
    relevancy ranks, orders exactly by that last run, and one lookup is cheaper than a run.
    """

    __slots__ = ("_kinds", "_names", "_plan", "_sort_cache")

    def __init__(self) -> None:
        self._kinds: dict[str, tuple[int, bool]] = {}
        self._names: tuple[str, ...] | None = None
        self._plan: list[tuple[Any, ...]] = []
        self._sort_cache: dict[tuple[Any, bool], tuple] = {}

    def _kind(self, name: str) -> tuple[int, bool]:
        kind = self._kinds.get(name)
        if kind is None:
            kind = self._kinds[name] = _entry_kind(name)
        return kind

    def _specialise(self, names: tuple[str, ...]) -> None:
        self._names = names
        plan: list[tuple[Any, ...]] = []
        run: list[str] = []
        for name in names:
            what, ascending = self._kind(name)
            if what == _RELEVANCY:
                run.append(name)
                continue
            if run:
                plan.append((_RELEVANCY, itemgetter(*run) if len(run) > 1 else _one(run[0])))
                run = []
            plan.append((what, name, ascending))
        if run:
            plan.append((_RELEVANCY, itemgetter(*run) if len(run) > 1 else _one(run[0])))
        self._plan = plan

    def _sort_part(self, value: Any, ascending: bool) -> tuple:
        try:
            return self._sort_cache[(value, ascending)]
        except KeyError:
            part = self._sort_cache[(value, ascending)] = sort_value_key(value, ascending)
            return part
        except TypeError:  # an unhashable value
            return sort_value_key(value, ascending)

    def key(self, details: Mapping[str, Any]) -> tuple:
        """The key from the details alone (every run spelled out)."""
        return self._key(details, None)

    def hit_key(self, hit: Mapping[str, Any]) -> tuple:
        """The key of a hit (a trailing run read from `_rankingScore`)."""
        return self._key(hit.get("_rankingScoreDetails") or {}, -hit.get("_rankingScore", 0.0))

    def _key(self, details: Mapping[str, Any], negated_score: float | None) -> tuple:
        if self._names is None:
            self._specialise(tuple(details))
        plan = self._plan
        try:
            parts: list[Any] = []
            last = len(plan) - 1
            for index, step in enumerate(plan):
                what = step[0]
                if what == _RELEVANCY:
                    if index == last and index and negated_score is not None:
                        parts.append((negated_score,))
                    else:
                        parts.append(tuple([-entry["score"] for entry in step[1](details)]))
                elif what == _SORT:
                    entry = details[step[1]]
                    value = entry["value"] if isinstance(entry, Mapping) else entry
                    parts.append(self._sort_part(value, step[2]))
                else:
                    parts.append(_other_part(what, step[2], details[step[1]]))
            if len(details) == len(self._names):
                return tuple(parts)
        except (KeyError, TypeError):
            pass
        return self._general_key(details, negated_score)

    def _general_key(self, details: Mapping[str, Any], negated_score: float | None) -> tuple:
        parts: list[Any] = []
        run: list[float] = []
        for name, entry in details.items():
            what, ascending = self._kind(name)
            if what == _RELEVANCY:
                run.append(-entry["score"])
                continue
            if run:
                parts.append(tuple(run))
                run = []
            parts.append(_other_part(what, ascending, entry))
        if run:
            parts.append((negated_score,) if parts and negated_score is not None else tuple(run))
        return tuple(parts)


class KeyShapeMismatch(Exception):
    """A hit's details do not have the names the compiled key was built for."""


def compile_hit_key(names: tuple[str, ...]) -> Any:
    """A fast key for hits whose details have exactly `names`, in that order.

    The key is flat: a float per relevancy rule (negated score), a tuple per other rule, and
    `-_rankingScore` for a relevancy run that ends the rules after a sort (see `RankingKeys`).
    It orders exactly like `RankingKeys.hit_key`; a hit with other names raises
    `KeyShapeMismatch`, and the caller then sorts everything with `RankingKeys`.

    Why generated code: one merge builds a key per hit (a thousand per page of 1,000), and
    an unrolled function is about three times faster than a loop over the rules. The source text
    holds only generated identifiers (`n0`, `e0`, ...); every field name and direction is
    bound in the namespace, so nothing a client or a node sends becomes code.
    """
    kinds = [_entry_kind(name) for name in names]
    namespace: dict[str, Any] = {
        "expected": len(names), "Mismatch": KeyShapeMismatch, "other": _other_part,
        "sort_value_key": sort_value_key, "dict": dict,
    }
    body = ["d = h['_rankingScoreDetails']", "if len(d) != expected: raise Mismatch"]
    parts: list[str] = []
    last_relevancy_run = [i for i, (what, _) in enumerate(kinds) if what != _RELEVANCY]
    trailing_from = (last_relevancy_run[-1] + 1) if last_relevancy_run else len(names)
    for i, (name, (what, ascending)) in enumerate(zip(names, kinds, strict=True)):
        namespace[f"n{i}"] = name
        namespace[f"a{i}"] = ascending
        if what == _RELEVANCY:
            if last_relevancy_run and i >= trailing_from:
                body.append(f"d[n{i}]")  # the name must be there even if the score stands in
                if i == trailing_from:
                    parts.append("-h['_rankingScore']")
                continue
            parts.append(f"-d[n{i}]['score']")
        elif what == _SORT:
            namespace[f"c{i}"] = {}
            body += [
                f"x{i} = d[n{i}]",
                f"x{i} = x{i}['value'] if x{i}.__class__ is dict else x{i}",
                f"s{i} = c{i}.get(x{i})",
                f"if s{i} is None: s{i} = c{i}[x{i}] = sort_value_key(x{i}, a{i})",
            ]
            parts.append(f"s{i}")
        else:
            parts.append(f"other({what}, a{i}, d[n{i}])")
    source = "def key(h):\n    " + "\n    ".join(body) + f"\n    return ({', '.join(parts)},)\n"
    exec(compile(source, "<miroir.merge_order.compiled_key>", "exec"), namespace)
    return namespace["key"]


def _one(name: str):
    """`itemgetter` of one name, returning a 1-tuple like the multi-name form does."""
    return lambda details: (details[name],)


def _other_part(what: int, ascending: bool, entry: Any) -> tuple:
    if not isinstance(entry, Mapping):  # a bare "<hidden>" in place of {order, value}
        return sort_value_key(entry, ascending) if what == _SORT else (_HIDDEN,)
    if what == _SORT:
        return sort_value_key(entry.get("value"), ascending)
    if what == _GEO:
        distance = entry.get("distance")
        if entry.get("value") is None or distance is None:
            return (_MISSING,)
        return (_NUMBER, distance if ascending else -distance)
    if what == _VECTOR:
        return (0, -(entry.get("similarity") or 0.0))
    if what == _PIN:
        return (0, entry.get("position", 0))
    return (0, 0.0)  # skipped: the cutoff stopped ranking here, every hit ties


def details_in_order(details: Mapping[str, Any]) -> Mapping[str, Any]:
    """`details` in the order of their `order` fields (nodes emit them ordered already)."""
    previous = -1
    for entry in details.values():
        position = entry.get("order", previous + 1) if isinstance(entry, Mapping) else previous + 1
        if position < previous:
            return dict(sorted(details.items(), key=lambda item: item[1].get("order", 0)))
        previous = position
    return details


def ranking_key(details: Mapping[str, Any]) -> tuple:
    """The rule-by-rule key of one hit from its `_rankingScoreDetails` (smaller sorts first)."""
    return RankingKeys().key(details_in_order(details))


@lru_cache(maxsize=256)  # an index's detail names repeat search after search
def reports_values(names: tuple[str, ...]) -> bool:
    """Whether details with these entry names contain a rule that `_rankingScore` skips."""
    return any(_entry_kind(name)[0] != _RELEVANCY for name in names)


def score_key(hit: Mapping[str, Any]) -> float:
    """The fast-path key when no rule reports a value: global score, descending."""
    return -hit.get("_rankingScore", 0.0)
