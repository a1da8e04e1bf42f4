"""How a federated multi-search orders hits coming from different queries.

Owns Meilisearch's comparison of federated hits (shared/reference/meilisearch-ranking.md §6):
each hit is a list of values, consecutive relevancy rules folded into one score times the
query's weight, and each sort rule its value. Lists compare element by element: scores tie
within f64::EPSILON; sorts in the same direction compare values (no value is worst, numbers
beat strings, ascending prefers the smaller); when two elements cannot be compared the hit with
more elements left wins, and with as many left the weighted global score decides; a list that
ends first loses; a full tie puts the earlier query first, then the query's own order.

Must never: run searches or render hits (search_routes does).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

EPSILON = 2.220446049250313e-16


@dataclass
class FederatedHit:
    values: list[tuple]  # from DocRanking.federation_values, not yet weighted
    weight: float
    score: float  # global score
    position: int  # queriesPosition
    rank: int  # position in its query's own order
    rendered: dict[str, Any]

    @property
    def weighted_score(self) -> float:
        return self.score * self.weight


def _compare_sort(a: tuple, b: tuple) -> int:
    """-1 if `a` ranks first. Elements are ("sort", ascending, bucket, value)."""
    _, ascending, bucket_a, value_a = a
    _, _, bucket_b, value_b = b
    if bucket_a != bucket_b:  # numbers (0) before strings (1) before no value (2)
        return -1 if bucket_a < bucket_b else 1
    if value_a == value_b:
        return 0
    if bucket_a == 1:
        value_a, value_b = value_a.encode(), value_b.encode()
    smaller_first = value_a < value_b
    return (-1 if smaller_first else 1) if ascending else (1 if smaller_first else -1)


def _compare_values(a: tuple, b: tuple, weight_a: float, weight_b: float) -> int | None:
    if a[0] != b[0]:
        return None
    if a[0] == "score":
        x, y = a[1] * weight_a, b[1] * weight_b
        if abs(x - y) <= EPSILON:
            return 0
        return -1 if x > y else 1
    if a[1] != b[1]:  # opposite directions
        return None
    return _compare_sort(a, b)


def compare(a: FederatedHit, b: FederatedHit) -> int:
    for index, (x, y) in enumerate(zip(a.values, b.values, strict=False)):
        result = _compare_values(x, y, a.weight, b.weight)
        if result is None:
            left_a, left_b = len(a.values) - index, len(b.values) - index
            if left_a != left_b:
                return -1 if left_a > left_b else 1
            if a.weighted_score != b.weighted_score:
                return -1 if a.weighted_score > b.weighted_score else 1
            break
        if result:
            return result
    else:
        if len(a.values) != len(b.values):
            return -1 if len(a.values) > len(b.values) else 1
    if (a.position, a.rank) == (b.position, b.rank):
        return 0
    return -1 if (a.position, a.rank) < (b.position, b.rank) else 1


def ordered(hits: list[FederatedHit]) -> list[FederatedHit]:
    return sorted(hits, key=functools.cmp_to_key(compare))
