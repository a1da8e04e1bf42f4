"""Laws of routing while shards move (`miroir.core.migration_map`)."""

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.migration_map import MigratingShardMap, Migration, required_acks
from miroir.core.node_state import ELIGIBILITY, NodeEvent, NodeState
from miroir.core.rebalance_plan import plan_rebalance
from miroir.core.topology import Node, ShardMap, Topology, TopologyError
from tests.properties.test_rebalance_plan import fresh_name, topologies

health = st.sampled_from([NodeState.ACTIVE, NodeState.HEALTHY, NodeState.DEGRADED,
                          NodeState.FAILED])


def with_states(topology, states):
    return Topology(topology.shards, topology.replication_factor, topology.replica_groups,
                    tuple(Node(n.id, n.address, n.replica_group, states.get(n.id, n.state))
                          for n in topology.nodes))


@st.composite
def migrations(draw, kinds=("add", "drain", "group")):
    """A topology mid-rebalance: a node added (joining) or drained (draining), or a group added;
    every node in some health state."""
    base = draw(topologies())
    kind = draw(st.sampled_from(kinds))
    source = [base.group_members(g) for g in range(base.replica_groups)]
    if kind == "add":
        group = draw(st.integers(0, base.replica_groups - 1))
        new = fresh_name(base, draw)
        topology = base.with_node(Node(new, "http://new", group, NodeState.JOINING))
        target = [(*m, new) if g == group else m for g, m in enumerate(source)]
    elif kind == "drain":
        victim = draw(st.sampled_from([n.id for n in base.nodes]))
        topology = base.with_event(victim, NodeEvent.DRAIN)
        target = [tuple(n for n in m if n != victim) for m in source]
    else:
        names = [f"ng-{i}" for i in range(draw(st.integers(1, 3)))]
        group = base.replica_groups
        topology = Topology(base.shards, base.replication_factor, group + 1,
                            (*base.nodes,
                             *(Node(n, "http://new", group, NodeState.JOINING) for n in names)))
        target = [*source, tuple(names)]
    states = {n.id: draw(health) for n in topology.nodes
              if n.state not in (NodeState.JOINING, NodeState.DRAINING)}
    topology = with_states(topology, states)
    migration = Migration("r1", tuple(tuple(m) for m in source), tuple(tuple(m) for m in target))
    return topology, migration


@given(migrations())
def test_writes_reach_every_old_and_new_owner_that_takes_writes(case):
    topology, migration = case
    m = MigratingShardMap.build_migrating(topology, migration)
    for shard in range(m.shards):
        written = set(m.write_targets(shard))
        for g in range(m.replica_groups):
            for node in {*m.owners(g, shard), *m.target_owners(g, shard)}:
                takes = ELIGIBILITY[m.state_of(node)].takes_writes
                assert ((g, node) in written) == takes
        assert len(written) == len(m.write_targets(shard))  # no node written twice


@given(migrations())
def test_quorum_and_reads_never_involve_a_node_that_is_only_a_new_owner(case):
    topology, migration = case
    m = MigratingShardMap.build_migrating(topology, migration)
    for shard in range(m.shards):
        for g in range(m.replica_groups):
            old = set(m.owners(g, shard))
            assert {n for _, n in m.all_owners(shard) if _ == g} == old
            assert set(m.readable_owners(g, shard)) <= old
            for node in m.readable_owners(g, shard):
                assert m.state_of(node) is not NodeState.FAILED


@given(st.one_of(migrations(), migrations(kinds=("drain",))), st.integers(0, 50))
def test_a_read_skips_the_shard_filter_only_on_a_node_holding_exactly_those_shards(case, seq):
    topology, migration = case
    m = MigratingShardMap.build_migrating(topology, migration)
    for g in range(m.replica_groups):
        nodes, _ = m.read_plan(g, seq)
        for node, shards, exact in nodes:
            if exact:
                source = set(m.placement.shards_of.get(node, ()))
                target = set(m.target.shards_of.get(node, ()))
                assert set(shards) == source == target | source
                assert target <= source


@given(migrations())
def test_a_draining_node_keeps_serving_its_shards_until_cutover(case):
    topology, migration = case
    m = MigratingShardMap.build_migrating(topology, migration)
    for node in topology.nodes:
        if node.state is NodeState.DRAINING:
            for shard in m.placement.shards_of.get(node.id, ()):
                assert node.id in m.readable_owners(node.replica_group, shard)


@given(topologies())
def test_with_nothing_moving_it_routes_like_a_plain_shard_map(topology):
    members = tuple(topology.group_members(g) for g in range(topology.replica_groups))
    m = MigratingShardMap.build_migrating(topology, Migration("r", members, members))
    plain = ShardMap.build(topology)
    assert not plan_rebalance(m.placement, m.target).moves
    for shard in range(topology.shards):
        assert m.write_targets(shard) == plain.write_targets(shard)
        assert m.all_owners(shard) == plain.all_owners(shard)
        for g in range(topology.replica_groups):
            assert m.readable_owners(g, shard) == plain.readable_owners(g, shard)
    for node in topology.nodes:
        assert m.shards_of(node.id) == tuple(sorted(plain.shards_of(node.id)))


def test_a_migration_naming_an_unknown_node_is_refused():
    topology = Topology(4, 1, 1, (Node("a", "http://a", 0),))
    with pytest.raises(TopologyError, match="unknown node 'b'"):
        MigratingShardMap.build_migrating(topology, Migration("r", (("a",),), (("a", "b"),)))


def test_a_node_gaining_a_shard_is_read_with_the_filter_even_for_its_own_shards():
    """Draining `a` at RF=1: `b` keeps its shards and is being filled with some of `a`'s, so a
    read of its own shards must filter, or the partial copy would be counted twice."""
    topology = Topology(8, 1, 1, tuple(Node(n, "http://x", 0) for n in "abc"))
    topology = topology.with_event("a", NodeEvent.DRAIN)
    m = MigratingShardMap.build_migrating(topology, Migration("r", (("a", "b", "c"),),
                                                              (("b", "c"),)))
    nodes, uncovered = m.read_plan(0, 0)
    assert not uncovered
    gained = set(m.target.shards_of["b"]) - set(m.placement.shards_of["b"])
    assert gained  # the case is meaningful: b gains some of a's shards
    (b_shards, b_exact), = [(shards, exact) for node, shards, exact in nodes if node == "b"]
    assert set(b_shards) == set(m.placement.shards_of["b"]) and not b_exact


@given(migrations(), st.booleans())
def test_only_a_cutting_migration_requires_acks_and_then_exactly_every_new_owner(case, cutting):
    topology, migration = case
    m = MigratingShardMap.build_migrating(topology, attrs.evolve(migration, cutting=cutting))
    required = required_acks(m, range(m.shards))
    for shard in range(m.shards):
        for g in range(m.replica_groups):
            new = set(m.target_owners(g, shard)) - set(m.owners(g, shard))
            assert set(required.get((shard, g), ())) == (new if cutting else set())
    assert required_acks(ShardMap.build(topology), range(topology.shards)) == {}


@given(topologies(), st.data())
def test_a_forced_removal_counts_quorum_on_the_new_owners_and_never_touches_the_removed_node(
        base, data):
    victim = data.draw(st.sampled_from([n.id for n in base.nodes]))
    source = tuple(base.group_members(g) for g in range(base.replica_groups))
    target = tuple(tuple(n for n in m if n != victim) for m in source)
    topology = with_states(base, {victim: NodeState.REMOVED})
    m = MigratingShardMap.build_migrating(topology, Migration("f", source, target, forced=True))
    for shard in range(m.shards):
        assert victim not in {n for _, n in m.write_targets(shard)}
        for g in range(m.replica_groups):
            old = m.placement.owners[g][shard]
            survivor_here = any(n != victim for n in old)
            survivor_elsewhere = any(n != victim for h in range(m.replica_groups) if h != g
                                     for n in m.placement.owners[h][shard])
            # a group copying from another group counts only its old owners (the gone one)
            assert m.owners(g, shard) == (
                old if not survivor_here and survivor_elsewhere else m.target_owners(g, shard))
            assert victim not in m.readable_owners(g, shard)
            # reads stay on survivors that held the shard before: a new owner is not complete
            assert set(m.readable_owners(g, shard)) <= set(m.placement.owners[g][shard])
        assert {n for _, n in m.all_owners(shard)} == {
            n for g in range(m.replica_groups) for n in m.owners(g, shard)}
