"""Laws of membership requests (`miroir.core.membership`): what each admin change targets, and
that every bad request is a Miroir-shaped refusal, never anything else."""

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from miroir.core import membership
from miroir.core.errors import MeiliError
from miroir.core.node_state import NodeEvent, NodeState
from miroir.core.placement import assign_shard_in_group
from miroir.core.topology import Node, Topology
from tests.properties.test_rebalance_plan import fresh_name, topologies

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=4),
    max_leaves=8,
)


@given(topologies(), st.data())
def test_adding_a_node_targets_the_group_with_it_and_moves_only_its_shards(topology, data):
    group = data.draw(st.integers(0, topology.replica_groups - 1))
    name = fresh_name(topology, data.draw)
    if not membership.NODE_ID.fullmatch(name):
        name = "n" + name
    if any(n.id == name for n in topology.nodes):
        return
    change = membership.add_node(topology, {"id": name, "address": "http://h:1", "group": group})
    assert change.topology.node(name).state is NodeState.JOINING
    assert change.source == membership.members(topology)
    assert name in change.target[group] and name not in change.source[group]
    plan = change.plan()
    assert all(m.gains == (name,) for m in plan)
    for move in plan:
        assert name in assign_shard_in_group(move.shard, change.target[group],
                                             topology.replication_factor)


@given(topologies(), st.data())
def test_draining_targets_the_group_without_the_node_and_moves_only_its_shards(topology, data):
    victim = data.draw(st.sampled_from([n.id for n in topology.nodes]))
    group = topology.node(victim).replica_group
    if len(topology.group_members(group)) - 1 < max(1, topology.replication_factor):
        # the group would keep fewer than RF nodes (or none): no write could meet quorum
        with pytest.raises(MeiliError) as refused:
            membership.drain_node(topology, victim)
        assert refused.value.code == "miroir_invalid_node_state"
        with pytest.raises(MeiliError) as refused:
            membership.remove_node(topology, victim, force=True)
        assert refused.value.code == "miroir_invalid_node_state"
        return
    change = membership.drain_node(topology, victim)
    assert change.topology.node(victim).state is NodeState.DRAINING
    assert all(m.loses == (victim,) for m in change.plan())
    # still draining: not removable; once its drain cut over (removed) it is forgotten,
    # moving nothing; an active node is removed only with force
    with pytest.raises(MeiliError) as refused:
        membership.remove_node(change.topology, victim, force=True)
    assert refused.value.code == "miroir_node_not_drained"
    drained = change.topology.with_event(victim, NodeEvent.REMOVE)
    forget = membership.remove_node(drained, victim, force=False)
    assert forget.kind == "forget_node" and victim not in {n.id for n in forget.topology.nodes}
    assert not forget.plan().moves
    with pytest.raises(MeiliError) as refused:
        membership.remove_node(topology, victim, force=False)
    assert refused.value.code == "miroir_node_not_drained"
    forced = membership.remove_node(topology, victim, force=True)
    assert forced.kind == "force_remove" and forced.topology.node(victim).state is NodeState.REMOVED
    assert all(m.loses == (victim,) and victim not in m.gains for m in forced.plan())


@given(topologies(), json_values)
def test_any_body_is_either_a_change_or_a_miroir_refusal(topology, body):
    for attempt in (lambda: membership.add_node(topology, body),
                    lambda: membership.add_group(topology, body)):
        try:
            change = attempt()
        except MeiliError as error:
            assert error.code.startswith("miroir_") and error.status in (400, 409)
        else:
            change.plan()


def test_adding_a_group_fills_it_from_nothing_and_refuses_duplicates():
    topology = Topology(8, 1, 1, (Node("a", "http://a:1", 0),))
    change = membership.add_group(topology, {"nodes": [{"id": "b", "address": "http://b:1"}]})
    assert change.topology.replica_groups == 2 and change.source == (("a",), ())
    assert change.plan().replicas_copied == 8
    rf2 = attrs.evolve(topology, replication_factor=2,
                       nodes=(*topology.nodes, Node("a2", "http://a2:1", 0)))
    with pytest.raises(MeiliError) as refused:  # one node cannot hold RF = 2 replicas
        membership.add_group(rf2, {"nodes": [{"id": "b", "address": "http://b:1"}]})
    assert refused.value.code == "miroir_invalid_group"
    for body, code in (
        ({"nodes": []}, "miroir_invalid_group"),
        ({"nodes": [{"id": "a", "address": "http://a:1"}]}, "miroir_node_already_exists"),
        ({"nodes": [{"id": "c", "address": "http://c:1"}] * 2}, "miroir_invalid_group"),
        ({"nodes": [{"id": "c", "address": "ftp://c"}]}, "miroir_invalid_group"),
    ):
        with pytest.raises(MeiliError) as refused:
            membership.add_group(topology, body)
        assert refused.value.code == code


@pytest.mark.parametrize(("body", "code"), [
    ({"id": "b", "address": "http://b:1", "group": 1}, "miroir_invalid_node"),
    ({"id": "b", "address": "http://b:1", "group": True}, "miroir_invalid_node"),
    ({"id": "", "address": "http://b:1", "group": 0}, "miroir_invalid_node"),
    ({"id": "b/c", "address": "http://b:1", "group": 0}, "miroir_invalid_node"),
    ({"id": "b", "address": "b:1", "group": 0}, "miroir_invalid_node"),
    ({"id": "b", "address": "http://b:1", "group": 0, "x": 1}, "miroir_invalid_node"),
    ({"id": "a", "address": "http://b:1", "group": 0}, "miroir_node_already_exists"),
    ([], "miroir_invalid_node"),
])
def test_a_bad_add_node_request_names_what_is_wrong(body, code):
    topology = Topology(8, 1, 1, (Node("a", "http://a:1", 0),))
    with pytest.raises(MeiliError) as refused:
        membership.add_node(topology, body)
    assert refused.value.code == code


def test_unknown_nodes_are_not_found():
    topology = Topology(8, 1, 1, (Node("a", "http://a:1", 0),))
    for attempt in (lambda: membership.drain_node(topology, "zz"),
                    lambda: membership.remove_node(topology, "zz", force=True)):
        with pytest.raises(MeiliError) as refused:
            attempt()
        assert (refused.value.code, refused.value.status) == ("miroir_node_not_found", 404)
