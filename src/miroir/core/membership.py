"""Membership changes an operator asks for: validated, and turned into a target membership.

Theory of operation. Every admin request that changes the fleet (`POST /_miroir/nodes`,
`POST /_miroir/nodes/{id}/drain`, `DELETE /_miroir/nodes/{id}`, `POST /_miroir/groups`) is one
function here from the durable topology in force (membership states only, see
`miroir.core.topology_record`) and the request to a `MembershipChange`: the durable topology to
publish (new nodes `joining`, a drained node `draining`), and the source and target members per
group, which the rebalance plan (`miroir.core.rebalance_plan`) and the migrating shard map
(`miroir.core.migration_map`) are built from. A request that cannot apply raises a `MeiliError`
with a `miroir_*` code (the table is `miroir.core.errors`; docs/http-api.md lists them) before
anything is published.

Must never: do I/O or read clocks; decide when a change is carried out (that is the migration
engine's), or publish (that is `miroir.cluster.topology_sync.publish`'s).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from miroir.core.errors import MeiliError
from miroir.core.node_state import NodeState
from miroir.core.rebalance_plan import RebalancePlan, plan_rebalance
from miroir.core.topology import Node, Placement, Topology

# Node ids end up in metric labels, store keys and URLs: keep them plain.
NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_ADDRESS = re.compile(r"http://[^\s/?#:]+(:\d{1,5})?/?")


@attrs.frozen
class MembershipChange:
    """What one admin request asks for: the durable topology to publish, both memberships."""

    kind: str  # add_node | drain_node | force_remove | forget_node | add_group
    topology: Topology
    source: tuple[tuple[str, ...], ...]
    target: tuple[tuple[str, ...], ...]

    def plan(self, shards: int | None = None) -> RebalancePlan:
        """The moves of an index of `shards` shards (default: the topology's S): an index whose
        layout gives it its own S moves by the placement of that S over the same members."""
        shards = self.topology.shards if shards is None else shards
        rf = self.topology.replication_factor
        return plan_rebalance(Placement.from_members(shards, rf, self.source),
                              Placement.from_members(shards, rf, self.target))

    def plans(self, counts: Iterable[int] = ()) -> dict[int, RebalancePlan]:
        """`plan` per shard count: the topology's S and every one of `counts`."""
        return {shards: self.plan(shards)
                for shards in sorted({self.topology.shards, *counts})}


def members(topology: Topology) -> tuple[tuple[str, ...], ...]:
    """Members per group that hold data now: every node but joining and removed ones."""
    return tuple(
        tuple(sorted(n.id for n in topology.nodes if n.replica_group == g
                     and n.state not in (NodeState.JOINING, NodeState.REMOVED)))
        for g in range(topology.replica_groups)
    )


def add_node(topology: Topology, body: Any) -> MembershipChange:
    """`POST /_miroir/nodes` `{id, address, group}`: the node enters `joining`."""
    fields = _object(body, ("id", "address", "group"))
    node_id = _node_id(fields.get("id"), "id")
    address = _address(fields.get("address"), "address")
    group = _group(fields.get("group"), topology.replica_groups)
    _unused(topology, node_id)
    source = members(topology)
    grown = topology.with_node(Node(node_id, address, group, NodeState.JOINING))
    target = tuple((*m, node_id) if g == group else m for g, m in enumerate(source))
    return MembershipChange("add_node", grown, source, _sorted(target))


def drain_node(topology: Topology, node_id: str) -> MembershipChange:
    """`POST /_miroir/nodes/{id}/drain`: the node leaves placement once its shards moved."""
    node = _existing(topology, node_id)
    if node.state is not NodeState.ACTIVE:
        raise MeiliError(
            "miroir_invalid_node_state",
            f"Node `{node_id}` is `{node.state.value}`: only an active node can be drained.",
        )
    source = members(topology)
    target = tuple(tuple(n for n in m if n != node_id) for m in source)
    _keeps_replication(topology, node, target, "draining")
    return MembershipChange("drain_node", _with_state(topology, node_id, NodeState.DRAINING),
                            source, target)


def remove_node(topology: Topology, node_id: str, *, force: bool) -> MembershipChange:
    """`DELETE /_miroir/nodes/{id}`: a drained node (`removed` once its drain cut over) is
    forgotten; an active one only with `force`: it is `removed` at once and its shard replicas
    are re-created on their new owners from the surviving replicas (what it alone held is lost:
    at RF = 1, the documents of its shards that no other group holds)."""
    node = _existing(topology, node_id)
    if node.state is NodeState.REMOVED:
        # drained (its shards moved at the drain's cutover): forgetting it moves nothing
        same = members(topology)
        return MembershipChange("forget_node", topology.without_node(node_id), same, same)
    if node.state is NodeState.DRAINING:
        raise MeiliError(
            "miroir_node_not_drained",
            f"Node `{node_id}` is still draining: its shards are moving "
            "(`GET /_miroir/rebalance`); remove it once it shows `removed`.")
    if not force:
        raise MeiliError(
            "miroir_node_not_drained",
            f"Node `{node_id}` is `{node.state.value}`: drain it first "
            f"(`POST /_miroir/nodes/{node_id}/drain`), or remove it with `?force=true`, which "
            "loses what only this node holds.",
        )
    source = members(topology)
    target = tuple(tuple(n for n in m if n != node_id) for m in source)
    _keeps_replication(topology, node, target, "removing")
    return MembershipChange("force_remove", _with_state(topology, node_id, NodeState.REMOVED),
                            source, target)


def add_group(topology: Topology, body: Any) -> MembershipChange:
    """`POST /_miroir/groups` `{nodes: [{id, address}, ...]}`: a new replica group, its nodes
    `joining`, filled from the other groups."""
    fields = _object(body, ("nodes",))
    raw_nodes = fields.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise MeiliError("miroir_invalid_group",
                         "`nodes` must be a non-empty array of `{id, address}` objects.")
    group = topology.replica_groups
    new_nodes = []
    for i, raw in enumerate(raw_nodes):
        node_fields = _object(raw, ("id", "address"), at=f"nodes[{i}]", code="miroir_invalid_group")
        node_id = _node_id(node_fields.get("id"), f"nodes[{i}].id", code="miroir_invalid_group")
        _unused(topology, node_id)
        if any(n.id == node_id for n in new_nodes):
            raise MeiliError("miroir_invalid_group", f"`nodes` names `{node_id}` twice.")
        address = _address(node_fields.get("address"), f"nodes[{i}].address",
                           code="miroir_invalid_group")
        new_nodes.append(Node(node_id, address, group, NodeState.JOINING))
    if len(new_nodes) < topology.replication_factor:
        # Quorum needs floor(RF/2)+1 of RF owners per group: a smaller group never meets it.
        raise MeiliError("miroir_invalid_group",
                         f"A replica group needs at least replication_factor = "
                         f"{topology.replication_factor} nodes; `nodes` has {len(new_nodes)}.")
    grown = Topology(topology.shards, topology.replication_factor, group + 1,
                     (*topology.nodes, *new_nodes))
    source = (*members(topology), ())
    target = (*members(topology), tuple(sorted(n.id for n in new_nodes)))
    return MembershipChange("add_group", grown, source, target)


def _keeps_replication(topology: Topology, node: Node, target: tuple[tuple[str, ...], ...],
                       doing: str) -> None:
    """A group must keep at least RF members (else every shard of it has fewer than RF owners
    and no write to it ever meets quorum) and, whatever the RF, one member."""
    left = len(target[node.replica_group])
    if left == 0:
        raise MeiliError(
            "miroir_invalid_node_state",
            f"Node `{node.id}` is the last node of replica group {node.replica_group}: "
            f"{doing} it would leave the group no node to hold its shards.",
        )
    if left < topology.replication_factor:
        raise MeiliError(
            "miroir_invalid_node_state",
            f"{doing.capitalize()} node `{node.id}` would leave replica group "
            f"{node.replica_group} {left} nodes, fewer than replication_factor = "
            f"{topology.replication_factor}: no write to it could meet quorum.",
        )


def _object(body: Any, allowed: tuple[str, ...], *, at: str = "",
            code: str = "miroir_invalid_node") -> Mapping[str, Any]:
    where = f" at `{at}`" if at else ""
    if not isinstance(body, Mapping):
        raise MeiliError(code, f"Expected a JSON object{where}.")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise MeiliError(code, f"Unknown field `{unknown[0]}`{where}: expected one of "
                               + ", ".join(f"`{f}`" for f in allowed) + ".")
    return body


def _node_id(value: Any, field: str, *, code: str = "miroir_invalid_node") -> str:
    if not isinstance(value, str) or not NODE_ID.fullmatch(value):
        raise MeiliError(code, f"`{field}` must be a string of 1 to 64 characters: letters, "
                               "digits, `-`, `_` and `.`, starting with a letter or digit.")
    return value


def _address(value: Any, field: str, *, code: str = "miroir_invalid_node") -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise MeiliError(code, f"`{field}` must be a node's base URL, `http://host:port` "
                               "(TLS to nodes is not supported).")
    return value.rstrip("/")


def _group(value: Any, groups: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < groups:
        raise MeiliError("miroir_invalid_node",
                         f"`group` must be a replica group number from 0 to {groups - 1}; "
                         "add a group with `POST /_miroir/groups`.")
    return value


def _unused(topology: Topology, node_id: str) -> None:
    if any(n.id == node_id for n in topology.nodes):
        raise MeiliError("miroir_node_already_exists",
                         f"Node `{node_id}` is already part of the topology.")


def _existing(topology: Topology, node_id: str) -> Node:
    for node in topology.nodes:
        if node.id == node_id:
            return node
    raise MeiliError("miroir_node_not_found", f"Node `{node_id}` not found.")


def _with_state(topology: Topology, node_id: str, state: NodeState) -> Topology:
    return attrs.evolve(topology, nodes=tuple(
        attrs.evolve(n, state=state) if n.id == node_id else n for n in topology.nodes))


def _sorted(groups: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(sorted(g)) for g in groups)
