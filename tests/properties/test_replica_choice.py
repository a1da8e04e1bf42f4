"""Laws of `miroir.core.replica_choice`: adaptive covering sets and the hedging budget."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from miroir.core.placement import covering_set
from miroir.core.replica_choice import (
    HedgeBudget,
    LatencyStats,
    adaptive_covering_set,
    replica_score,
)

NODES = ["a", "b", "c", "d"]
owners = st.dictionaries(st.integers(0, 30), st.lists(st.sampled_from(NODES), unique=True,
                                                      max_size=3), max_size=20)
scores = st.fixed_dictionaries({n: st.floats(0, 10, allow_nan=False) for n in NODES})


@given(owners, st.integers(0, 1000), scores)
def test_every_shard_with_an_owner_is_asked_of_exactly_one_of_its_owners(by_shard, seq, score):
    plan = adaptive_covering_set(by_shard, seq, score.__getitem__)
    asked = [shard for shards in plan.values() for shard in shards]
    assert sorted(asked) == sorted(s for s, found in by_shard.items() if found)
    for node, shards in plan.items():
        for shard in shards:
            assert node in by_shard[shard]
            assert score[node] == min(score[n] for n in by_shard[shard])  # the best replica


@given(owners, st.integers(0, 1000), st.floats(0, 10, allow_nan=False))
def test_with_equal_scores_the_plan_is_round_robins(by_shard, seq, same):
    assert adaptive_covering_set(by_shard, seq, lambda node: same) == covering_set(by_shard, seq)


@given(st.floats(0, 5, allow_nan=False), st.integers(0, 50), st.integers(0, 50))
def test_more_work_ahead_never_makes_a_node_look_sooner(average, ahead, more):
    assert replica_score(average, ahead) <= replica_score(average, ahead + more)


@given(st.lists(st.one_of(st.just(0), st.integers(1, 4)), max_size=300),
       st.floats(0, 0.5, allow_nan=False))
def test_hedges_never_exceed_the_budgeted_share_of_calls(steps, ratio):
    """0 is a primary call; n > 0 a hedge decision asking n replicas at once."""
    budget = HedgeBudget(ratio=ratio)
    for step in steps:
        if step == 0:
            budget.earn()
        else:
            before = budget.hedges
            spent = budget.try_spend(step)
            assert budget.hedges - before == (step if spent else 0)  # all or nothing
        assert budget.hedges <= ratio * budget.primaries + 1e-9


@given(st.lists(st.floats(0, 10, allow_nan=False), min_size=20, max_size=300))
def test_p95_is_a_recent_latency_at_or_above_most_of_the_window(samples):
    stats = LatencyStats()
    for sample in samples:
        stats.record(sample)
    p95 = stats.p95()
    window = list(stats.window)
    assert p95 in window
    # Recomputed every 8 samples: at most 8 newer samples may be unaccounted for.
    assert sum(1 for s in window if s <= p95) >= 0.95 * len(window) - 8
