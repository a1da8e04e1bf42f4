"""Read-only replica checks for operators: `miroir ctl verify` and `miroir ctl settings diff`
(`GET /_miroir/verify`, `GET /_miroir/indexes/{uid}/settings/nodes`).

Theory of operation. Where the reconciler (`cluster.reconcile`) finds differences and repairs
them, this only looks, and says what it saw, so an operator can check a fleet (or a script can
gate on it) without changing anything.

- Settings: every serving node's settings of the index are read at once and digested
  (`settings_sync.settings_digest`). The reference is the committed settings when the store has
  them, else the settings most nodes hold; a node that holds something else, or did not answer,
  is a difference, named with the keys that differ.
- Documents, per shard of the index's own shard count (`Cluster.shard_map_for`; shown as
  `shardCount`): every readable owner in every group is asked its count (`limit: 0`
  fetch filtered on `_miroir_shard`). Then a sample of ids is drawn from each owner (a page of
  `sample` ids at a random offset, so repeated runs look at different documents; `sample=0`
  reads every document) and those ids are fetched from every owner and compared by document
  digest. A shard is consistent when the counts agree and every sampled id has one digest on
  every owner. Sampling can miss a changed document; counts never miss a lost or extra one.

Must never: write to a node or the store, or render HTTP.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import trio

from miroir.cluster import settings_sync
from miroir.cluster.fleet_stats import (
    SHARDS_AT_ONCE,
    indexes_named,
    readable_owners,
    shard_counts,
)
from miroir.cluster.indexes import index_exists
from miroir.cluster.runtime import Cluster
from miroir.core import fleet_report
from miroir.core.errors import MeiliError
from miroir.core.routing import SHARD_FIELD
from miroir.core.shard_copy import document_digest
from miroir.core.tasks import ENQUEUED, PROCESSING, TaskQuery
from miroir.core.topology import ShardMap
from miroir.transport.base import NodeResponse

DEFAULT_SAMPLE = 100
MAX_SAMPLE = 10_000
PAGE_SIZE = 1000  # ids per documents fetch when every document is compared
IDS_SHOWN = 20  # differing document ids named per shard; the count says how many in all


class OwnerSilent(Exception):
    """An owner did not answer a documents fetch."""


async def node_settings(cluster: Cluster, client_uid: str) -> dict[str, Any]:
    """Every serving node's settings of the index, its digest and recorded version, and the
    committed settings' version and digest (`settings diff`'s body)."""
    ((_, uid),) = await indexes_named(cluster, [client_uid])
    return {"index": client_uid, **await settings_of(cluster, uid)}


async def settings_of(cluster: Cluster, uid: str) -> dict[str, Any]:
    """`node_settings` of node-side index `uid`."""
    nodes = cluster.serving_nodes()
    held = await settings_sync.read_all_settings(cluster, nodes, uid)
    committed = await cluster.store.get_committed_settings(uid)
    versions = await cluster.store.get_settings_versions(uid)
    group_of = {node.id: node.replica_group for node in cluster.topology.nodes}
    return {
        "nodeIndex": uid,
        "committed": None if committed is None else {
            "version": committed.version,
            "digest": settings_sync.settings_digest(committed.settings),
            "settings": committed.settings,
        },
        "nodes": [
            {
                "id": node,
                "replicaGroup": group_of[node],
                "answered": held[node] is not None,
                "digest": (settings_sync.settings_digest(held[node])
                           if held[node] is not None else None),
                "version": versions.get(node),
                "settings": held[node],
            }
            for node in sorted(nodes)
        ],
    }


def settings_differences(view: Mapping[str, Any]) -> dict[str, Any]:
    """Which nodes of a `node_settings` view differ from the reference (core's rule)."""
    return fleet_report.settings_differences(view["nodes"], view["committed"])


async def _fetch(cluster: Cluster, node: str, uid: str, body: dict[str, Any]) -> dict[str, Any]:
    result = await cluster.call(node, "POST", f"/indexes/{uid}/documents/fetch", body)
    if not (isinstance(result, NodeResponse) and result.ok):
        raise OwnerSilent(node)
    return result.json()


async def _ids_page(cluster: Cluster, node: str, uid: str, pk: str, shard: int, offset: int,
                   limit: int) -> list[str]:
    page = await _fetch(cluster, node, uid, {"filter": f"{SHARD_FIELD} = {shard}",
                                             "fields": [pk], "offset": offset, "limit": limit})
    return [str(doc[pk]) for doc in page["results"] if pk in doc]


async def _sample_ids(cluster: Cluster, uid: str, pk: str, shard: int,
                      counts: Mapping[str, int | None], sample: int,
                      rng: random.Random) -> list[str]:
    """`sample` ids from each owner at a random offset; every id of every owner when 0."""
    ids: set[str] = set()
    for node, count in counts.items():
        if count is None:
            continue
        if sample:
            offset = rng.randint(0, max(0, count - sample))
            ids.update(await _ids_page(cluster, node, uid, pk, shard, offset, sample))
            continue
        for offset in range(0, count, PAGE_SIZE):
            ids.update(await _ids_page(cluster, node, uid, pk, shard, offset, PAGE_SIZE))
    return sorted(ids)


async def _digests(cluster: Cluster, node: str, uid: str, pk: str,
                   ids: list[str]) -> dict[str, int]:
    digests: dict[str, int] = {}
    for start in range(0, len(ids), PAGE_SIZE):
        chunk = ids[start:start + PAGE_SIZE]
        page = await _fetch(cluster, node, uid, {"ids": chunk, "limit": len(chunk)})
        digests.update((str(doc[pk]), document_digest(doc))
                       for doc in page["results"] if pk in doc)
    return digests


async def verify_shard(cluster: Cluster, shard_map: ShardMap, uid: str, pk: str, shard: int, *,
                       sample: int, rng: random.Random) -> dict[str, Any]:
    """One shard of the index whose map is `shard_map` (its own shard count)."""
    owners = readable_owners(shard_map, shard)
    counts = await shard_counts(cluster, uid, shard, [node for _, node in owners])
    replicas = [{"node": node, "group": group, "numberOfDocuments": counts[node]}
                for group, node in owners]
    silent = [node for node, count in counts.items() if count is None]
    held: dict[str, dict[str, int]] = {}
    ids: list[str] = []
    try:
        ids = await _sample_ids(cluster, uid, pk, shard, counts, sample, rng)
        if ids and len(owners) > 1:
            held = {node: await _digests(cluster, node, uid, pk, ids)
                    for _, node in owners if counts[node] is not None}
    except OwnerSilent as error:
        silent.append(str(error))
        held = {}
    counts_agree, differing = fleet_report.shard_verdict(counts, held, ids)
    return {
        "shard": shard,
        "replicas": replicas,
        "countsAgree": counts_agree,
        "sampled": len(ids),
        "documentsDiffering": len(differing),
        "differingIds": differing[:IDS_SHOWN],
        "unanswered": sorted(set(silent)),
        "consistent": counts_agree and not differing and not silent,
    }


async def verify_index(cluster: Cluster, uid: str, *, sample: int = DEFAULT_SAMPLE,
                       rng: random.Random | None = None) -> dict[str, Any]:
    """The index's settings and documents checked across every replica (module docstring)."""
    rng = rng or random.Random()
    index = await index_exists(cluster, uid)
    if index is None:
        raise MeiliError("index_not_found", f"Index `{uid}` not found.")
    settings = settings_differences(await settings_of(cluster, uid))
    pk = index.get("primaryKey")
    shards: dict[int, dict[str, Any]] = {}
    shard_map = await cluster.current_shard_map_for(uid)
    if isinstance(pk, str):
        limiter = trio.CapacityLimiter(SHARDS_AT_ONCE)

        async def one(shard: int) -> None:
            async with limiter:
                shards[shard] = await verify_shard(cluster, shard_map, uid, pk, shard,
                                                   sample=sample, rng=rng)

        async with trio.open_nursery() as nursery:
            for shard in range(shard_map.shards):
                nursery.start_soon(one, shard)
    checked = [shards[s] for s in sorted(shards)]
    unfinished = await cluster.store.list_tasks(TaskQuery(
        statuses=frozenset({ENQUEUED, PROCESSING}), index_uids=frozenset({uid}), limit=1))
    return {
        "index": uid,
        "primaryKey": pk,
        "shardCount": shard_map.shards,
        # a write still in flight is a difference that heals by itself: said, not hidden
        "tasksUnfinished": bool(unfinished.results),
        "consistent": not settings["differing"] and all(s["consistent"] for s in checked),
        "settings": settings,
        "shards": checked,
    }


async def verify(cluster: Cluster, uids: list[str] | None, *,
                 sample: int = DEFAULT_SAMPLE) -> dict[str, Any]:
    """Every index, or the client uids in `uids`, checked (`verify_index`), each reported under
    its client uid with its node-side name (`nodeIndex`)."""
    rng = random.Random()
    results = [{**await verify_index(cluster, name, sample=sample, rng=rng), "index": label,
                "nodeIndex": name}
               for label, name in await indexes_named(cluster, uids or None)]
    return {"consistent": all(r["consistent"] for r in results), "sample": sample,
            "indexes": results}
