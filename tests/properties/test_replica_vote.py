"""Laws of `miroir.core.replica_vote`: the reconciler's vote between replicas' versions.

A strict majority always wins; a tie goes to the version most owners of the last-quorum group
hold; without a record (or one that does not separate the tied versions) the caller's order
decides; the choice depends on nothing but the arguments."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from miroir.core.replica_vote import (
    Decided,
    LastQuorum,
    decisive_group,
    majority_version,
    repair_version,
)

VERSIONS = ("a", "b", "c", "<absent>")
GROUPS = 3

# (owner, group, version) in placement order, owners named by position.
owners = st.lists(st.tuples(st.integers(0, GROUPS - 1), st.sampled_from(VERSIONS)),
                  min_size=1, max_size=8).map(
    lambda rows: [(f"n{i}", group, version) for i, (group, version) in enumerate(rows)])
records = st.none() | st.integers(0, GROUPS - 1)


@given(owners, records)
def test_the_choice_is_always_one_of_the_most_held_versions(held, last_group):
    counts = Counter(v for _, _, v in held)
    leader, _ = repair_version(held, last_group)
    assert counts[leader] == max(counts.values())


@given(owners, records)
def test_a_strict_majority_wins_whatever_the_record(held, last_group):
    counts = Counter(v for _, _, v in held).most_common()
    if len(counts) > 1 and counts[0][1] == counts[1][1]:
        return  # a tie: the next laws
    leader, decided = repair_version(held, last_group)
    assert leader == counts[0][0]
    assert decided in (Decided.UNANIMOUS, Decided.MAJORITY)
    assert (decided is Decided.UNANIMOUS) is (len(counts) == 1)


@given(owners, st.integers(0, GROUPS - 1))
def test_a_tie_goes_to_the_version_most_of_the_last_quorum_groups_owners_hold(held, group):
    counts = Counter(v for _, _, v in held)
    best = max(counts.values())
    leaders = {v for v, n in counts.items() if n == best}
    if len(leaders) < 2:
        return
    inside = Counter(v for _, g, v in held if g == group and v in leaders)
    leader, decided = repair_version(held, group)
    if inside and list(inside.values()).count(max(inside.values())) == 1:
        assert decided is Decided.LAST_QUORUM
        assert leader == inside.most_common(1)[0][0]
    else:
        # the group holds none of the tied versions, or as many of two: placement order
        assert decided is Decided.ORDER
        assert leader == next(v for _, _, v in held if v in leaders)


@given(owners)
def test_without_a_record_a_tie_goes_to_the_first_owner_in_the_callers_order(held):
    counts = Counter(v for _, _, v in held)
    best = max(counts.values())
    leader, decided = repair_version(held, None)
    assert leader == next(v for _, _, v in held if counts[v] == best)
    if decided is not Decided.ORDER:
        assert sorted(counts.values()).count(best) == 1
    # The settings vote (no groups) is the same rule without a record.
    assert majority_version([v for _, _, v in held])[0] == leader


@given(owners, records)
def test_the_choice_depends_on_the_versions_not_on_the_owners_names(held, last_group):
    renamed = [(f"other-{name}", group, version) for name, group, version in held]
    assert repair_version(renamed, last_group) == repair_version(held, last_group)


def test_the_group_that_took_a_write_the_other_missed_breaks_the_two_against_two_tie():
    """The case the record exists for: group 0's owners missed a write group 1 took."""
    held = [("n0", 0, "old"), ("n1", 0, "old"), ("n2", 1, "new"), ("n3", 1, "new")]
    assert repair_version(held, None) == ("old", Decided.ORDER)
    assert repair_version(held, 1) == ("new", Decided.LAST_QUORUM)
    assert repair_version(held, 0) == ("old", Decided.LAST_QUORUM)


pairs = st.lists(st.tuples(st.integers(0, 3), st.integers(0, GROUPS - 1)), unique=True,
                 max_size=12)


@given(pairs, pairs)
def test_a_write_teaches_only_the_shards_one_group_met_and_another_missed(met, missed):
    missed = [p for p in missed if p not in met]
    record = LastQuorum()
    record.record("idx", met, missed)
    for shard in range(4):
        met_groups = [g for s, g in met if s == shard]
        missed_groups = [g for s, g in missed if s == shard]
        expected = met_groups[-1] if met_groups and missed_groups else None
        assert record.group("idx", shard) == expected
        assert decisive_group(met, missed, shard) == expected
        assert record.group("other", shard) is None


def test_a_write_met_everywhere_leaves_the_record_and_forget_clears_an_index():
    record = LastQuorum()
    record.record("idx", [(2, 1)], [(2, 0)])
    assert record.group("idx", 2) == 1
    record.record("idx", [(2, 0), (2, 1)], [])  # both groups met: says nothing
    assert record.group("idx", 2) == 1
    record.record("idx", [(2, 0)], [(2, 1)])  # a later degraded write in the other group
    assert record.group("idx", 2) == 0
    record.record("other", [(2, 1)], [(2, 0)])
    record.forget("idx")
    assert record.group("idx", 2) is None and record.group("other", 2) == 1 and len(record) == 1
