"""Laws of a map for another shard count (`ShardMap.with_shards`, `MigratingShardMap.with_shards`)
and of multi-search groups by shard count (`miroir.core.query_groups`)."""

import attrs
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.migration_map import MigratingShardMap
from miroir.core.query_groups import (
    federated_part,
    group_positions,
    message_position,
    renumber_hits,
    renumber_message,
)
from miroir.core.rebalance_plan import count_plans, plan_rebalance
from miroir.core.topology import Placement, ShardMap
from tests.properties.test_migration_map import migrations
from tests.properties.test_rebalance_plan import topologies

counts = st.integers(1, 40)


@given(topologies(), counts)
def test_a_map_for_another_s_is_that_topologys_map(topology, shards):
    """Same membership and states, the placement of `shards`: exactly the map a topology of
    `shards` shards would have."""
    base = ShardMap.build(topology)
    derived = base.with_shards(shards)
    expected = ShardMap.build(attrs.evolve(topology, shards=shards))
    assert derived.shards == shards
    assert derived.placement == expected.placement
    for node in topology.nodes:
        assert derived.state_of(node.id) is base.state_of(node.id)
    for shard in range(shards):
        assert derived.write_targets(shard) == expected.write_targets(shard)
    assert base.with_shards(topology.shards) is base


@given(topologies(), counts, st.sets(st.sampled_from(["n0", "n1", "n2", "a-0", "b-1"])))
def test_unreadable_nodes_stay_unreadable_at_any_s(topology, shards, unreadable):
    base = ShardMap.build(topology).without_readers(unreadable)
    derived = base.with_shards(shards)
    assert derived.unreadable == base.unreadable
    for group in range(derived.replica_groups):
        for shard in range(shards):
            assert not set(derived.readable_owners(group, shard)) & base.unreadable


@given(migrations(), counts, st.booleans())
def test_a_migrating_map_for_another_s_is_the_same_migration_at_that_s(case, shards, cutting):
    topology, migration = case
    migration = attrs.evolve(migration, cutting=cutting)
    base = MigratingShardMap.build_migrating(topology, migration)
    derived = base.with_shards(shards)
    expected = MigratingShardMap.build_migrating(attrs.evolve(topology, shards=shards),
                                                 migration)
    assert isinstance(derived, MigratingShardMap) and derived.cutting == cutting
    assert derived.shards == shards
    for node in topology.nodes:
        assert derived.shards_of(node.id) == expected.shards_of(node.id)
    for shard in range(shards):
        assert derived.write_targets(shard) == expected.write_targets(shard)
        for group in range(derived.replica_groups):
            assert derived.owners(group, shard) == expected.owners(group, shard)
            assert derived.gains(group, shard) == expected.gains(group, shard)
            assert derived.readable_owners(group, shard) == expected.readable_owners(group, shard)


@given(st.lists(st.sampled_from([4, 8, 32]), max_size=12))
def test_groups_partition_the_positions_in_order(keys):
    groups = group_positions(keys)
    assert sorted(p for g in groups for p in g) == list(range(len(keys)))
    for group in groups:
        assert group == sorted(group) and len({keys[p] for p in group}) == 1
    assert [keys[g[0]] for g in groups] == list(dict.fromkeys(keys))


@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=8), st.data())
def test_a_groups_hits_name_the_clients_positions(uids, data):
    body = {"federation": {"facetsByIndex": {"a": ["x"], "c": ["y"], "unused": ["z"]}},
            "queries": [{"indexUid": u, "q": str(i)} for i, u in enumerate(uids)]}
    groups = group_positions(uids)
    for number, positions in enumerate(groups):
        part = federated_part(body, positions, first=number == 0)
        assert part["queries"] == [body["queries"][p] for p in positions]
        facets = part["federation"]["facetsByIndex"]
        mine, anyone = {uids[p] for p in positions}, set(uids)
        # Its own indexes' entries; the first group also those of indexes no query uses (a
        # node refuses them as Meilisearch does).
        assert set(facets) == {u for u in ("a", "c", "unused")
                               if u in mine or (number == 0 and u not in anyone)}
        local = data.draw(st.integers(0, len(positions) - 1))
        answer = {"hits": [{"id": 1, "_federation": {"queriesPosition": local}}]}
        hit = renumber_hits(answer, positions)["hits"][0]
        assert part["queries"][local] is body["queries"][hit["_federation"]["queriesPosition"]]
        message = f"Inside `.queries[{local}]`: Index `x` not found."
        renumbered = renumber_message(message, positions)
        assert message_position(renumbered) == positions[local]
        assert renumbered.endswith(": Index `x` not found.")


@given(migrations(kinds=("add", "drain")), st.sets(st.integers(1, 40), max_size=3))
def test_each_shard_count_moves_by_its_own_plan_under_distinct_names(case, counts):
    """`count_plans`: the topology's S always, every other count once, each the plan of the
    same memberships placed at that S; `done` keys never collide across counts."""
    topology, migration = case
    groups = topology.replica_groups
    pad = [tuple(m[g]) if g < len(m) else () for m in (migration.source, migration.target)
           for g in range(groups)]
    source, target = pad[:groups], pad[groups:]
    by_count = {shards: [f"index-{shards}"] for shards in counts}
    plans = count_plans(source, target, topology.replication_factor, topology.shards, by_count)
    assert [p.shards for p in plans] == sorted({topology.shards, *counts})
    keys = []
    for plan in plans:
        assert plan.default == (plan.shards == topology.shards)
        expected = plan_rebalance(
            Placement.from_members(plan.shards, topology.replication_factor, source),
            Placement.from_members(plan.shards, topology.replication_factor, target))
        assert plan.plan == expected and plan.source.shards == plan.shards
        assert list(plan.indexes) == by_count.get(plan.shards, [])
        for move in plan.plan:
            assert (plan.name(move) == move.key) == plan.default
            keys.extend(plan.key(move, node) for node in move.gains)
    assert len(keys) == len(set(keys))
