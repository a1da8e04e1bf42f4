"""The live topology as durable, versioned state: its record format and how a process follows it.

Theory of operation. The cluster's membership (nodes, addresses, groups, S, RF, RG) and each
node's *membership state* live in the store as one versioned record (`TOPOLOGY_RECORD`); its
version is the topology's **epoch**. The config seeds it on first start; from then on it changes
only by compare-and-set on the epoch (an operator action through the admin API, the rebalancer's
cutover), so two writers never both win one epoch. Every proxy process adopts the newest epoch it
reads, and builds one `ShardMap` per epoch, so a request that takes the map once is routed
entirely under one epoch.

Two kinds of state meet here:
- membership states, durable and the same in every process: `joining` (added, being filled),
  `active` (in service), `draining` (leaving), `removed` (gone);
- health states, local to each process and never stored: `healthy`, `degraded`, `failed`, and
  the repair worker's `joining` for a node that came back empty.

`live_state` merges the two per node as a table: a durable `active` node keeps whatever health
state this process observed (a process that just learnt the node starts it `active`); a durable
`joining` or `draining` node is in that state unless this process saw it `failed` (a failed node
takes no writes whatever the operator asked); `removed` is terminal. A node that was durably
`joining` and turns `active` was caught up by the rebalancer and becomes `active` locally.

Must never: do I/O, read a clock, or store a health state (it would overwrite another process's
observation on the next write).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from miroir.core.migration_map import Migration
from miroir.core.node_state import NodeState
from miroir.core.topology import Node, Topology, TopologyError

TOPOLOGY_RECORD = "topology"
RECORD_FORMAT = 1

# Membership states: the only ones a record holds.
MEMBERSHIP_STATES = frozenset(
    {NodeState.JOINING, NodeState.ACTIVE, NodeState.DRAINING, NodeState.REMOVED}
)
# Health states this process may hold for a node whose membership state is `active`.
_HEALTH_OF_ACTIVE = frozenset(
    {NodeState.ACTIVE, NodeState.HEALTHY, NodeState.DEGRADED, NodeState.FAILED, NodeState.JOINING}
)


class RecordError(ValueError):
    """A stored topology record that cannot be read (names the field)."""


@attrs.frozen
class EpochTopology:
    """A topology with membership states only, the epoch it was stored at, and the migration in
    progress at that epoch (None when no shard is moving)."""

    epoch: int
    topology: Topology
    migration: Migration | None = None


def membership_state(state: NodeState) -> NodeState:
    """What a node's local state means for membership: every health state is `active`, except
    the repair worker's `joining`, which is a local catch-up, also `active`."""
    return state if state in (NodeState.DRAINING, NodeState.REMOVED) else NodeState.ACTIVE


def encode_topology(topology: Topology, migration: Migration | None = None) -> dict[str, Any]:
    """The record value of `topology` (and the migration in progress, if any). Every node's
    state must already be a membership state."""
    for node in topology.nodes:
        if node.state not in MEMBERSHIP_STATES:
            raise TopologyError(
                f"node {node.id!r}: {node.state.value!r} is a health state, not a membership "
                "state; a topology record holds joining, active, draining or removed"
            )
    return {
        "format": RECORD_FORMAT,
        "shards": topology.shards,
        "replicationFactor": topology.replication_factor,
        "replicaGroups": topology.replica_groups,
        "nodes": [
            {"id": n.id, "address": n.address, "group": n.replica_group, "state": n.state.value}
            for n in topology.nodes
        ],
        "migration": None if migration is None else {
            "id": migration.id,
            "source": [list(g) for g in migration.source],
            "target": [list(g) for g in migration.target],
            "cutting": migration.cutting,
            "forced": migration.forced,
        },
    }


def decode_topology(value: Mapping[str, Any]) -> Topology:
    """The topology a record value holds; RecordError naming the field when it is malformed."""
    found_format = value.get("format")
    if isinstance(found_format, bool) or found_format != RECORD_FORMAT:
        raise RecordError(f"format: expected {RECORD_FORMAT}, got {value.get('format')!r}")
    nodes = []
    for i, raw in enumerate(_field(value, "nodes", list)):
        if not isinstance(raw, Mapping):
            raise RecordError(f"nodes[{i}]: expected an object")
        state = _field(raw, "state", str, f"nodes[{i}].")
        try:
            node_state = NodeState(state)
        except ValueError:
            raise RecordError(f"nodes[{i}].state: unknown state {state!r}") from None
        if node_state not in MEMBERSHIP_STATES:
            raise RecordError(f"nodes[{i}].state: {state!r} is not a membership state")
        nodes.append(
            Node(
                _field(raw, "id", str, f"nodes[{i}]."),
                _field(raw, "address", str, f"nodes[{i}]."),
                _field(raw, "group", int, f"nodes[{i}]."),
                node_state,
            )
        )
    try:
        return Topology(
            shards=_field(value, "shards", int),
            replication_factor=_field(value, "replicationFactor", int),
            replica_groups=_field(value, "replicaGroups", int),
            nodes=tuple(nodes),
        )
    except TopologyError as exc:
        raise RecordError(str(exc)) from None


def decode_migration(value: Mapping[str, Any]) -> Migration | None:
    """The migration a record value holds (None: no shard is moving)."""
    raw = value.get("migration")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise RecordError("migration: expected an object or null")
    groups = {}
    for side in ("source", "target"):
        found = raw.get(side)
        if not isinstance(found, list) or not all(
                isinstance(g, list) and all(isinstance(n, str) for n in g) for g in found):
            raise RecordError(f"migration.{side}: expected an array of arrays of node ids")
        groups[side] = tuple(tuple(g) for g in found)
    flags = {}
    for flag in ("cutting", "forced"):  # absent in records written before they existed
        flags[flag] = raw.get(flag, False)
        if not isinstance(flags[flag], bool):
            raise RecordError(f"migration.{flag}: expected a boolean")
    return Migration(_field(raw, "id", str, "migration."), groups["source"], groups["target"],
                     **flags)


def seed_topology(config_topology: Topology) -> Topology:
    """The first record's topology from the config's: every node `active` (membership)."""
    return attrs.evolve(
        config_topology,
        nodes=tuple(attrs.evolve(n, state=membership_state(n.state)) for n in config_topology.nodes),
    )


def live_state(
    was: NodeState | None, now: NodeState, local: NodeState | None
) -> NodeState:
    """The state this process gives a node whose membership state went from `was` (None: the
    previous epoch did not have it) to `now`, and that this process holds in `local` (None: it
    did not know the node). See the module docstring for the table's reasons."""
    if now is NodeState.REMOVED:
        return NodeState.REMOVED
    if local is NodeState.FAILED:
        return NodeState.FAILED
    if now in (NodeState.JOINING, NodeState.DRAINING):
        return now
    # now is ACTIVE
    if local is None or was is NodeState.JOINING or local not in _HEALTH_OF_ACTIVE:
        return NodeState.ACTIVE
    return local


def live_topology(
    durable: Topology, previous_durable: Topology | None, local: Topology | None
) -> Topology:
    """The topology a process routes by: `durable`'s membership and addresses, each node's state
    from `live_state`."""
    was = {} if previous_durable is None else previous_durable.states()
    held = {} if local is None else local.states()
    return attrs.evolve(
        durable,
        nodes=tuple(
            attrs.evolve(n, state=live_state(was.get(n.id), n.state, held.get(n.id)))
            for n in durable.nodes
        ),
    )


def _field(value: Mapping[str, Any], name: str, kind: type, prefix: str = "") -> Any:
    found = value.get(name)
    if not isinstance(found, kind) or (kind is int and isinstance(found, bool)):
        raise RecordError(f"{prefix}{name}: expected {kind.__name__}, got {found!r}")
    return found
