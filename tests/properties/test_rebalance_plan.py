"""Laws of the rebalance plan (`miroir.core.rebalance_plan`): the diff of two epochs' placements."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.rebalance_plan import (
    PlanError,
    copy_sources,
    minimum_copies,
    plan_between,
    plan_rebalance,
)
from miroir.core.topology import Node, Placement, Topology

node_names = st.text("abcdefghij0123456789-", min_size=1, max_size=8)


@st.composite
def topologies(draw, min_groups=1):
    shards = draw(st.integers(1, 64))
    rf = draw(st.integers(1, 3))
    groups = draw(st.integers(min_groups, 3))
    names = draw(st.lists(node_names, min_size=groups, max_size=12, unique=True))
    # every group gets at least one node; the rest are spread by the draw
    assignment = list(range(groups)) + draw(
        st.lists(st.integers(0, groups - 1), min_size=len(names) - groups,
                 max_size=len(names) - groups)
    )
    nodes = tuple(Node(name, f"http://{name}", g) for name, g in zip(names, assignment, strict=True))
    return Topology(shards, rf, groups, nodes)


def fresh_name(topology, draw):
    taken = {n.id for n in topology.nodes}
    return draw(node_names.filter(lambda name: name not in taken))


def apply(plan, before):
    """The owners the plan leads to: old owners plus gains minus losses, per (group, shard)."""
    owners = {
        (g, s): set(before.owners[g][s])
        for g in range(len(before.owners))
        for s in range(before.shards)
    }
    for move in plan:
        current = owners.setdefault((move.group, move.shard), set())
        assert set(move.loses) <= current and not set(move.gains) & current
        current |= set(move.gains)
        current -= set(move.loses)
    return owners


@given(topologies(), st.data())
def test_adding_a_node_moves_only_its_shards(topology, data):
    group = data.draw(st.integers(0, topology.replica_groups - 1))
    new = fresh_name(topology, data.draw)
    after = topology.with_node(Node(new, "http://new", group))
    plan = plan_between(topology, after)
    after_placement = Placement.compute(after)
    assert all(move.gains == (new,) for move in plan)
    assert all(move.group == group for move in plan)
    assert {m.shard for m in plan} == set(after_placement.shards_of[new])
    # a full group hands one owner over per moved shard; a group short of RF just grows
    for move in plan:
        assert len(move.loses) <= 1


@given(topologies(), st.data())
def test_removing_a_node_moves_only_its_shards(topology, data):
    victim = data.draw(st.sampled_from([n.id for n in topology.nodes]))
    after = topology.without_node(victim)
    plan = plan_between(topology, after)
    before_placement = Placement.compute(topology)
    assert all(move.loses == (victim,) for move in plan)
    assert {m.shard for m in plan} == set(before_placement.shards_of[victim])
    assert all(len(move.gains) <= 1 for move in plan)


@given(topologies(), topologies(), st.data())
def test_nothing_moves_in_a_group_whose_members_did_not_change(a, b, data):
    # any two membership sets over the same shards and RF; groups with equal members move nothing
    b = Topology(a.shards, a.replication_factor, b.replica_groups, b.nodes)
    before, after = Placement.compute(a), Placement.compute(b)
    plan = plan_rebalance(before, after)
    for move in plan:
        old_members = before.members[move.group] if move.group < len(before.members) else ()
        new_members = after.members[move.group] if move.group < len(after.members) else ()
        assert old_members != new_members
        group_nodes = set(old_members) | set(new_members)
        assert set(move.gains) | set(move.loses) | set(move.keeps) <= group_nodes


@given(topologies(), topologies())
def test_the_plan_leads_to_the_new_owners_with_the_fewest_copies(a, b):
    b = Topology(a.shards, a.replication_factor, b.replica_groups, b.nodes)
    before, after = Placement.compute(a), Placement.compute(b)
    plan = plan_rebalance(before, after)
    reached = apply(plan, before)
    for g in range(len(after.owners)):
        for s in range(after.shards):
            assert reached[(g, s)] == set(after.owners[g][s])
    assert plan.replicas_copied == minimum_copies(before, after)
    assert len({m.key for m in plan}) == len(plan)


@given(topologies(), st.data())
def test_a_new_group_copies_from_the_other_groups(topology, data):
    names = data.draw(st.lists(node_names, min_size=1, max_size=4, unique=True))
    taken = {n.id for n in topology.nodes}
    names = [f"new-{n}" for n in names if f"new-{n}" not in taken]
    group = topology.replica_groups
    after = Topology(
        topology.shards, topology.replication_factor, group + 1,
        (*topology.nodes, *(Node(n, "http://new", group) for n in names)),
    )
    before_placement = Placement.compute(topology)
    plan = plan_between(topology, after)
    assert {m.group for m in plan} == {group}
    assert len(plan) == topology.shards
    for move in plan:
        assert not move.loses and not move.keeps
        sources = copy_sources(move, before_placement)
        expected = {
            n for g in range(topology.replica_groups) for n in before_placement.owners[g][move.shard]
        }
        assert set(sources) == expected


@given(topologies(), st.data())
def test_a_move_copies_from_its_own_group_kept_owners_first(topology, data):
    victim = data.draw(st.sampled_from([n.id for n in topology.nodes]))
    before = Placement.compute(topology)
    plan = plan_between(topology, topology.without_node(victim))
    for move in plan:
        sources = copy_sources(move, before)
        assert sources[: len(move.keeps)] == move.keeps
        assert set(sources) == set(before.owners[move.group][move.shard])


def test_the_shard_count_cannot_change_in_a_rebalance():
    nodes = (Node("a", "http://a", 0),)
    with pytest.raises(PlanError):
        plan_between(Topology(8, 1, 1, nodes), Topology(16, 1, 1, nodes))


def test_the_fraction_moved_on_add_is_near_s_rf_over_n_plus_one():
    """Statistical, over many node sets: adding a 4th node to 3 moves S*RF/4 replicas on average."""
    shards, rf, trials = 64, 2, 200
    total = 0
    for trial in range(trials):
        nodes = tuple(Node(f"t{trial}-n{i}", "http://x", 0) for i in range(3))
        before = Topology(shards, rf, 1, nodes)
        plan = plan_between(before, before.with_node(Node(f"t{trial}-new", "http://x", 0)))
        total += plan.replicas_copied
    mean = total / trials
    expected = shards * rf / 4
    assert abs(mean - expected) / expected < 0.1
