"""Routing while shards move: the shard map of a topology between two epochs' placements.

Theory of operation. A rebalance goes from a *source* membership (the epoch in force when it
started) to a *target* membership (with the joining nodes, without the draining ones). Until its
cutover, every process routes by a `MigratingShardMap`, which answers the `ShardMap` questions
with both placements:

| question | answer while migrating | why |
|---|---|---|
| `write_targets(s)` | source owners ∪ target owners that take writes | dual write: a new owner misses nothing written during the copy |
| `owners(g, s)`, `all_owners(s)` | source owners (in a forced removal, target owners unless the group's copy comes from another group: see `owners`) | quorum counts only the old owners until cutover: a new owner's ack proves nothing yet; a forced removal's leaving node is gone, so there the survivors and new owners count |
| `readable_owners(g, s)` | source owners that serve reads, or are draining | the new owner is not complete yet; a draining node still holds its shards until cutover |
| `shards_of(n)` | source shards ∪ target shards of `n` | what `n` may hold: a read asking `n` for its source shards must still filter, since `n` may hold part of a target shard |

Before the cutover comes the *cutting* phase (`Migration.cutting`, an epoch of its own): routing
is the same, but a write's (shard, group) pair is met only if, besides the old owners' quorum,
every new owner of the pair acknowledged it (`required_acks`, applied by
`miroir.core.quorum.with_required_acks`): an acknowledged write then holds on the old owners'
quorum and on every new owner, so a write acknowledged while processes adopt the cutover cannot
be missing on a new owner afterwards (the engine compares once more only after every process
routes by the cutting epoch; see `miroir.cluster.rebalance`, "the residual window"). A new
owner that does not answer makes the write fail (503) for its shards in that group, as it
would right after the cutover.

The cutover is one new epoch whose topology has no migration: target owners become the owners,
readable and counted; old owners stop being written to; their copies are deleted after a grace
period (longer than the interval in which every process adopts the new epoch). Nothing in here
knows about copies, journals or timing: that is the migration engine's.

Laws (tests/properties/test_migration_map.py): every source and target owner is written to
(when its state takes writes); quorum and reads never involve a node that is only a target
owner; a read never asks a node for a shard without the shard filter unless it holds exactly
those shards in both placements; with source == target the map routes like a plain `ShardMap`.

A process builds this map when the epoch it adopts carries a migration (only the migration
engine, `miroir.cluster.rebalance`, publishes one). Must never: do I/O or read clocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import attrs

from miroir.core.node_state import ELIGIBILITY, NodeState
from miroir.core.topology import Placement, ShardMap, Topology, TopologyError


@attrs.frozen
class Migration:
    """A rebalance in progress: its id and both epochs' members, per group."""

    id: str
    source: tuple[tuple[str, ...], ...]
    target: tuple[tuple[str, ...], ...]
    # The last phase before the cutover: new owners' acknowledgements are required too.
    cutting: bool = False
    # A forced removal: a source member is already `removed` (gone), so quorum counts the
    # target owners (the survivors and the new owners) from the start.
    forced: bool = False


@attrs.frozen
class MigratingShardMap(ShardMap):
    """A `ShardMap` whose `placement` is the source's, with the target's beside it."""

    target: Placement = attrs.field(kw_only=True)
    _held: Mapping[str, tuple[int, ...]] = attrs.field(kw_only=True)
    cutting: bool = attrs.field(default=False, kw_only=True)
    forced: bool = attrs.field(default=False, kw_only=True)

    @classmethod
    def build_migrating(cls, topology: Topology, migration: Migration) -> MigratingShardMap:
        groups = topology.replica_groups
        if len(migration.source) > groups or len(migration.target) > groups:
            raise TopologyError("a migration names more replica groups than the topology has")
        known = {n.id for n in topology.nodes}
        for group in (*migration.source, *migration.target):
            for node in group:
                if node not in known:
                    raise TopologyError(f"migration {migration.id!r} names unknown node {node!r}")
        source = Placement.from_members(topology.shards, topology.replication_factor,
                                        _pad(migration.source, groups))
        target = Placement.from_members(topology.shards, topology.replication_factor,
                                        _pad(migration.target, groups))
        return cls(topology=topology, placement=source, states=topology.states(),
                   target=target, held=_held_shards(source, target), cutting=migration.cutting,
                   forced=migration.forced)

    def with_shards(self, shards: int) -> MigratingShardMap:
        """The same migration (both memberships, phase, forced) for an index of `shards`
        shards: both placements of `shards` over the same members."""
        if shards == self.shards:
            return self
        rf = self.placement.replication_factor
        source = Placement.from_members(shards, rf, self.placement.members)
        target = Placement.from_members(shards, rf, self.target.members)
        return attrs.evolve(self, topology=attrs.evolve(self.topology, shards=shards),
                            placement=source, target=target, held=_held_shards(source, target))

    def owners(self, group: int, shard: int) -> tuple[str, ...]:
        """Quorum's owners: the source's; in a forced removal the target's (survivors and new
        owners) when the group still has a survivor of the shard (it is the copy's source, so
        what the target's quorum acknowledged is what the copy converges to) or no group has
        one (the replica is lost: the new owner starts empty); when the group's copy comes from
        another group, the source's, so only that group's quorum can acknowledge a write (the
        copy must not overwrite a write only the new owner acknowledged)."""
        old = self.placement.owners[group][shard]
        if not self.forced or self._from_other_group(group, shard):
            return old
        return self.target.owners[group][shard]

    def _from_other_group(self, group: int, shard: int) -> bool:
        if any(self._states[n] is not NodeState.REMOVED for n in self.placement.owners[group][shard]):
            return False
        return any(self._states[n] is not NodeState.REMOVED
                   for g in range(self.replica_groups) if g != group
                   for n in self.placement.owners[g][shard])

    def all_owners(self, shard: int) -> list[tuple[int, str]]:
        return [(group, node) for group in range(self.replica_groups)
                for node in self.owners(group, shard)]

    def gains(self, group: int, shard: int) -> tuple[str, ...]:
        """The new owners of (group, shard): target owners that are not source owners."""
        old = self.placement.owners[group][shard]
        return tuple(n for n in self.target.owners[group][shard] if n not in old)

    def target_owners(self, group: int, shard: int) -> tuple[str, ...]:
        return self.target.owners[group][shard]

    def shards_of(self, node_id: str) -> tuple[int, ...]:
        return self._held.get(node_id, ())

    def write_targets(self, shard: int) -> list[tuple[int, str]]:
        targets = []
        for group in range(self.replica_groups):
            old = self.placement.owners[group][shard]
            for node in (*old, *(n for n in self.target.owners[group][shard] if n not in old)):
                if ELIGIBILITY[self._states[node]].takes_writes:
                    targets.append((group, node))
        return targets

    def readable_owners(self, group: int, shard: int) -> tuple[str, ...]:
        owners = [
            n for n in self.placement.owners[group][shard]
            if ELIGIBILITY[self._states[n]].serves_reads or self._states[n] is NodeState.DRAINING
        ]
        owners.sort(key=lambda n: self._states[n] is NodeState.DEGRADED)
        return tuple(owners)


def required_acks(shard_map: ShardMap, shards: Iterable[int]) -> dict[tuple[int, int], tuple[str, ...]]:
    """Per (shard, group) of a write, the nodes whose acknowledgement it requires besides its
    quorum: a cutting migration's new owners (whatever their state: one that takes no write
    fails the pair); nothing for any other map."""
    if not isinstance(shard_map, MigratingShardMap) or not shard_map.cutting:
        return {}
    found = {}
    for shard in shards:
        for group in range(shard_map.replica_groups):
            gains = shard_map.gains(group, shard)
            if gains:
                found[(shard, group)] = gains
    return found


def _held_shards(source: Placement, target: Placement) -> dict[str, tuple[int, ...]]:
    """Per node, the shards it may hold while migrating: its source's and its target's."""
    return {
        node: tuple(sorted(set(source.shards_of.get(node, ())) | set(target.shards_of.get(node, ()))))
        for node in set(source.shards_of) | set(target.shards_of)
    }


def _pad(members: Sequence[Sequence[str]], groups: int) -> tuple[tuple[str, ...], ...]:
    """Per-group members for every group of the topology (a group the migration does not list
    has no member in that epoch: a replica group being added has none in the source)."""
    return tuple(tuple(members[g]) if g < len(members) else () for g in range(groups))
