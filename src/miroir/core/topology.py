"""The cluster's shape: nodes, replica groups, and the per-topology shard map.

A `Topology` is an immutable value: shards S, replication factor RF, and replica groups, each a
set of nodes with a state. Changing anything gives a new Topology. The `ShardMap` is computed
once per topology so the hot path is a table lookup rather than S×N hashing per request;
placement is recomputed only when a group's membership changes, never on a state change.

Must never: do I/O, read clocks, or decide health by itself (see `node_state`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import attrs

from miroir.core.node_state import ELIGIBILITY, NodeEvent, NodeState, next_state
from miroir.core.placement import assign_shard_in_group, covering_set


class TopologyError(ValueError):
    """A topology change that would break an invariant (names the node or group)."""


@attrs.frozen
class Node:
    id: str
    address: str
    replica_group: int
    state: NodeState = NodeState.ACTIVE


@attrs.frozen
class Topology:
    shards: int
    replication_factor: int
    replica_groups: int
    nodes: tuple[Node, ...]

    def __attrs_post_init__(self) -> None:
        if self.shards < 1:
            raise TopologyError("shards must be at least 1")
        if self.replication_factor < 1:
            raise TopologyError("replication_factor must be at least 1")
        if self.replica_groups < 1:
            raise TopologyError("replica_groups must be at least 1")
        seen: set[str] = set()
        for node in self.nodes:
            if node.id in seen:
                raise TopologyError(f"duplicate node id {node.id!r}")
            seen.add(node.id)
            if not 0 <= node.replica_group < self.replica_groups:
                raise TopologyError(
                    f"node {node.id!r} is in replica group {node.replica_group}, "
                    f"but there are only {self.replica_groups} groups"
                )

    def node(self, node_id: str) -> Node:
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise TopologyError(f"unknown node {node_id!r}")

    def group_members(self, group: int) -> tuple[str, ...]:
        """Ids of the nodes that take part in placement in `group` (all but removed ones)."""
        return tuple(
            sorted(
                n.id
                for n in self.nodes
                if n.replica_group == group and n.state is not NodeState.REMOVED
            )
        )

    def with_node(self, node: Node) -> Topology:
        if any(n.id == node.id for n in self.nodes):
            raise TopologyError(f"node {node.id!r} is already in the topology")
        return attrs.evolve(self, nodes=(*self.nodes, node))

    def without_node(self, node_id: str) -> Topology:
        self.node(node_id)
        return attrs.evolve(self, nodes=tuple(n for n in self.nodes if n.id != node_id))

    def with_event(self, node_id: str, event: NodeEvent) -> Topology:
        """Apply a state event to one node through the transition table."""
        node = self.node(node_id)
        new_state = next_state(node_id, node.state, event)
        if new_state is node.state:
            return self
        updated = attrs.evolve(node, state=new_state)
        return attrs.evolve(
            self, nodes=tuple(updated if n.id == node_id else n for n in self.nodes)
        )

    def states(self) -> dict[str, NodeState]:
        return {n.id: n.state for n in self.nodes}


@attrs.frozen
class Placement:
    """Owners of every shard in every group, and the inverse; depends on membership only."""

    shards: int
    replication_factor: int
    members: tuple[tuple[str, ...], ...]  # per group, sorted node ids
    owners: tuple[tuple[tuple[str, ...], ...], ...]  # owners[group][shard] -> node ids
    shards_of: Mapping[str, tuple[int, ...]]

    @classmethod
    def compute(cls, topology: Topology) -> Placement:
        members = tuple(topology.group_members(g) for g in range(topology.replica_groups))
        return cls.from_members(topology.shards, topology.replication_factor, members)

    @classmethod
    def from_members(
        cls, shards: int, replication_factor: int, members: Sequence[Sequence[str]]
    ) -> Placement:
        """The placement of `shards` over explicit per-group member lists (an epoch's)."""
        members = tuple(tuple(sorted(group)) for group in members)
        owners = tuple(
            tuple(
                tuple(assign_shard_in_group(s, group_nodes, replication_factor))
                for s in range(shards)
            )
            for group_nodes in members
        )
        shards_of: dict[str, list[int]] = {n: [] for group in members for n in group}
        for group_owners in owners:
            for shard, shard_owners in enumerate(group_owners):
                for node in shard_owners:
                    shards_of[node].append(shard)
        return cls(
            shards=shards,
            replication_factor=replication_factor,
            members=members,
            owners=owners,
            shards_of={n: tuple(s) for n, s in shards_of.items()},
        )


# A read's first plan: (node, its shards, whether it owns exactly those) per node of the covering
# set in node order, and the shards the group cannot serve.
ReadPlan = tuple[tuple[tuple[str, list[int], bool], ...], list[int]]


@attrs.frozen
class ShardMap:
    """Lookup tables for one topology: who owns what, who may be written to and read from."""

    topology: Topology
    placement: Placement
    _states: Mapping[str, NodeState]
    # Nodes this map never reads from whatever their state (`without_readers`): for one index,
    # the nodes behind its committed settings version.
    unreadable: frozenset[str] = frozenset()
    # `read_plan`'s memo: a plan depends only on this map, so the memo lives and dies with it.
    _read_plans: dict[tuple[int, int], ReadPlan] = attrs.field(
        factory=dict, init=False, eq=False, repr=False
    )
    # Replica rotation (`seq + shard` modulo a shard's readable owners, at most RF) repeats
    # with this period.
    _rotation_period: int = attrs.field(
        default=attrs.Factory(
            lambda self: math.lcm(*range(1, self.placement.replication_factor + 1)),
            takes_self=True,
        ),
        init=False, eq=False, repr=False,
    )

    @classmethod
    def build(cls, topology: Topology, previous: ShardMap | None = None) -> ShardMap:
        """Build the map, reusing `previous`'s placement when membership did not change."""
        members = tuple(topology.group_members(g) for g in range(topology.replica_groups))
        if (
            previous is not None
            and previous.placement.members == members
            and previous.placement.shards == topology.shards
            and previous.placement.replication_factor == topology.replication_factor
        ):
            placement = previous.placement
        else:
            placement = Placement.compute(topology)
        return cls(topology=topology, placement=placement, states=topology.states())

    @property
    def shards(self) -> int:
        return self.topology.shards

    @property
    def replica_groups(self) -> int:
        return self.topology.replica_groups

    def owners(self, group: int, shard: int) -> tuple[str, ...]:
        return self.placement.owners[group][shard]

    def shards_of(self, node_id: str) -> tuple[int, ...]:
        return self.placement.shards_of.get(node_id, ())

    def write_targets(self, shard: int) -> list[tuple[int, str]]:
        """(group, node) for every owner of `shard` that takes writes: at most RG×RF."""
        return [
            (group, node)
            for group in range(self.replica_groups)
            for node in self.placement.owners[group][shard]
            if ELIGIBILITY[self._states[node]].takes_writes
        ]

    def all_owners(self, shard: int) -> list[tuple[int, str]]:
        """(group, node) for every owner of `shard`, whatever its state (quorum's denominator)."""
        return [
            (group, node)
            for group in range(self.replica_groups)
            for node in self.placement.owners[group][shard]
        ]

    def state_of(self, node_id: str) -> NodeState:
        return self._states[node_id]

    def owns_exactly(self, node_id: str, shards: Sequence[int]) -> bool:
        """Whether `shards` are exactly the shards `node_id` holds (a read asking it for them
        needs no shard restriction)."""
        owned = self.shards_of(node_id)
        return len(owned) == len(shards) and set(owned) == set(shards)

    def counts_toward_quorum(self, node_id: str) -> bool:
        return ELIGIBILITY[self._states[node_id]].counts_toward_quorum

    def with_shards(self, shards: int) -> ShardMap:
        """This map for an index of `shards` shards (a node-side index whose layout has its
        own S): same membership, node states and unreadable nodes; the placement of `shards`
        over the same members. Its topology says `shards` (`shards` reads it), every other
        field is the fleet's. Itself when `shards` is already its count."""
        if shards == self.shards:
            return self
        # evolve: the memo fields are not init fields, so the copy starts its own.
        return attrs.evolve(
            self, topology=attrs.evolve(self.topology, shards=shards),
            placement=Placement.from_members(
                shards, self.placement.replication_factor, self.placement.members),
        )

    def without_readers(self, nodes: Iterable[str]) -> ShardMap:
        """This map with `nodes` serving no reads (writes, quorum and states unchanged): the
        read path's map for an index some nodes hold stale settings of. Its own plan memo."""
        unreadable = self.unreadable | frozenset(nodes)
        if unreadable == self.unreadable:
            return self
        # evolve, not ShardMap(...): a migrating map stays one (its write targets and held
        # shards); the memo fields are not init fields, so the copy starts its own.
        return attrs.evolve(self, unreadable=unreadable)

    def readable_owners(self, group: int, shard: int) -> tuple[str, ...]:
        """Owners in `group` that serve reads; degraded ones last so a fallback tries them last."""
        owners = [
            n for n in self.placement.owners[group][shard]
            if ELIGIBILITY[self._states[n]].serves_reads and n not in self.unreadable
        ]
        owners.sort(key=lambda n: self._states[n] is NodeState.DEGRADED)
        return tuple(owners)

    def covering_plan(
        self, group: int, query_seq: int, shards: Iterable[int] | None = None
    ) -> tuple[dict[str, list[int]], list[int]]:
        """One readable replica per shard in `group`, per node; and the shards left uncovered."""
        wanted = range(self.shards) if shards is None else shards
        readable = {s: self.readable_owners(group, s) for s in wanted}
        uncovered = [s for s, owners in readable.items() if not owners]
        return covering_set(readable, query_seq), uncovered

    def read_plan(self, group: int, query_seq: int) -> ReadPlan:
        """`covering_plan(group, query_seq)` as the read path sends it: per node (in node order)
        its shards and whether it owns exactly those; then the shards left uncovered.

        Memoized per map: the replica rotation repeats every lcm(1..RF) queries, so a map holds
        at most RG x lcm(1..RF) plans, and computing one costs a readable-owners lookup per shard.
        """
        key = (group, query_seq % self._rotation_period)
        found = self._read_plans.get(key)
        if found is None:
            plan, uncovered = self.covering_plan(group, query_seq)
            nodes = tuple(
                (node_id, plan[node_id], self.owns_exactly(node_id, plan[node_id]))
                for node_id in sorted(plan)
            )
            found = self._read_plans[key] = (nodes, uncovered)
        return found

    def fully_covered(self) -> bool:
        """Every shard has a readable owner in at least one group."""
        return all(
            any(self.readable_owners(g, s) for g in range(self.replica_groups))
            for s in range(self.shards)
        )
