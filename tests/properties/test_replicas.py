"""Laws of `miroir.core.replicas`: the order a read asks a shard's replicas in, and where a
returning node copies each of its shards from.

Shard maps are generated with every node state (removed nodes leave placement), so the laws
hold whatever mix of failed, degraded, joining and draining replicas a cluster is in.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from miroir.core.node_state import ELIGIBILITY, NodeState
from miroir.core.placement import query_group
from miroir.core.replicas import read_candidates, repair_sources
from miroir.core.topology import Node, ShardMap, Topology


@st.composite
def shard_maps(draw, states=tuple(NodeState)):
    groups = draw(st.integers(1, 3))
    per_group = draw(st.integers(1, 4))
    nodes = tuple(
        Node(f"g{g}n{i}", f"http://g{g}n{i}.invalid", g, draw(st.sampled_from(states)))
        for g in range(groups)
        for i in range(per_group)
    )
    topology = Topology(draw(st.integers(1, 16)), draw(st.integers(1, 3)), groups, nodes)
    return ShardMap.build(topology)


seqs = st.integers(0, 10_000)


@given(shard_maps(), seqs)
def test_read_candidates_are_every_readable_owner_once(shard_map, seq):
    for shard in range(shard_map.shards):
        candidates = read_candidates(shard_map, shard, seq)
        readable = [
            node for group in range(shard_map.replica_groups)
            for node in shard_map.readable_owners(group, shard)
        ]
        assert sorted(candidates) == sorted(readable)
        assert len(set(candidates)) == len(candidates)
        assert all(ELIGIBILITY[shard_map.state_of(node)].serves_reads for node in candidates)


@given(shard_maps(), seqs)
def test_the_first_read_candidate_is_the_covering_sets_choice(shard_map, seq):
    # The scatter's first plan and the fallback (and a single-document read) agree: a shard's
    # first candidate is the node the covering set of the query's group gave it.
    group = query_group(seq, shard_map.replica_groups)
    plan, uncovered = shard_map.covering_plan(group, seq)
    for node_id, shards in plan.items():
        for shard in shards:
            assert read_candidates(shard_map, shard, seq)[0] == node_id
    for shard in uncovered:
        assert not shard_map.readable_owners(group, shard)


@given(shard_maps(), seqs)
def test_read_candidates_take_groups_round_robin_from_the_querys_group(shard_map, seq):
    groups = shard_map.replica_groups
    group_of = {node.id: node.replica_group for node in shard_map.topology.nodes}
    for shard in range(shard_map.shards):
        visited = [group_of[node] for node in read_candidates(shard_map, shard, seq)]
        # Each group's replicas are asked together, groups in turn from seq % RG.
        order = [g for i, g in enumerate(visited) if i == 0 or visited[i - 1] != g]
        assert len(order) == len(set(order))
        turns = [(g - query_group(seq, groups)) % groups for g in order]
        assert turns == sorted(turns)


@given(shard_maps(states=(NodeState.HEALTHY,)), seqs)
def test_consecutive_reads_of_a_shard_start_on_every_replica_in_turn(shard_map, seq):
    # With one group and every replica healthy, RF consecutive reads start on RF distinct nodes.
    if shard_map.replica_groups != 1:
        return
    for shard in range(shard_map.shards):
        owners = shard_map.readable_owners(0, shard)
        firsts = {read_candidates(shard_map, shard, seq + k)[0] for k in range(len(owners))}
        assert firsts == set(owners)


def judged(shard_map: ShardMap, draw) -> dict[str, bool]:
    joining = [n.id for n in shard_map.topology.nodes if n.state is NodeState.JOINING]
    return {n: draw(st.booleans()) for n in draw(st.lists(st.sampled_from(joining), unique=True))} \
        if joining else {}


@st.composite
def repairs(draw):
    """A shard map with at least one joining node, the node being repaired, the judgements."""
    shard_map = draw(shard_maps())
    joining = [n.id for n in shard_map.topology.nodes if n.state is NodeState.JOINING]
    if not joining:
        node = shard_map.topology.nodes[0]
        topology = Topology(
            shard_map.shards, shard_map.placement.replication_factor, shard_map.replica_groups,
            tuple(
                Node(n.id, n.address, n.replica_group,
                     NodeState.JOINING if n.id == node.id else n.state)
                for n in shard_map.topology.nodes
            ),
        )
        shard_map = ShardMap.build(topology)
        joining = [node.id]
    return shard_map, draw(st.sampled_from(joining)), judged(shard_map, draw)


@given(repairs())
@example((ShardMap.build(Topology(1, 2, 1, (
    Node("a", "", 0, NodeState.JOINING), Node("b", "", 0, NodeState.JOINING)))), "a", {"b": False}))
def test_every_shard_of_a_returning_node_is_copied_waits_is_lost_or_is_its_own(repair):
    shard_map, node, intact = repair
    sources = repair_sources(shard_map, node, intact)
    copied = [shard for shards in sources.by_source.values() for shard in shards]
    placed = copied + sources.waiting + sources.lost
    assert len(placed) == len(set(placed))  # each shard in one place only
    own = set(shard_map.shards_of(node)) - set(placed)
    if own:
        # A shard may go uncopied only when the node itself kept its data.
        assert intact.get(node) is True
    assert set(placed) <= set(shard_map.shards_of(node))


@given(repairs())
def test_a_source_is_another_owner_that_holds_the_data_readable_ones_first(repair):
    shard_map, node, intact = repair
    for source, shards in repair_sources(shard_map, node, intact).by_source.items():
        assert source != node
        state = shard_map.state_of(source)
        for shard in shards:
            assert source in {owner for _, owner in shard_map.all_owners(shard)}
            readable = [
                owner for group in range(shard_map.replica_groups)
                for owner in shard_map.readable_owners(group, shard) if owner != node
            ]
            if readable:
                assert source == readable[0]
            else:
                assert state is NodeState.DRAINING or (
                    state is NodeState.JOINING and intact.get(source) is True
                )


@given(repairs())
def test_a_shard_is_lost_only_when_every_other_owner_came_back_empty(repair):
    shard_map, node, intact = repair
    sources = repair_sources(shard_map, node, intact)
    for shard in sources.lost:
        others = [owner for _, owner in shard_map.all_owners(shard) if owner != node]
        assert intact.get(node) is not True
        assert all(
            shard_map.state_of(o) is NodeState.JOINING and intact.get(o) is False for o in others
        )
    for shard in sources.waiting:
        # Waiting means some other owner may still come back with the data.
        others = [owner for _, owner in shard_map.all_owners(shard) if owner != node]
        assert any(
            shard_map.state_of(o) is not NodeState.JOINING or intact.get(o) is not False
            for o in others
        )


@given(shard_maps(), seqs, st.data())
def test_a_map_without_some_readers_reads_from_the_others_and_writes_as_before(
        shard_map, seq, data):
    """Law of `ShardMap.without_readers` (an index's nodes behind its committed settings):
    those nodes are never read from, every other readable owner still is, and writes, quorum
    and states are untouched."""
    nodes = sorted(shard_map.placement.shards_of)
    excluded = frozenset(data.draw(st.sets(st.sampled_from(nodes)) if nodes else st.just(set())))
    narrowed = shard_map.without_readers(excluded)
    for shard in range(shard_map.shards):
        # The same replicas minus the excluded ones (the rotation among them may differ).
        assert sorted(read_candidates(narrowed, shard, seq)) == sorted(
            n for n in read_candidates(shard_map, shard, seq) if n not in excluded)
        assert narrowed.write_targets(shard) == shard_map.write_targets(shard)
    for group in range(shard_map.replica_groups):
        (plan, uncovered) = narrowed.read_plan(group, seq)
        assert not {node for node, _, _ in plan} & excluded
        assert sorted(uncovered) == [s for s in range(shard_map.shards)
                                     if not narrowed.readable_owners(group, s)]
    for node in nodes:
        assert narrowed.state_of(node) == shard_map.state_of(node)
        assert narrowed.counts_toward_quorum(node) == shard_map.counts_toward_quorum(node)
    assert shard_map.without_readers(()) is shard_map
