"""Laws of the durable topology record (`miroir.core.topology_record`)."""

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.node_state import NodeState
from miroir.core.topology import Node, Topology, TopologyError
from miroir.core.topology_record import (
    MEMBERSHIP_STATES,
    RecordError,
    decode_topology,
    encode_topology,
    live_state,
    live_topology,
    seed_topology,
)

membership = st.sampled_from(sorted(MEMBERSHIP_STATES, key=lambda s: s.value))
any_state = st.sampled_from(list(NodeState))


@st.composite
def durable_topologies(draw):
    groups = draw(st.integers(1, 3))
    names = draw(st.lists(st.text("abcdef123-", min_size=1, max_size=6), max_size=8, unique=True))
    nodes = tuple(
        Node(n, f"http://{n}:7700", draw(st.integers(0, groups - 1)), draw(membership))
        for n in names
    )
    return Topology(draw(st.integers(1, 128)), draw(st.integers(1, 3)), groups, nodes)


@given(durable_topologies())
def test_a_topology_reads_back_equal_from_its_record(topology):
    assert decode_topology(encode_topology(topology)) == topology


@given(durable_topologies(), st.sampled_from(
    [NodeState.HEALTHY, NodeState.DEGRADED, NodeState.FAILED]))
def test_a_health_state_is_never_stored(topology, health):
    if not topology.nodes:
        return
    node = topology.nodes[0]
    with pytest.raises(TopologyError, match="health state"):
        encode_topology(topology.without_node(node.id).with_node(
            Node(node.id, node.address, node.replica_group, health)))


@given(durable_topologies(), st.data())
def test_a_malformed_record_is_refused_naming_the_field(topology, data):
    value = encode_topology(topology)
    field = data.draw(st.sampled_from(["shards", "replicationFactor", "replicaGroups", "format"]))
    value[field] = data.draw(st.sampled_from([None, "7", True, 0.5]))
    with pytest.raises(RecordError, match=field):
        decode_topology(value)


def test_a_record_with_a_health_state_or_an_unknown_state_is_refused():
    value = encode_topology(Topology(4, 1, 1, (Node("a", "http://a", 0),)))
    value["nodes"][0]["state"] = "healthy"
    with pytest.raises(RecordError, match=r"nodes\[0\].state"):
        decode_topology(value)
    value["nodes"][0]["state"] = "sleepy"
    with pytest.raises(RecordError, match="unknown state"):
        decode_topology(value)
    value["nodes"][0] = {"id": "a", "address": "http://a", "group": 3, "state": "active"}
    with pytest.raises(RecordError, match="replica group"):
        decode_topology(value)


@given(st.one_of(st.none(), membership), membership, st.one_of(st.none(), any_state))
def test_live_state_laws(was, now, local):
    state = live_state(was, now, local)
    if now is NodeState.REMOVED:
        assert state is NodeState.REMOVED  # removed is terminal whatever this process saw
    elif local is NodeState.FAILED:
        assert state is NodeState.FAILED  # a failed node is never written to on an epoch change
    elif now in (NodeState.JOINING, NodeState.DRAINING):
        assert state is now  # the operator's state is in force in every process
    elif was is NodeState.JOINING or local is None:
        assert state is NodeState.ACTIVE  # caught up by the rebalancer, or new to this process
    else:
        # an active member keeps the health this process observed (or its repair's joining)
        assert state is (local if local is not NodeState.REMOVED and local is not NodeState.DRAINING
                         else NodeState.ACTIVE)


@given(durable_topologies())
def test_the_seed_and_a_first_adoption_make_every_node_a_routable_member(topology):
    seeded = seed_topology(topology)
    assert all(n.state in MEMBERSHIP_STATES for n in seeded.nodes)
    live = live_topology(seeded, None, None)
    assert [n.id for n in live.nodes] == [n.id for n in topology.nodes]
    assert live.states() == seeded.states()


@given(durable_topologies(), st.lists(st.lists(st.text("ab1", min_size=1, max_size=3),
                                               max_size=3), max_size=3))
def test_a_migration_reads_back_equal_from_its_record(topology, groups):
    from miroir.core.migration_map import Migration
    from miroir.core.topology_record import decode_migration

    migration = Migration("r-1", tuple(map(tuple, groups)), tuple(map(tuple, reversed(groups))))
    value = encode_topology(topology, migration)
    assert decode_migration(value) == migration
    cutting = attrs.evolve(migration, cutting=True)
    assert decode_migration(encode_topology(topology, cutting)) == cutting
    del value["migration"]["cutting"]  # a record written before the cutting phase existed
    assert decode_migration(value) == migration
    value["migration"]["cutting"] = "yes"
    with pytest.raises(RecordError, match="migration.cutting"):
        decode_migration(value)
    assert decode_migration(encode_topology(topology)) is None
    value["migration"]["source"] = "a"
    with pytest.raises(RecordError, match="migration.source"):
        decode_migration(value)
