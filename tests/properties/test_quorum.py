"""Laws of miroir.core.quorum, checked against a brute-force oracle over random write shapes."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from miroir.core.quorum import PairState, WriteTally, pair_state, quorum_size, with_required_acks


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


@given(writes(), st.data())
def test_required_acks_only_demote_met_pairs_that_lack_one(write, data):
    """`with_required_acks` against the oracle: a pair is met iff the plain rule met it and
    every node required for it acked; the verdict's other fields follow from that."""
    rf, targets, outcomes, arrival = write
    tally = WriteTally(targets, rf)
    for node in arrival:
        tally.record(node, outcomes[node])
    plain = tally.finish()
    nodes = sorted({n for ns in targets.values() for n in ns} | {"extra"})
    required = {pair: data.draw(st.lists(st.sampled_from(nodes), max_size=2, unique=True))
                for pair in targets}
    acked = {n for n, ok in outcomes.items() if ok}
    verdict = with_required_acks(plain, required, acked)
    met = {pair for pair in plain.met if set(required[pair]) <= acked}
    assert verdict.met == met and verdict.missed == set(targets) - met and not verdict.open
    shards = {shard for shard, _ in targets}
    assert verdict.shards_without_quorum == {
        s for s in shards if not any((s, g) in met for t, g in targets if t == s)}
    assert verdict.degraded_groups == {g for _, g in set(targets) - met}
    assert verdict.succeeded <= plain.succeeded
    assert with_required_acks(plain, {}, acked) == plain
