"""Writes every node must take: index creation, index changes, settings, with rollback.

Theory of operation. An index or a setting that exists on some nodes and not others is worse
than a failed request, so two operations are carried out to the end before the client is told:

- index creation sends `POST /indexes` to every node in every group, waits for every node task,
  then makes `_miroir_shard` filterable everywhere. If any node fails, the index is deleted
  again on the nodes that did create it, and the Miroir task fails.
- a settings change is applied node by node: read the node's settings, apply, wait for the node
  task; on the first failure every node already changed gets its previous settings back (in
  reverse order) and the Miroir task fails.

`_miroir_shard` can never leave filterableAttributes: every settings write that touches that
key has it added back before it is sent, and `hide_shard_field` removes it on the way out.

Other broadcasts (index delete and update, delete-by-filter, delete-all, experimental features)
just fan out and record a task the poller follows.

Every operation here that changes what an index is (creation, deletion, update, settings) ends
with `cluster.catalog.changed`, so every proxy process drops what it knew of the index (the
poller calls it again when an index deletion or update finishes on the nodes).

Must never: render HTTP, or leave a node changed after reporting failure when a rollback call
could still reach it.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

from miroir.cluster import settings_sync
from miroir.cluster.indexes import index_exists
from miroir.cluster.reshard_mirror import mirror_broadcast, mirror_settings
from miroir.cluster.runtime import Cluster, NodeRejected, first_rejection, task_uid_of
from miroir.cluster.settings_sync import settings_lease
from miroir.cluster.tasks import record_finished_task, record_task
from miroir.core.errors import MeiliError, error_body
from miroir.core.routing import SHARD_FIELD
from miroir.core.tasks import NodeTask, Task
from miroir.store.base import StoreError
from miroir.transport.base import NodeResponse

logger = logging.getLogger("miroir.broadcast")

# A settings change holds the index's settings lease at most this long (longer than any change
# takes: per node a read, an apply and a wait, and as much again to roll back).
SETTINGS_LEASE_TTL_MS = 10 * 60 * 1000
_CHANGES = itertools.count()

# ---- `_miroir_shard` in filterableAttributes ---------------------------------------------------


def _mentions_shard_field(item: Any) -> bool:
    if isinstance(item, str):
        return item == SHARD_FIELD
    if isinstance(item, Mapping):
        patterns = item.get("attributePatterns")
        return isinstance(patterns, list) and SHARD_FIELD in patterns
    return False


def with_shard_filterable(filterable: Any) -> Any:
    """`filterable` with `_miroir_shard` added; a reset (None) becomes just `_miroir_shard`.
    Anything that is not a list is left for the node to reject with its own error."""
    if filterable is None:
        return [SHARD_FIELD]
    if isinstance(filterable, list):
        if any(_mentions_shard_field(item) for item in filterable):
            return filterable
        return [*filterable, SHARD_FIELD]
    return filterable


def protect_settings_patch(patch: Mapping[str, Any]) -> dict[str, Any]:
    """The patch a node receives: `_miroir_shard` stays filterable whatever the client sent."""
    patch = dict(patch)
    if "filterableAttributes" in patch:
        patch["filterableAttributes"] = with_shard_filterable(patch["filterableAttributes"])
    return patch


def hide_shard_field(filterable: Any) -> Any:
    """filterableAttributes as a client should see it: without `_miroir_shard`."""
    if not isinstance(filterable, list):
        return filterable
    shown = []
    for item in filterable:
        if isinstance(item, str) and item == SHARD_FIELD:
            continue
        if isinstance(item, Mapping) and _mentions_shard_field(item):
            patterns = [p for p in item["attributePatterns"] if p != SHARD_FIELD]
            if not patterns:
                continue
            item = {**item, "attributePatterns": patterns}
        shown.append(item)
    return shown


def hide_in_settings(settings: Any) -> Any:
    if isinstance(settings, dict) and "filterableAttributes" in settings:
        settings = {**settings, "filterableAttributes": hide_shard_field(settings["filterableAttributes"])}
    return settings


# ---- waiting on one step ----------------------------------------------------------------------


async def run_everywhere(
    cluster: Cluster, nodes: list[str], method: str, path: str, body: Any
) -> tuple[list[str], dict[str, Any] | None, dict[str, NodeTask]]:
    """Send to every node and wait for the node tasks: (nodes that succeeded, first error
    (by node id) or None, node tasks)."""
    results = await cluster.fan_out(nodes, method, path, body)
    acked = {n: uid for n, r in results.items() if (uid := task_uid_of(r)) is not None}
    views = await cluster.wait_for_node_tasks(acked) if acked else {}
    succeeded = [n for n in nodes if (views.get(n) or {}).get("status") == "succeeded"]
    node_tasks = {
        n: NodeTask(acked.get(n), (views.get(n) or {}).get("status", "enqueued") if n in acked
                    else "enqueued", (views.get(n) or {}).get("error"))
        for n in nodes
    }
    error = None
    for node in sorted(nodes):
        if node in succeeded:
            continue
        view = views.get(node)
        result = results[node]
        if view and view.get("error"):
            error = view["error"]
        elif isinstance(result, NodeResponse) and not result.ok and _is_error_body(result):
            error = result.json()
        else:
            error = error_body(
                "miroir_node_unavailable",
                f"Node `{node}` did not complete `{method} {path}` in time.",
            )
        break
    return succeeded, error, node_tasks


def _is_error_body(response: NodeResponse) -> bool:
    try:
        body = response.json()
    except Exception:  # noqa: BLE001 - a non-JSON error page is simply not an error body
        return False
    return isinstance(body, dict) and "code" in body and "message" in body


# ---- index creation ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def holding_settings_lease(cluster: Cluster, uid: str) -> AsyncIterator[None]:
    """The reconciler leaves an index's settings alone while this lease is held, so it never
    "repairs" a node a change (or a creation) has already reached. Held or not (another proxy's
    change may hold it), the change goes ahead, as two concurrent changes always could."""
    holder = f"settings-change-{os.getpid()}-{id(cluster)}-{next(_CHANGES)}"
    lease = settings_lease(uid)
    await cluster.store.acquire_lease(lease, holder, cluster.now_ms(), SETTINGS_LEASE_TTL_MS)
    try:
        yield
    finally:
        await cluster.store.release_lease(lease, holder)


async def create_index(cluster: Cluster, uid: str, primary_key: str | None) -> Task:
    """`POST /indexes`: create `uid` everywhere or nowhere, as an `indexCreation` task."""
    error, node_tasks = await create_index_everywhere(cluster, uid, primary_key)
    return await record_finished_task(
        cluster, "indexCreation", uid, {"primaryKey": primary_key}, error=error,
        node_tasks=node_tasks,
    )


async def create_index_everywhere(
    cluster: Cluster, uid: str, primary_key: str | None
) -> tuple[dict[str, Any] | None, dict[str, NodeTask]]:
    """Create `uid` on every node with `_miroir_shard` filterable, or nowhere; a created index
    starts with its settings committed (`settings_sync`), at a fresh first version.

    Returns the error (None once created) and the node tasks, and records no Miroir task: a
    write to a missing index creates it within the write's own task, as Meilisearch does (one
    task, one uid); `create_index` records the `indexCreation` task of `POST /indexes`.
    """
    created = False
    try:
        async with holding_settings_lease(cluster, uid):
            error, node_tasks = await _create_index(cluster, uid, primary_key)
        created = error is None
        return error, node_tasks
    finally:
        # Also after a rollback: a lookup may have seen the index on a node meanwhile.
        await cluster.catalog.changed(uid, primary_key=primary_key if created else None)


async def _create_index(
    cluster: Cluster, uid: str, primary_key: str | None
) -> tuple[dict[str, Any] | None, dict[str, NodeTask]]:
    nodes = cluster.all_nodes()
    created, error, node_tasks = await run_everywhere(
        cluster, nodes, "POST", "/indexes", {"uid": uid, "primaryKey": primary_key}
    )
    if error is None:
        _, error, _ = await run_everywhere(
            cluster, nodes, "PATCH", f"/indexes/{uid}/settings",
            {"filterableAttributes": [SHARD_FIELD]},
        )
    if error is not None:
        if created:
            await run_everywhere(cluster, created, "DELETE", f"/indexes/{uid}", None)
        return error, node_tasks
    # The index did not exist on any node: whatever versions the store still holds for the uid
    # belong to an earlier incarnation.
    await cluster.store.delete_settings_versions(uid)
    version = await cluster.store.allocate_settings_version(uid)
    await settings_sync.commit(cluster, uid, version, sorted(nodes), succeeded=True)
    return None, node_tasks


async def update_index(cluster: Cluster, uid: str, body: Any) -> Task:
    """PATCH /indexes/{uid} on every node (a new primary key, or a new uid: a rename)."""
    details = {"primaryKey": body.get("primaryKey")} if isinstance(body, dict) else None
    renamed = body.get("uid") if isinstance(body, dict) else None
    if isinstance(body, dict) and "uid" in body:
        details = {**(details or {}), "oldIndexUid": uid, "newIndexUid": renamed}
    try:
        return await broadcast_write(
            cluster, "PATCH", f"/indexes/{uid}", body, "indexUpdate", uid, details
        )
    finally:
        await cluster.catalog.changed(uid)
        if isinstance(renamed, str) and renamed != uid:
            await cluster.catalog.changed(renamed)


async def delete_index(cluster: Cluster, uid: str) -> Task:
    """DELETE /indexes/{uid} on every node; once a node took it, the index's own shard count
    goes with it (`forget_shard_count`)."""
    try:
        task = await broadcast_write(
            cluster, "DELETE", f"/indexes/{uid}", None, "indexDeletion", uid,
            {"deletedDocuments": None},
        )
        if any(node_task.acknowledged for node_task in task.node_tasks.values()):
            await forget_shard_count(cluster, uid)
        return task
    finally:
        # A recreated index starts without committed settings, like a new one.
        await cluster.store.delete_settings_versions(uid)
        await cluster.catalog.changed(uid)


async def forget_shard_count(cluster: Cluster, uid: str) -> None:
    """Drop node-side index `uid`'s own shard count from the layouts, now that its deletion is
    enqueued: a node applies its tasks in order, so a write sent after the delete recreates
    the index, and that index is new, at the topology's S. Best effort: an entry left behind
    (the store did not answer) is harmless, since every process routes that name by it
    consistently -- an index created under the name later just keeps that S -- and a fresh
    node-side name never takes a name that has an entry. Like every layout change, other
    processes follow within about a second (`LayoutCache`): a write sent through one of them
    right after the delete may still be routed by the old count (accepted, as for a swap)."""
    try:
        if uid not in (await cluster.layouts.current()).node_shards:
            return
        await cluster.layouts.change(lambda now: now.with_node_shards(uid, None))
    except StoreError as error:
        logger.warning("index %s deleted, but its shard count stays in the index layouts "
                       "(%s): an index created under that name keeps it", uid, error)


# ---- settings ---------------------------------------------------------------------------------


async def update_settings(cluster: Cluster, uid: str, patch: Mapping[str, Any]) -> Task:
    """Apply a settings patch node by node, restoring every changed node if one fails.

    A 4xx from the first node (an invalid setting) is raised as NodeRejected: nothing changed.
    Searches read the settings again once it returns (the merge and the node query depend on
    them: a new custom ranking rule needs rule-by-rule details).
    """
    try:
        async with holding_settings_lease(cluster, uid):
            return await _update_settings(cluster, uid, patch)
    finally:
        await cluster.catalog.changed(uid, same_primary_key=True)


async def _update_settings(cluster: Cluster, uid: str, patch: Mapping[str, Any]) -> Task:
    details = dict(patch)
    sent = protect_settings_patch(patch)
    if await index_exists(cluster, uid) is None:
        # Meilisearch creates a missing index on a settings update, within the settings task.
        creation_error, _ = await create_index_everywhere(cluster, uid, None)
        if creation_error is not None:
            return await record_finished_task(
                cluster, "settingsUpdate", uid, details, error=creation_error
            )
    version = await cluster.store.allocate_settings_version(uid)
    previous: dict[str, Any] = {}
    applied: list[str] = []
    node_tasks: dict[str, NodeTask] = {}
    error: dict[str, Any] | None = None
    nodes = sorted(cluster.all_nodes())
    for node in nodes:
        before = await cluster.call(node, "GET", f"/indexes/{uid}/settings")
        if not (isinstance(before, NodeResponse) and before.ok):
            error = _failure(node, "read its settings")
            break
        result = await cluster.call(node, "PATCH", f"/indexes/{uid}/settings", sent)
        if isinstance(result, NodeResponse) and 400 <= result.status < 500 and not applied:
            raise NodeRejected(result)
        node_uid = task_uid_of(result)
        if node_uid is None:
            error = result.json() if isinstance(result, NodeResponse) and _is_error_body(result) \
                else _failure(node, "accept the settings")
            break
        view = (await cluster.wait_for_node_tasks({node: node_uid})).get(node)
        status = (view or {}).get("status", "enqueued")
        node_tasks[node] = NodeTask(node_uid, status, (view or {}).get("error"))
        if status != "succeeded":
            error = (view or {}).get("error") or _failure(node, "apply the settings in time")
            # A node that timed out may still apply the change later: restore it too.
            applied.append(node)
            previous[node] = before.json()
            break
        applied.append(node)
        previous[node] = before.json()
    if error is None:
        # Phase two: most nodes read back holding the same settings, or the change fails. A
        # minority that holds something else (edited behind Miroir's back) lags: no reads of
        # the index reach it until the reconciler repairs it.
        committed, lagging = await settings_sync.commit(cluster, uid, version, nodes,
                                                        succeeded=True, patched=sent)
        if committed is None:
            error = _failure(lagging[0] if lagging else nodes[0],
                             "hold the same settings as most nodes when read back")
        elif (await mirror_settings(cluster, uid, sent)).failed:
            # A reshard's required mirror: the reshard's verification compares settings too,
            # and repairs the mirror from this index's committed settings.
            error = _failure(nodes[0], "apply the settings to the index's new layout")
    if error is not None:
        await _restore(cluster, uid, applied, previous)
        # The rollback is committed as this version: a node it could not reach lags behind it
        # and serves no reads of the index until the reconciler repairs it.
        await settings_sync.commit(cluster, uid, version, nodes, succeeded=False)
        return await record_finished_task(
            cluster, "settingsUpdate", uid, details, error=error, node_tasks=node_tasks
        )
    return await record_finished_task(cluster, "settingsUpdate", uid, details, node_tasks=node_tasks)


async def _restore(
    cluster: Cluster, uid: str, applied: list[str], previous: Mapping[str, Any]
) -> None:
    for node in reversed(applied):
        result = await cluster.call(node, "PATCH", f"/indexes/{uid}/settings", previous[node])
        node_uid = task_uid_of(result)
        if node_uid is not None:
            await cluster.wait_for_node_tasks({node: node_uid})


def _failure(node: str, what: str) -> dict[str, str]:
    return error_body("miroir_node_unavailable", f"Node `{node}` did not {what}.")


# ---- plain broadcasts -------------------------------------------------------------------------


async def broadcast_write(
    cluster: Cluster,
    method: str,
    path: str,
    body: Any,
    task_type: str,
    index_uid: str | None,
    details: Mapping[str, Any] | None,
    custom_metadata: str | None = None,
) -> Task:
    """Send one write to every node that takes writes and record the task the poller follows.

    When a node refuses it outright (4xx) and none accepted it, that refusal is raised as
    NodeRejected, so the client sees exactly what one Meilisearch would have said.
    """
    results = await cluster.fan_out(cluster.writable_nodes(), method, path, body)
    if not any(task_uid_of(r) is not None for r in results.values()):
        rejection = first_rejection(results)
        if rejection is not None:
            raise NodeRejected(rejection)
    elif index_uid is not None:  # a reshard's mirror (documents deletes only)
        mirrored = await mirror_broadcast(cluster, index_uid, method, path, body)
        if mirrored.failed:
            raise MeiliError("miroir_no_quorum", f"Index `{index_uid}` is being resharded and "
                             "the write could not reach its new layout; it was not "
                             "acknowledged, send it again.")
    return await record_task(
        cluster, task_type, index_uid, results, details, custom_metadata=custom_metadata
    )
