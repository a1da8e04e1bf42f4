"""Laws of miroir.core.quorum, checked against a brute-force oracle over random write shapes."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from miroir.core.quorum import PairState, WriteTally, pair_state, quorum_size


@st.composite
def writes(draw):
    """A write: rf, targets per (shard, group), and an outcome schedule in arrival order.

    Outcome per node: True (acked), False (failed/rejected) or None (never answered)."""
    rf = draw(st.integers(1, 4))
    groups = draw(st.integers(1, 3))
    shards = draw(st.integers(1, 4))
    targets = {}
    for group in range(groups):
        nodes = [f"g{group}n{i}" for i in range(draw(st.integers(1, 5)))]
        for shard in range(shards):
            size = draw(st.integers(0, min(rf, len(nodes))))
            targets[(shard, group)] = draw(
                st.lists(st.sampled_from(nodes), min_size=size, max_size=size, unique=True)
            )
    all_nodes = sorted({node for nodes in targets.values() for node in nodes})
    outcomes = {node: draw(st.sampled_from([True, False, None])) for node in all_nodes}
    arrival = draw(st.permutations([node for node in all_nodes if outcomes[node] is not None]))
    return rf, targets, outcomes, arrival


def oracle(rf, targets, outcomes):
    """Brute force: count each pair's acks from scratch; no incremental state."""
    met = {
        pair for pair, nodes in targets.items() if sum(bool(outcomes[n]) for n in nodes) > rf / 2
    }
    missed = set(targets) - met
    shards = {shard for shard, _ in targets}
    without = {
        shard for shard in shards if not any((shard, g) in met for s, g in targets if s == shard)
    }
    return met, missed, without, {group for _, group in missed}


@given(writes())
@example((3, {(0, 0): ["a", "b", "c"]}, {"a": True, "b": True, "c": None}, ["a", "b"]))
@example(
    (2, {(0, 0): ["a", "b"], (0, 1): ["c"]}, {"a": True, "b": False, "c": True}, ["c", "b", "a"])
)
def test_final_verdict_matches_the_brute_force_oracle_in_any_arrival_order(write):
    rf, targets, outcomes, arrival = write
    tally = WriteTally(targets, rf)
    for node in arrival:
        tally.record(node, outcomes[node])
    verdict = tally.finish()
    met, missed, without, degraded = oracle(rf, targets, outcomes)
    assert verdict.met == met and verdict.missed == missed and not verdict.open
    assert verdict.shards_without_quorum == without
    assert verdict.degraded_groups == degraded
    assert verdict.succeeded == (not without)


@given(writes())
def test_a_decision_read_mid_write_never_changes(write):
    rf, targets, outcomes, arrival = write
    met, missed, without, _ = oracle(rf, targets, outcomes)
    tally = WriteTally(targets, rf)
    for node in [None, *arrival]:
        if node is not None:
            tally.record(node, outcomes[node])
        early = tally.verdict()
        assert early.met <= met and early.missed <= missed
        assert early.shards_without_quorum <= without
        assert early.met | early.missed | early.open == set(targets)


@given(writes())
def test_once_every_target_answered_nothing_is_open(write):
    rf, targets, outcomes, _ = write
    tally = WriteTally(targets, rf)
    for node in tally.nodes:
        tally.record(node, bool(outcomes[node]))
    assert not tally.pending_nodes and tally.verdict().decided


@given(st.integers(0, 6), st.integers(0, 6), st.integers(1, 5))
def test_pair_state_table(acks, pending, needed):
    state = pair_state(acks, pending, needed)
    assert (state is PairState.MET) == (acks >= needed)
    assert (state is PairState.MISSED) == (acks + pending < needed)


@given(st.integers(1, 50))
def test_quorum_is_a_strict_majority_of_rf(rf):
    needed = quorum_size(rf)
    assert needed > rf / 2 and needed - 1 <= rf / 2


def test_misuse_says_what_was_attempted():
    tally = WriteTally({(0, 0): ["a"]}, 1)
    tally.record("a", True)
    with pytest.raises(ValueError, match="already recorded"):
        tally.record("a", False)
    with pytest.raises(ValueError, match="not a target"):
        tally.record("zz", True)
    tally.finish()
    with pytest.raises(ValueError, match="after finish"):
        tally.record("a", True)
    with pytest.raises(ValueError):
        quorum_size(0)
