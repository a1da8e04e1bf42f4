"""A reshard's write mirror: every write to a node-side index with a mirror goes to the mirror
too, routed by the mirror's own shard count (`miroir.cluster.reshard` sets the mirror up).

Theory of operation. The layouts record (`core.index_layout.Layouts.mirrors`) names, per node-side
index, where its writes are mirrored: a reshard's shadow while it is filled and verified, the old
index during the grace period after the flip. Each process reads it from its `LayoutCache` (at
most a second old, and the reshard engine starts nothing before every live process announced
the version carrying the mirror). Document writes and deletes by id are routed afresh with the
mirror's shard map (`Cluster.shard_map_for`) and sent with quorum counted per (shard, group) of
the mirror; deletes by filter and delete-all go to every writable node; settings changes are
applied to the mirror on every node once the index's own change succeeded.

The mirror write is sent after the index's own write was acknowledged (so a mirror never holds
a write its source does not: the reshard's comparison relies on it). A mirror that misses quorum
is counted in the store (`MIRROR_FAILURES_RECORD`, shown in the reshard's errors) and repaired by
the reshard's comparison; when the mirror is `required` (verifying, grace) the client's write is
not acknowledged either (`Mirrored.failed`: the caller answers 503 like a write without quorum),
which is what makes the final comparison final and a rollback during grace lossless.

Must never: send a mirror write before the source's own write was acknowledged, or let a mirror's
failure go uncounted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from miroir.cluster import settings_sync
from miroir.cluster.runtime import Cluster, task_uid_of
from miroir.core.placement import shard_for_key
from miroir.core.quorum import Pair
from miroir.core.routing import SHARD_FIELD, route_documents
from miroir.core.topology import ShardMap
from miroir.store.base import StoreError

logger = logging.getLogger("miroir.reshard")

MIRROR_FAILURES_RECORD = "reshard-mirror-failures"


@attrs.frozen
class Mirrored:
    """What a mirror write did: `failed` when the mirror was required and missed quorum (the
    client's write must not be acknowledged)."""

    target: str | None = None
    failed: bool = False


NOT_MIRRORED = Mirrored()

def _targets(shard_map: ShardMap, shards: set[int]) -> dict[Pair, list[str]]:
    return {(shard, group): [n for n in shard_map.owners(group, shard)
                             if shard_map.counts_toward_quorum(n)]
            for shard in shards for group in range(shard_map.replica_groups)}


async def mirror_documents(cluster: Cluster, node_index: str, documents: Sequence[Mapping[str, Any]],
                           primary_key: str, path_query: str, method: str) -> Mirrored:
    """Mirror a document write (`documents` as the client sent them; their `_miroir_shard`, put
    there by the source's routing, is dropped and computed again for the mirror)."""
    mirror = cluster.layouts.cached().mirror_of(node_index)
    if mirror is None:
        return Mirrored()
    shard_map = cluster.shard_map_for(mirror.node_index)
    fresh = [{k: v for k, v in d.items() if k != SHARD_FIELD} for d in documents]
    routed = route_documents(fresh, primary_key, shard_map)  # validated already: cannot raise
    written = await cluster.quorum_write(
        routed.per_node, method, f"/indexes/{mirror.node_index}/documents?{path_query}",
        lambda node: routed.per_node[node], _targets(shard_map, set(routed.shards_written)))
    return await _outcome(cluster, node_index, mirror.node_index, mirror.required,
                          not written.verdict.missed, not written.verdict.shards_without_quorum)


async def mirror_delete_ids(cluster: Cluster, node_index: str, ids: Sequence[str]) -> Mirrored:
    """Mirror a delete by id (canonical ids), each to its owners under the mirror's S."""
    mirror = cluster.layouts.cached().mirror_of(node_index)
    if mirror is None or not ids:
        return Mirrored()
    shard_map = cluster.shard_map_for(mirror.node_index)
    per_node: dict[str, list[str]] = {}
    shards: set[int] = set()
    for doc_id in ids:
        shard = shard_for_key(doc_id, shard_map.shards)
        shards.add(shard)
        for _, node in shard_map.write_targets(shard):
            per_node.setdefault(node, []).append(doc_id)
    written = await cluster.quorum_write(
        per_node, "POST", f"/indexes/{mirror.node_index}/documents/delete-batch",
        lambda node: per_node[node], _targets(shard_map, shards))
    return await _outcome(cluster, node_index, mirror.node_index, mirror.required,
                          not written.verdict.missed, not written.verdict.shards_without_quorum)


async def mirror_broadcast(cluster: Cluster, node_index: str, method: str, path: str,
                           body: Any) -> Mirrored:
    """Mirror a write every node takes (delete by filter, delete all): `path` names
    `node_index`, and is sent with the mirror's name instead."""
    mirror = cluster.layouts.cached().mirror_of(node_index)
    prefix = f"/indexes/{node_index}/documents"
    if mirror is None or not path.startswith(prefix):
        return Mirrored()
    mirrored_path = f"/indexes/{mirror.node_index}/documents" + path[len(prefix):]
    nodes = cluster.writable_nodes()
    results = await cluster.fan_out(nodes, method, mirrored_path, body)
    ok = all(task_uid_of(results.get(n)) is not None for n in nodes)
    return await _outcome(cluster, node_index, mirror.node_index, mirror.required, ok)


async def mirror_settings(cluster: Cluster, node_index: str, patch: Mapping[str, Any]) -> Mirrored:
    """Apply a settings patch the source took to the mirror on every node, waited for, and
    commit the mirror's settings version (its reads need it)."""
    mirror = cluster.layouts.cached().mirror_of(node_index)
    if mirror is None:
        return Mirrored()
    nodes = sorted(cluster.all_nodes())
    results = await cluster.fan_out(nodes, "PATCH", f"/indexes/{mirror.node_index}/settings",
                                    dict(patch))
    acked = {n: uid for n, r in results.items() if (uid := task_uid_of(r)) is not None}
    views = await cluster.wait_for_node_tasks(acked) if acked else {}
    ok = all((views.get(n) or {}).get("status") == "succeeded" for n in nodes)
    if ok:
        version = await cluster.store.allocate_settings_version(mirror.node_index)
        committed, _ = await settings_sync.commit(cluster, mirror.node_index, version, nodes,
                                                  succeeded=True, patched=patch)
        ok = committed is not None
        await cluster.catalog.changed(mirror.node_index, same_primary_key=True)
    return await _outcome(cluster, node_index, mirror.node_index, mirror.required, ok)


async def _outcome(cluster: Cluster, source: str, target: str, required: bool,
                   ok: bool, some_quorum: bool | None = None) -> Mirrored:
    """`ok`: every (shard, group) of the mirror reached quorum (else the failure is counted);
    `some_quorum`: every shard did in some group (else a required mirror refuses the write,
    the rule the source's own quorum follows); None: the same as `ok`."""
    some_quorum = ok if some_quorum is None else some_quorum
    if ok:
        return Mirrored(target)
    refused = required and not some_quorum
    logger.warning("reshard mirror: a write to %s missed quorum on its mirror %s%s", source,
                   target, " (required: the write is refused)" if refused else "")
    await count_mirror_failure(cluster, target)
    return Mirrored(target, failed=refused)


async def count_mirror_failure(cluster: Cluster, target: str) -> None:
    """Add one to the mirror's failure count in the store (a compare-and-set, retried a few
    times; a store that fails is logged: the comparison repairs the mirror either way)."""
    for _ in range(5):
        try:
            record = await cluster.store.get_record(MIRROR_FAILURES_RECORD)
            value = dict(record.value) if record is not None else {}
            value[target] = int(value.get(target, 0)) + 1
            stored = await cluster.store.put_record_if(
                MIRROR_FAILURES_RECORD, 0 if record is None else record.version, value)
        except StoreError as exc:
            logger.warning("reshard mirror: could not count a failure: %s", exc)
            return
        if stored is not None:
            return


async def mirror_failures(cluster: Cluster, targets: list[str]) -> int:
    """How many mirrored writes to `targets` missed quorum (since `reset_mirror_failures`)."""
    record = await cluster.store.get_record(MIRROR_FAILURES_RECORD)
    return 0 if record is None else sum(int(record.value.get(t, 0)) for t in targets)


async def reset_mirror_failures(cluster: Cluster, targets: list[str]) -> None:
    """Forget the counts of `targets` (a reshard starts: a name may have been used before)."""
    while True:
        record = await cluster.store.get_record(MIRROR_FAILURES_RECORD)
        if record is None or not set(targets) & set(record.value):
            return
        value = {k: v for k, v in record.value.items() if k not in targets}
        if await cluster.store.put_record_if(MIRROR_FAILURES_RECORD, record.version,
                                             value) is not None:
            return
