"""Adaptive replica selection and the hedging budget: which replica answers a shard, and when a
second one may be asked (issue 20).

Theory of operation
-------------------
*Which replica.* With RF >= 2 a shard has several readable owners in a group; round robin
(`placement.covering_set`) spreads reads evenly whatever each node is doing. Adaptive selection
(after Elasticsearch's adaptive replica selection and C3) prefers the owner expected to answer
soonest: its moving-average latency times the work ahead of this read there (`1 + in_flight`
calls of this process). A node never measured scores 0, so it is tried and gets measured.
Ties keep round robin's order, so with equal nodes the plan is round robin's.

*When a second replica.* A shard's answer that is later than its node's recent p95 latency is
an outlier worth racing: the same shard query goes to another replica and the first answer
wins (the read path, `cluster.search`, cancels the loser). Hedges are budgeted: every primary
node call earns `ratio` of a token, a hedge spends one, and at most `burst` tokens are kept,
so hedges never exceed `ratio` of the node calls (plus `burst` at the start).

Pure: no clock; latencies are passed in (seconds). `LatencyStats` and `HedgeBudget` hold the
little state they need and are mutated only by their own methods.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence

import attrs

from miroir.core.admission import TokenBudget, ewma

# How many recent latencies a node's p95 is taken over, and how many it needs at least.
LATENCY_WINDOW = 128
MIN_SAMPLES_FOR_P95 = 20


class LatencyStats:
    """One node's recent call latencies: a moving average and a window for percentiles."""

    __slots__ = ("average_s", "window", "_p95", "_stale")

    def __init__(self) -> None:
        self.average_s: float | None = None
        self.window: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._p95: float | None = None
        self._stale = 0

    def record(self, seconds: float) -> None:
        self.average_s = ewma(self.average_s, seconds)
        self.window.append(seconds)
        self._stale += 1

    def p95(self) -> float | None:
        """The 95th percentile of the window (None until it holds MIN_SAMPLES_FOR_P95); kept
        and recomputed after every 8 new samples, which is plenty for a hedging threshold."""
        if len(self.window) < MIN_SAMPLES_FOR_P95:
            return None
        if self._p95 is None or self._stale >= 8:
            ordered = sorted(self.window)
            self._p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
            self._stale = 0
        return self._p95


def replica_score(average_s: float | None, in_flight: int) -> float:
    """Expected time to an answer from a node: its average latency times the work ahead."""
    return (average_s or 0.0) * (1 + in_flight)


def adaptive_covering_set(
    owners_by_shard: Mapping[int, Sequence[str]],
    query_seq: int,
    score: Callable[[str], float],
) -> dict[str, list[int]]:
    """One owner per shard, the lowest `score` first, ties in round-robin order
    (`placement.covering_set`'s rotation), grouped per node. Shards with no owner are left out."""
    plan: dict[str, list[int]] = {}
    for shard_id, owners in owners_by_shard.items():
        if not owners:
            continue
        turn = (query_seq + shard_id) % len(owners)
        rotated = list(owners[turn:]) + list(owners[:turn])
        node = min(rotated, key=score)  # min keeps the first of equal scores
        plan.setdefault(node, []).append(shard_id)
    return plan


@attrs.define
class HedgeBudget(TokenBudget):
    """Tokens for hedged calls: `ratio` per primary call, one per hedge, at most `burst` kept;
    it counts both."""

    ratio: float = 0.1
    burst: float = 10.0
    tokens: float = 0.0
    primaries: int = 0
    hedges: int = 0

    def earn(self, calls: int = 1) -> None:
        self.primaries += calls
        super().earn(calls)

    def try_spend(self, calls: int = 1) -> bool:
        if not super().try_spend(calls):
            return False
        self.hedges += calls
        return True
