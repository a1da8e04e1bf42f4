"""Document writes: primary key resolution, routing, the quorum fan-out, deletes by id.

Theory of operation. A batch is resolved and validated before any node sees it:

1. the primary key is the index's (from the index catalog, `cluster.catalog`, which every
   process drops within a second of the index changing anywhere); else `?primaryKey=`; else
   inferred once by Meilisearch's rule -- and then set on every node before a document is
   routed, so every shard agrees. A missing index is created first (everywhere, with rollback).
2. `miroir.core.routing.route_documents` checks every id and every field name, then groups the
   documents per owning node with `_miroir_shard` injected. One bad document fails the whole
   task with nothing sent.
3. one request per node, all at once, each under the node deadline, with quorum counted as the
   answers arrive (`Cluster.quorum_write` over `miroir.cluster.quorum_write`).
4. quorum per (shard, group), by `miroir.core.quorum`: at least floor(RF/2)+1 of the shard's
   owners in that group that count toward quorum acknowledged (answered with a task uid). A
   (group, shard) below that is reported as degraded; a shard that reached quorum in no group
   makes the write fail with `miroir_no_quorum`. In a rebalance's cutting phase a pair also
   needs the acknowledgement of each of its new owners (`migration_map.required_acks`).

Problems Meilisearch reports through a failed task (bad ids, primary-key conflicts) are
recorded the same way here: a 202 whose task is already `failed`.

`skipCreation` (update only documents that exist) is passed to every owner with its part of
the batch: a document lives only on its shard's owners, so each owner alone knows whether it
exists, and one that does not is created on no shard. The write's `customMetadata` stays on the
Miroir task (the nodes' own tasks are Miroir's business, not the client's).

Must never: send a document before the whole batch validated, or let `_miroir_*` fields in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import attrs

from miroir.cluster.broadcast import create_index_everywhere
from miroir.cluster.idempotency import reserve_task_uid
from miroir.cluster.indexes import index_exists, known_primary_key
from miroir.cluster.quorum_write import QuorumWriteResult
from miroir.cluster.reshard_mirror import (
    NOT_MIRRORED,
    Mirrored,
    mirror_delete_ids,
    mirror_documents,
)
from miroir.cluster.runtime import Cluster, NodeRejected, first_rejection, task_uid_of
from miroir.cluster.tasks import record_finished_task, record_task
from miroir.cluster.write_retry import RetryAs
from miroir.core.documents import canonical_document_id, infer_primary_key
from miroir.core.errors import MeiliError
from miroir.core.migration_map import required_acks
from miroir.core.placement import shard_for_key
from miroir.core.quorum import Pair, with_required_acks
from miroir.core.routing import SHARD_FIELD, route_documents
from miroir.core.tasks import Task
from miroir.core.topology import ShardMap


@attrs.frozen
class WriteOutcome:
    """The recorded task, the (group, shard) pairs that missed quorum, and the shards that
    reached quorum in no group at all (non-empty means the client gets 503)."""

    task: Task
    degraded: tuple[tuple[int, int], ...] = ()
    lost_shards: tuple[int, ...] = ()


def quorum_targets(shard_map: ShardMap, shards: Iterable[int]) -> dict[Pair, list[str]]:
    """For each (shard, group) of a write, the owners whose acknowledgement counts toward its
    quorum (`ShardMap.counts_toward_quorum`: a joining node is written to but not counted)."""
    return {
        (shard, group): [
            node for node in shard_map.owners(group, shard) if shard_map.counts_toward_quorum(node)
        ]
        for shard in shards
        for group in range(shard_map.replica_groups)
    }


async def resolve_primary_key(
    cluster: Cluster, index_uid: str, documents: Sequence[Mapping[str, Any]], requested: str | None
) -> str:
    """The primary key the batch is routed by, set on every node; MeiliError if there is none.

    Creates the index (everywhere) when it does not exist, as Meilisearch does on a write.
    """
    known = await known_primary_key(cluster, index_uid)
    if known is None:
        async with cluster.index_lock(index_uid):
            return await _resolve_uncached(cluster, index_uid, documents, requested)
    return _keep_known_primary_key(index_uid, known, requested)


def _keep_known_primary_key(index_uid: str, known: str, requested: str | None) -> str:
    """`known`, unless the write asks for another key: Meilisearch refuses to change it."""
    if requested is not None and requested != known:
        raise MeiliError(
            "index_primary_key_already_exists",
            f"Index `{index_uid}`: primary key already set to `{known}`.",
        )
    return known


async def _resolve_uncached(
    cluster: Cluster, index_uid: str, documents: Sequence[Mapping[str, Any]], requested: str | None
) -> str:
    known = await known_primary_key(cluster, index_uid)  # another write may have set it meanwhile
    if known is None:
        index = await index_exists(cluster, index_uid)  # files the key it shows in the catalog
        if index is None:
            # Within the write's own task, as in Meilisearch: no indexCreation task, no uid.
            error, _ = await create_index_everywhere(cluster, index_uid, requested)
            if error is not None:
                raise MeiliError(error["code"], error["message"])
            known = requested
        else:
            known = index.get("primaryKey")
    if known is not None:
        return _keep_known_primary_key(index_uid, known, requested)
    primary_key = requested if requested is not None else infer_primary_key(documents)
    await set_primary_key(cluster, index_uid, primary_key)
    return primary_key


async def set_primary_key(cluster: Cluster, index_uid: str, primary_key: str) -> None:
    """Set the primary key on every node and wait until each one did."""
    results = await cluster.fan_out(
        cluster.all_nodes(), "PATCH", f"/indexes/{index_uid}", {"primaryKey": primary_key}
    )
    acked = {n: uid for n, r in results.items() if (uid := task_uid_of(r)) is not None}
    if len(acked) < len(results):
        rejection = first_rejection(results)
        if rejection is not None:
            raise NodeRejected(rejection)
        missing = sorted(set(results) - set(acked))
        raise MeiliError(
            "miroir_node_unavailable",
            f"Could not set the primary key `{primary_key}` on node `{missing[0]}`.",
        )
    views = await cluster.wait_for_node_tasks(acked)
    for node in sorted(views):
        view = views[node]
        if view is None or view.get("status") != "succeeded":
            error = (view or {}).get("error")
            if error:
                raise MeiliError(error["code"], error["message"])
            raise MeiliError(
                "miroir_node_unavailable",
                f"Node `{node}` did not set the primary key `{primary_key}` in time.",
            )
    await cluster.catalog.changed(index_uid, primary_key=primary_key)


async def write_documents(
    cluster: Cluster,
    index_uid: str,
    documents: list[dict[str, Any]],
    *,
    requested_primary_key: str | None,
    replace: bool,
    skip_creation: bool = False,
    custom_metadata: str | None = None,
) -> WriteOutcome:
    """Add (POST, `replace`) or update (PUT) documents; see the module docstring."""
    details = {"receivedDocuments": len(documents), "indexedDocuments": None}
    try:
        primary_key = await resolve_primary_key(
            cluster, index_uid, documents, requested_primary_key
        )
        # One snapshot of the index's shard map routes the batch and names the quorum targets.
        shard_map = cluster.shard_map_for(index_uid)
        routed = route_documents(documents, primary_key, shard_map)
    except MeiliError as error:
        if error.status >= 500:
            raise  # no node could be asked: the client gets the 503 now, no task
        failed = await record_finished_task(
            cluster, "documentAdditionOrUpdate", index_uid,
            {**details, "indexedDocuments": 0}, error=error.body(),
            custom_metadata=custom_metadata,
        )
        return WriteOutcome(failed)
    query = f"primaryKey={quote(primary_key)}"
    if skip_creation:
        query += "&skipCreation=true"
    method = "POST" if replace else "PUT"
    written = await cluster.quorum_write(
        routed.per_node,
        method,
        f"/indexes/{index_uid}/documents?{query}",
        lambda node: routed.per_node[node],
        quorum_targets(shard_map, routed.shards_written),
        retry_as=RetryAs(index_uid, "documentAdditionOrUpdate", {
            node: frozenset(doc[SHARD_FIELD] for doc in docs)
            for node, docs in routed.per_node.items()}, await reserve_task_uid(cluster)),
    )
    mirrored = NOT_MIRRORED
    if written.acked_nodes():  # a reshard's mirror, once the index's own write was taken
        mirrored = await mirror_documents(cluster, index_uid, documents, primary_key, query,
                                          method)
    return await _finish_write(
        cluster, "documentAdditionOrUpdate", index_uid, details, written, custom_metadata,
        required_acks(shard_map, routed.shards_written), mirrored,
    )


async def delete_documents_by_id(
    cluster: Cluster, index_uid: str, raw_ids: Sequence[Any], custom_metadata: str | None = None
) -> WriteOutcome:
    """Delete documents by id on their owners only (one delete-batch per owning node)."""
    details = {"providedIds": len(raw_ids), "deletedDocuments": None, "originalFilter": None}
    shard_map = cluster.shard_map_for(index_uid)
    per_node: dict[str, list[str]] = {}
    node_shards: dict[str, set[int]] = {}
    shards: set[int] = set()
    valid_ids: list[str] = []
    for raw in raw_ids:
        # Meilisearch turns any id into a string; one that is no valid id deletes nothing.
        text = raw if isinstance(raw, str) else _json_text(raw)
        try:
            doc_id = canonical_document_id(text)
        except MeiliError:
            continue
        valid_ids.append(doc_id)
        shard = shard_for_key(doc_id, shard_map.shards)
        shards.add(shard)
        for _, node in shard_map.write_targets(shard):
            per_node.setdefault(node, []).append(doc_id)
            node_shards.setdefault(node, set()).add(shard)
    if not shards:
        # No valid id, so nothing any node could hold: succeed at once, as Meilisearch does.
        # (Valid ids whose owners are all failed fall through: quorum reports them lost.)
        if await index_exists(cluster, index_uid) is None:
            error = MeiliError("index_not_found", f"Index `{index_uid}` not found.")
            task = await record_finished_task(
                cluster, "documentDeletion", index_uid, {**details, "deletedDocuments": 0},
                error=error.body(), custom_metadata=custom_metadata,
            )
        else:
            task = await record_finished_task(
                cluster, "documentDeletion", index_uid, {**details, "deletedDocuments": 0},
                custom_metadata=custom_metadata,
            )
        return WriteOutcome(task)
    written = await cluster.quorum_write(
        per_node, "POST", f"/indexes/{index_uid}/documents/delete-batch",
        lambda node: per_node[node], quorum_targets(shard_map, shards),
        retry_as=RetryAs(index_uid, "documentDeletion",
                         {node: frozenset(s) for node, s in node_shards.items()},
                         await reserve_task_uid(cluster)),
    )
    mirrored = NOT_MIRRORED
    if written.acked_nodes():
        mirrored = await mirror_delete_ids(cluster, index_uid, valid_ids)
    return await _finish_write(
        cluster, "documentDeletion", index_uid, details, written, custom_metadata,
        required_acks(shard_map, shards), mirrored,
    )


def _json_text(value: Any) -> str:
    import orjson

    return orjson.dumps(value).decode()


async def _finish_write(
    cluster: Cluster,
    task_type: str,
    index_uid: str,
    details: Mapping[str, Any],
    written: QuorumWriteResult,
    custom_metadata: str | None = None,
    required: Mapping[Pair, Sequence[str]] | None = None,
    mirrored: Mirrored = NOT_MIRRORED,
) -> WriteOutcome:
    results = written.results
    if results and not written.acked_nodes():
        rejection = first_rejection(results)
        if rejection is not None:
            raise NodeRejected(rejection)
    verdict = written.verdict
    if required:  # a rebalance's cutting phase: the shards' new owners must have it too
        verdict = with_required_acks(verdict, required, written.acked_nodes())
    degraded = tuple(sorted((group, shard) for shard, group in verdict.missed))
    lost = set(verdict.shards_without_quorum)
    if mirrored.failed:
        # A reshard's required mirror missed quorum: the write is not acknowledged (the shards
        # count as without quorum), so a verified or rolled-back copy never lacks it.
        lost |= {shard for shard, _ in verdict.met | verdict.missed | verdict.open}
    task = await record_task(
        cluster, task_type, index_uid, results, details, degraded, custom_metadata
    )
    return WriteOutcome(task, degraded, tuple(sorted(lost)))
