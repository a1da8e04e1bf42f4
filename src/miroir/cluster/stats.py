"""Index and instance statistics that count each document once, whatever RF and RG are.

Every document lives on RG x RF nodes, so summing node stats would count it RG x RF times.
`numberOfDocuments` is instead counted per shard from one covering set: for each node of the
plan, `POST /indexes/{uid}/documents/fetch` with `filter: _miroir_shard IN [its shards]` and
`limit: 0`, whose `total` is exact. Shards the chosen group cannot cover are counted in another
group. Sizes, embedding counts, `internalDatabaseSizes` (per database name, when the nodes show
them) and fieldDistribution are summed over that same covering set -- one replica per shard --
and scaled by the share of shards each node was asked for: exact when RF = 1, an estimate
otherwise (documented).

Must never: count a shard twice, or render HTTP.
"""

from __future__ import annotations

from typing import Any

import trio

from miroir.cluster.runtime import Cluster, NodeRejected
from miroir.core.routing import SHARD_FIELD
from miroir.core.topology import ShardMap
from miroir.transport.base import NodeResponse


class StatsUnavailable(Exception):
    """Some shard has no readable owner in any group."""

    def __init__(self, shards: list[int]) -> None:
        super().__init__(f"no readable owner for shards {shards}")
        self.shards = shards


def shard_plan(shard_map: ShardMap, seq: int) -> dict[str, list[int]]:
    """node -> shards it is asked about: one readable owner per shard of the index's map
    (its own shard count), groups in round robin."""
    groups = shard_map.replica_groups
    plan: dict[str, list[int]] = {}
    remaining: list[int] | None = None
    for step in range(groups):
        group = (seq + step) % groups
        per_node, uncovered = shard_map.covering_plan(group, seq, remaining)
        for node, shards in per_node.items():
            plan.setdefault(node, []).extend(shards)
        remaining = uncovered
        if not remaining:
            return plan
    raise StatsUnavailable(sorted(remaining or []))


async def index_stats(
    cluster: Cluster, uid: str, *, internal_database_sizes: bool = False
) -> dict[str, Any]:
    """GET /indexes/{uid}/stats for the whole cluster (raises NodeRejected for 404 etc.);
    `internal_database_sizes` asks the nodes for them (`?showInternalDatabaseSizes=true`)."""
    stats_path = f"/indexes/{uid}/stats"
    if internal_database_sizes:
        stats_path += "?showInternalDatabaseSizes=true"
    shard_map = await cluster.current_shard_map_for(uid)
    plan = shard_plan(shard_map, cluster.next_query_seq())
    counts: dict[str, int] = {}
    node_stats: dict[str, dict[str, Any]] = {}

    answers: dict[str, tuple[Any, Any]] = {}

    async def one(node: str, shards: list[int]) -> None:
        body = {"filter": f"{SHARD_FIELD} IN [{', '.join(map(str, sorted(shards)))}]", "limit": 0}
        fetched = await cluster.call(node, "POST", f"/indexes/{uid}/documents/fetch", body)
        answers[node] = (fetched, await cluster.call(node, "GET", stats_path))

    async with trio.open_nursery() as nursery:
        for node, shards in plan.items():
            nursery.start_soon(one, node, shards)
    for node in sorted(answers):
        for result in answers[node]:
            if isinstance(result, NodeResponse) and 400 <= result.status < 500:
                raise NodeRejected(result)
            if not (isinstance(result, NodeResponse) and result.ok):
                raise StatsUnavailable(sorted(plan[node]))
        counts[node] = answers[node][0].json()["total"]
        node_stats[node] = answers[node][1].json()
    return combine_index_stats(shard_map, plan, counts, node_stats)


def combine_index_stats(
    shard_map: ShardMap,
    plan: dict[str, list[int]],
    counts: dict[str, int],
    node_stats: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    number = sum(counts.values())
    raw_size = 0.0
    embeddings = 0.0
    embedded = 0.0
    fields: dict[str, float] = {}
    databases: dict[str, float] = {}
    for node, stats in node_stats.items():
        held = len(shard_map.shards_of(node)) or 1
        share = len(plan[node]) / held  # the part of this node's data the plan counts
        raw_size += (stats.get("rawDocumentDbSize") or 0) * share
        embeddings += (stats.get("numberOfEmbeddings") or 0) * share
        embedded += (stats.get("numberOfEmbeddedDocuments") or 0) * share
        for name, size in (stats.get("internalDatabaseSizes") or {}).items():
            if isinstance(size, int):  # raw bytes (a human-readable size cannot be summed)
                databases[name] = databases.get(name, 0) + size * share
        for field, count in (stats.get("fieldDistribution") or {}).items():
            if field == SHARD_FIELD:
                continue
            fields[field] = fields.get(field, 0) + count * share
    combined: dict[str, Any] = {
        "numberOfDocuments": number,
        "rawDocumentDbSize": round(raw_size),
        "avgDocumentSize": round(raw_size / number) if number else 0,
        "isIndexing": any(stats.get("isIndexing") for stats in node_stats.values()),
    }
    if databases:  # Meilisearch leaves the key out when it shows no database
        combined["internalDatabaseSizes"] = {name: round(size) for name, size in
                                             sorted(databases.items())}
    return {
        **combined,
        "numberOfEmbeddings": round(embeddings),
        "numberOfEmbeddedDocuments": round(embedded),
        "fieldDistribution": {field: min(round(c), number) for field, c in sorted(fields.items())},
    }


async def all_index_uids(cluster: Cluster) -> list[str]:
    uids: list[str] = []
    offset = 0
    while True:
        result = await cluster.first_success(
            cluster.serving_nodes(), "GET", f"/indexes?offset={offset}&limit=1000"
        )
        if not (isinstance(result, NodeResponse) and result.ok):
            raise StatsUnavailable([])
        page = result.json()
        uids.extend(index["uid"] for index in page["results"])
        offset += len(page["results"])
        if not page["results"] or offset >= page["total"]:
            return uids


async def global_stats(cluster: Cluster) -> dict[str, Any]:
    """GET /stats: every index's cluster-wide stats; sizes summed over every node."""
    sizes = await cluster.fan_out(cluster.serving_nodes(), "GET", "/stats")
    database_size = used_size = 0
    last_update = None
    for result in sizes.values():
        if isinstance(result, NodeResponse) and result.ok:
            body = result.json()
            database_size += body.get("databaseSize") or 0
            used_size += body.get("usedDatabaseSize") or 0
            if body.get("lastUpdate") and (last_update is None or body["lastUpdate"] > last_update):
                last_update = body["lastUpdate"]
    indexes = {uid: await index_stats(cluster, uid) for uid in await all_index_uids(cluster)}
    return {
        "databaseSize": database_size,
        "usedDatabaseSize": used_size,
        "lastUpdate": last_update,
        "indexes": indexes,
    }
