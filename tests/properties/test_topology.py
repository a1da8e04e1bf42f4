"""Laws of topology changes and node states, driven by a hypothesis state machine.

The model beside the system is a brute-force placement oracle: for every group, the owners of a
shard are recomputed from scratch by ranking every member by score. After every step the
ShardMap built incrementally must agree with it and all placement laws must hold.
"""

import pytest
from hypothesis import given, note
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from miroir.core.node_state import (
    ELIGIBILITY,
    TRANSITIONS,
    HealthCounter,
    IllegalTransition,
    NodeEvent,
    NodeState,
    next_state,
)
from miroir.core.placement import score
from miroir.core.topology import Node, ShardMap, Topology, TopologyError


def oracle_owners(members, shard, rf):
    ranked = sorted(members, key=lambda n: (-score(shard, n), n))
    return tuple(ranked[:rf])


class TopologyMachine(RuleBasedStateMachine):

    @initialize(
        shards=st.integers(1, 48), rf=st.integers(1, 3), groups=st.integers(1, 3),
        per_group=st.integers(1, 4),
    )
    def start(self, shards, rf, groups, per_group):
        nodes = tuple(
            Node(f"g{g}-n{i}", f"http://127.0.0.1:{7000 + g * 100 + i}", g)
            for g in range(groups) for i in range(per_group)
        )
        self.counter = 0
        self.topology = Topology(shards, rf, groups, nodes)
        self.map = ShardMap.build(self.topology)

    def rebuild(self, topology):
        self.topology = topology
        self.map = ShardMap.build(topology, previous=self.map)

    @rule(group=st.integers(0, 2), data=st.data())
    def add_node(self, group, data):
        group = group % self.topology.replica_groups
        self.counter += 1
        node_id = f"new{self.counter}-{data.draw(st.text('abcxyz', max_size=4))}"
        before = self.map
        self.rebuild(self.topology.with_node(Node(node_id, "http://127.0.0.1:1", group)))
        members = self.topology.group_members(group)
        for shard in range(self.topology.shards):
            for g in range(self.topology.replica_groups):
                old, new = set(before.owners(g, shard)), set(self.map.owners(g, shard))
                if g != group:
                    assert old == new, "a change in one group moved placement in another"
                elif old != new:
                    assert node_id in new and len(new - old) == 1
        assert node_id in members

    @precondition(lambda self: len(self.topology.nodes) > 1)
    @rule(data=st.data())
    def remove_node(self, data):
        victim = data.draw(st.sampled_from([n.id for n in self.topology.nodes]))
        group = self.topology.node(victim).replica_group
        before = self.map
        self.rebuild(self.topology.without_node(victim))
        for shard in range(self.topology.shards):
            for g in range(self.topology.replica_groups):
                old, new = set(before.owners(g, shard)), set(self.map.owners(g, shard))
                if g != group or victim not in old:
                    assert old == new
                else:
                    assert old - {victim} <= new

    @rule(data=st.data(), event=st.sampled_from(list(NodeEvent)))
    def apply_event(self, data, event):
        node = data.draw(st.sampled_from(self.topology.nodes))
        allowed = event in TRANSITIONS[node.state]
        if not allowed:
            with pytest.raises(IllegalTransition):
                self.topology.with_event(node.id, event)
            return
        before_owners = self.map.placement
        self.rebuild(self.topology.with_event(node.id, event))
        assert self.topology.node(node.id).state is TRANSITIONS[node.state][event]
        if TRANSITIONS[node.state][event] is not NodeState.REMOVED:
            # State changes never move placement.
            assert self.map.placement is before_owners

    @invariant()
    def placement_equals_the_oracle(self):
        rf = self.topology.replication_factor
        for g in range(self.topology.replica_groups):
            members = self.topology.group_members(g)
            for shard in range(self.topology.shards):
                assert self.map.owners(g, shard) == oracle_owners(members, shard, rf)

    @invariant()
    def write_targets_are_rf_per_group_and_writable(self):
        for shard in range(self.topology.shards):
            targets = self.map.write_targets(shard)
            assert len(targets) == len(set(targets))
            for g in range(self.topology.replica_groups):
                in_group = [n for grp, n in targets if grp == g]
                assert len(in_group) <= self.topology.replication_factor
                for n in in_group:
                    assert self.topology.node(n).replica_group == g
                    assert ELIGIBILITY[self.topology.node(n).state].takes_writes
            all_owners = self.map.all_owners(shard)
            expected = sum(
                min(self.topology.replication_factor, len(self.topology.group_members(g)))
                for g in range(self.topology.replica_groups)
            )
            assert len(all_owners) == expected

    @invariant()
    def covering_plan_covers_each_shard_once_inside_the_group(self):
        for g in range(self.topology.replica_groups):
            plan, uncovered = self.map.covering_plan(g, query_seq=self.counter)
            covered = sorted(s for shards in plan.values() for s in shards)
            assert sorted(covered + uncovered) == list(range(self.topology.shards))
            for node_id, shards in plan.items():
                node = self.topology.node(node_id)
                assert node.replica_group == g
                assert ELIGIBILITY[node.state].serves_reads
                for s in shards:
                    assert node_id in self.map.owners(g, s)
            for s in uncovered:
                assert not self.map.readable_owners(g, s)

    @invariant()
    def inverse_map_agrees(self):
        for node in self.topology.nodes:
            expected = sorted(
                s for g in range(self.topology.replica_groups)
                for s in range(self.topology.shards) if node.id in self.map.owners(g, s)
            )
            assert sorted(self.map.shards_of(node.id)) == expected


TestTopologyMachine = TopologyMachine.TestCase


def test_every_state_has_an_eligibility_rule_and_removed_is_terminal():
    assert set(ELIGIBILITY) == set(NodeState) == set(TRANSITIONS)
    assert TRANSITIONS[NodeState.REMOVED] == {}
    with pytest.raises(IllegalTransition, match="'removed' cannot take event 'probe_ok'"):
        next_state("n1", NodeState.REMOVED, NodeEvent.PROBE_OK)


@given(
    st.integers(1, 5), st.integers(1, 5), st.lists(st.booleans(), max_size=40)
)
def test_health_counter_follows_its_thresholds(unhealthy, recovery, probes):
    counter = HealthCounter(unhealthy, recovery)
    state = NodeState.HEALTHY
    fails = oks = 0
    for ok in probes:
        event = counter.record(state, ok)
        fails, oks = (0, oks + 1) if ok else (fails + 1, 0)
        new_state = next_state("n", state, event)
        if not ok:
            assert new_state is (NodeState.FAILED if fails >= unhealthy or state is NodeState.FAILED
                                 else NodeState.DEGRADED)
        elif state is NodeState.FAILED:
            assert new_state is (NodeState.HEALTHY if oks >= recovery else NodeState.FAILED)
        else:
            assert new_state is NodeState.HEALTHY
        note(f"{state} --{event}--> {new_state}")
        state = new_state


def test_duplicate_and_misplaced_nodes_are_refused():
    with pytest.raises(TopologyError, match="duplicate node id 'a'"):
        Topology(4, 1, 1, (Node("a", "x", 0), Node("a", "y", 0)))
    with pytest.raises(TopologyError, match="replica group 2"):
        Topology(4, 1, 2, (Node("a", "x", 2),))
