"""Per node and per shard statistics for operators (`GET /_miroir/stats`): where the documents
are, so balance and skew show. Not the client's `/stats` (`cluster.stats`, which counts each
document once); here every replica is counted where it lives.

Theory of operation. For each index a node lists, and for every node of the topology, by the
index's own shard map (`Cluster.shard_map_for`: its shard count, which a reshard may have made
other than the topology's; shown as the index's `shardCount`):

- each node's own `GET /indexes/{uid}/stats` (its document count, raw size, average document
  size) and its instance `GET /stats` (database sizes), asked of all nodes at once;
- each shard's document count on every readable owner in every group, by `POST
  /indexes/{uid}/documents/fetch` filtered on `_miroir_shard = s` with `limit: 0` (an exact
  `total`), a few shards at a time.

A shard's `estimatedSize` is its count times the average document size its first answering
owner reports: Meilisearch keeps no per-shard size, so this is an estimate (documented). A node
or owner that does not answer shows `null`, never fails the whole answer: an operator looks at
stats exactly when something is wrong. Per group, `skew` is the largest node's document count
over the mean of the group's nodes (1.0 is perfect balance).

Must never: write to a node, or render HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import trio

from miroir.cluster.runtime import Cluster
from miroir.cluster.stats import StatsUnavailable, all_index_uids
from miroir.core.errors import MeiliError
from miroir.core.fleet_report import group_balance
from miroir.core.routing import SHARD_FIELD
from miroir.core.topology import ShardMap
from miroir.transport.base import NodeResponse

SHARDS_AT_ONCE = 8


def _json(result: object) -> dict[str, Any] | None:
    if isinstance(result, NodeResponse) and result.ok:
        body = result.json()
        return body if isinstance(body, dict) else None
    return None


async def shard_counts(cluster: Cluster, uid: str, shard: int,
                       owners: list[str]) -> dict[str, int | None]:
    """owner -> how many documents of `shard` it holds (None: it did not answer)."""
    results = await cluster.fan_out(
        owners, "POST", f"/indexes/{uid}/documents/fetch",
        {"filter": f"{SHARD_FIELD} = {shard}", "limit": 0})
    counts: dict[str, int | None] = {}
    for node in owners:
        body = _json(results.get(node))
        counts[node] = int(body["total"]) if body and "total" in body else None
    return counts


def readable_owners(shard_map: ShardMap, shard: int) -> list[tuple[int, str]]:
    """(group, node) for every readable owner of `shard` in an index's map, groups in order."""
    return [(group, node) for group in range(shard_map.replica_groups)
            for node in shard_map.readable_owners(group, shard)]


async def indexes_named(cluster: Cluster, only: list[str] | None) -> list[tuple[str, str]]:
    """(label, node-side index) of every index the nodes hold, or of the client uids in `only`
    (`index_not_found` for one that names none). The label is the client uid the index layouts
    map to the node-side name (`cluster.layouts`); an orphan, which no client uid reaches, keeps
    its node-side name. Never creates a layout: these views only read."""
    layouts = await cluster.layouts.current()
    try:
        held = await all_index_uids(cluster)
    except StatsUnavailable:
        raise MeiliError("miroir_node_unavailable", "No serving node answered the list of "
                         "indexes.") from None
    if only is None:
        return [(layouts.client_uid(name) or name, name) for name in held]
    named = []
    for uid in dict.fromkeys(only):
        name = layouts.node_index(uid)
        if name is None or name not in held:
            raise MeiliError("index_not_found", f"Index `{uid}` not found.")
        named.append((uid, name))
    return named


async def fleet_stats(cluster: Cluster, only: list[str] | None = None) -> dict[str, Any]:
    """Every index's statistics, or only those of the client uids in `only`."""
    nodes = cluster.all_nodes()
    instance = await cluster.fan_out(nodes, "GET", "/stats")
    indexes = {}
    for label, name in await indexes_named(cluster, only):
        indexes[label] = {"nodeIndex": name, **await index_fleet_stats(cluster, name)}
    group_of = {node.id: node.replica_group for node in cluster.topology.nodes}
    rendered_nodes = []
    for node in nodes:
        body = _json(instance.get(node))
        per_index = [index["nodes"][node]["numberOfDocuments"] for index in indexes.values()
                     if node in index["nodes"]]
        rendered_nodes.append({
            "id": node,
            "replicaGroup": group_of[node],
            "state": cluster.state_of(node).value,
            "shardCount": len(cluster.shard_map.shards_of(node)),
            "answered": body is not None,
            "databaseSize": body.get("databaseSize") if body else None,
            "usedDatabaseSize": body.get("usedDatabaseSize") if body else None,
            "numberOfDocuments": (sum(per_index) if body is not None
                                  and None not in per_index else None),
        })
    return {"epoch": cluster.epoch, "shards": cluster.shard_map.shards,
            "nodes": rendered_nodes, "indexes": indexes}


async def index_fleet_stats(cluster: Cluster, uid: str) -> dict[str, Any]:
    nodes = cluster.all_nodes()
    node_stats = await cluster.fan_out(nodes, "GET", f"/indexes/{uid}/stats")
    per_node = {node: _json(node_stats.get(node)) for node in nodes}
    # The index's own shard count (`indexes_named` brought the layouts up to date).
    shard_map = cluster.shard_map_for(uid)
    counted: dict[int, dict[str, int | None]] = {}
    limiter = trio.CapacityLimiter(SHARDS_AT_ONCE)

    async def count(shard: int) -> None:
        async with limiter:
            owners = [node for _, node in readable_owners(shard_map, shard)]
            counted[shard] = await shard_counts(cluster, uid, shard, owners)

    async with trio.open_nursery() as nursery:
        for shard in range(shard_map.shards):
            nursery.start_soon(count, shard)
    return render_index(cluster, shard_map, per_node, counted)


def render_index(cluster: Cluster, shard_map: ShardMap,
                 per_node: Mapping[str, dict[str, Any] | None],
                 counted: Mapping[int, Mapping[str, int | None]]) -> dict[str, Any]:
    group_of = {node.id: node.replica_group for node in cluster.topology.nodes}
    shards = []
    for shard in sorted(counted):
        replicas = [{"node": node, "group": group, "numberOfDocuments": counted[shard].get(node)}
                    for group, node in readable_owners(shard_map, shard)]
        answered = [r for r in replicas if r["numberOfDocuments"] is not None]
        documents = answered[0]["numberOfDocuments"] if answered else None
        average = next((per_node[r["node"]] or {}).get("avgDocumentSize") for r in answered) \
            if answered else None
        shards.append({
            "shard": shard,
            "documents": documents,
            "estimatedSize": (documents * average if documents is not None
                              and isinstance(average, int) else None),
            "replicas": replicas,
        })
    nodes = {}
    for node, body in per_node.items():
        nodes[node] = {
            "replicaGroup": group_of[node],
            "shards": len(shard_map.shards_of(node)),
            "numberOfDocuments": body.get("numberOfDocuments") if body else None,
            "rawDocumentDbSize": body.get("rawDocumentDbSize") if body else None,
            "avgDocumentSize": body.get("avgDocumentSize") if body else None,
        }
    return {
        "shardCount": shard_map.shards,
        "numberOfDocuments": (sum(s["documents"] for s in shards)
                              if all(s["documents"] is not None for s in shards) else None),
        "nodes": nodes,
        "groups": group_balance(nodes, shard_map.replica_groups),
        "shards": shards,
    }

