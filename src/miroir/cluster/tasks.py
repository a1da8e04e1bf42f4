"""Miroir tasks over node tasks: recording, refreshing, the poller, cancel and delete.

One client write becomes one Miroir task (uid from the store) holding each node's own task uid.
The status is never guessed here: it is `miroir.core.tasks.apply_node_updates` over what the
nodes report. `refresh_task` asks every node whose task is not finished yet; the poller does that
in the background for every unfinished task and leaves finished ones alone.

When an index deletion or update finishes, the index catalog is told (`catalog.changed`).
Counts in `details` (indexedDocuments, deletedDocuments) are filled in when a task finishes:
each document lives on RG x RF nodes, so the nodes' counts are summed and divided by that.
A task that ends `canceled` gets `canceledBy`: the Miroir cancelation task holding the node
task that canceled it.

Must never: render HTTP, or decide a status itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from miroir.cluster.idempotency import take_reserved_task_uid
from miroir.cluster.runtime import Cluster, task_uid_of
from miroir.core.node_state import NodeState
from miroir.core.tasks import (
    CANCELED,
    ENQUEUED,
    FAILED,
    FINISHED_STATUSES,
    PROCESSING,
    SUCCEEDED,
    NodeTask,
    Task,
    TaskQuery,
    apply_node_updates,
    indexes_changed_by,
    with_lost_parts,
)
from miroir.transport.base import NodeResponse, NodeResult

logger = logging.getLogger("miroir.tasks")
_ALL = 2**32 - 1
# details keys that count documents, and so must be divided by the number of copies.
_COUNT_KEYS = ("indexedDocuments", "deletedDocuments")


async def record_task(
    cluster: Cluster,
    task_type: str,
    index_uid: str | None,
    node_results: Mapping[str, NodeResult],
    details: Mapping[str, Any] | None = None,
    missed_quorum: tuple[tuple[int, int], ...] = (),
    custom_metadata: str | None = None,
) -> Task:
    """Store a new Miroir task for a write the nodes answered; the poller takes it from here."""
    task = attrs.evolve(
        await _new_task(cluster, task_type, index_uid, details, custom_metadata),
        node_tasks={node: NodeTask(task_uid_of(result)) for node, result in node_results.items()},
        missed_quorum=missed_quorum,
    )
    task = apply_node_updates(task, {}, task.enqueued_at)
    await cluster.store.put_task(task)
    return task


async def record_finished_task(
    cluster: Cluster,
    task_type: str,
    index_uid: str | None,
    details: Mapping[str, Any] | None,
    error: Mapping[str, Any] | None = None,
    node_tasks: Mapping[str, NodeTask] | None = None,
    custom_metadata: str | None = None,
    shown_as: str | None = None,
) -> Task:
    """Store a task the proxy already carried out (index creation, settings) or refused
    (a bad batch): it is `failed` with `error`, or `succeeded`. `shown_as`: the client uid the
    task names, when the layouts no longer map `index_uid` to it (a rename just moved it)."""
    task = await _new_task(cluster, task_type, index_uid, details, custom_metadata)
    if shown_as is not None:
        task = attrs.evolve(task, index_uid=shown_as,
                            node_index=None if shown_as == index_uid else index_uid)
    task = client_error(attrs.evolve(
        task,
        status=FAILED if error is not None else SUCCEEDED,
        error=None if error is None else dict(error),
        started_at=task.enqueued_at,
        finished_at=task.enqueued_at,
        node_tasks=dict(node_tasks or {}),
    ))
    await cluster.store.put_task(task)
    task_finished(cluster, task)
    return task


def task_finished(cluster: Cluster, task: Task) -> None:
    """Tell this process's listeners (the webhook delivery) that `task` is final. Listeners
    only queue it: nothing here may block or fail the request that finished the task."""
    for listener in cluster.task_finished_listeners:
        try:
            listener(task)
        except Exception:
            logger.exception("a task-finished listener failed for task %s", task.uid)


async def _new_task(
    cluster: Cluster, task_type: str, index_uid: str | None, details: Mapping[str, Any] | None,
    custom_metadata: str | None = None,
) -> Task:
    """An enqueued task with a fresh uid, enqueued now (read after the uid: the store may block).

    The uid is the one an `Idempotency-Key` claim reserved for this request, if any (the key
    already names it; `miroir.cluster.idempotency`). Not stored yet; `details` is copied so the
    caller's dict may change afterwards.
    """
    uid = take_reserved_task_uid()
    if uid is None:
        uid = await cluster.store.allocate_task_uid()
    # Cluster paths name the node-side index; the task shows the client's uid for it.
    client_uid = None if index_uid is None else cluster.layouts.client_uid(index_uid)
    return Task(
        uid=uid, type=task_type, enqueued_at=cluster.now_ms(),
        index_uid=index_uid if client_uid is None else client_uid,
        node_index=None if client_uid in (None, index_uid) else index_uid,
        details=None if details is None else dict(details), custom_metadata=custom_metadata,
    )


def client_error(task: Task) -> Task:
    """`task` with its error's message speaking of the client's uid, not the node-side index."""
    if task.error is None or task.node_index is None or task.index_uid is None:
        return task
    message = task.error.get("message")
    if not isinstance(message, str):
        return task
    told = message.replace(f"`{task.node_index}`", f"`{task.index_uid}`")
    return task if told == message else attrs.evolve(task, error={**task.error, "message": told})


def _node_task_from_view(uid: int, view: Mapping[str, Any]) -> NodeTask | None:
    status = view.get("status")
    if status not in (ENQUEUED, PROCESSING, *FINISHED_STATUSES):
        return None
    return NodeTask(uid, status, view.get("error"))


async def refresh_task(cluster: Cluster, uid: int) -> Task | None:
    """The task after asking every node whose part is unfinished; None if there is no task."""
    task = await cluster.store.get_task(uid)
    if task is None or task.is_finished:
        return task
    pending = {
        node: nt.task_uid
        for node, nt in task.node_tasks.items()
        if nt.task_uid is not None and nt.status not in FINISHED_STATUSES
    }
    if not pending:
        return task
    # A node that left the cluster (force-removed, or drained and forgotten) is never asked
    # again: its unfinished part counts as lost (`with_lost_parts`), or the task would wait
    # for it forever.
    members = set(cluster.node_ids())
    lost: list[str] = [n for n in pending
                       if n not in members or cluster.state_of(n) is NodeState.REMOVED]
    for node in lost:
        del pending[node]
    results = await cluster.fan_out(pending, "GET", lambda node: f"/tasks/{pending[node]}") \
        if pending else {}
    updates: dict[str, NodeTask] = {}
    final_views: dict[str, tuple[int, Mapping[str, Any]]] = {}
    for node, result in results.items():
        if isinstance(result, NodeResponse) and result.ok:
            view = result.json()
            if "indexUid" in view and view["indexUid"] != (task.node_index or task.index_uid):
                # The node restarted empty and its uid now names another index's task.
                lost.append(node)
                continue
            update = _node_task_from_view(pending[node], view)
            if update is not None:
                updates[node] = update
                if update.status in FINISHED_STATUSES:
                    final_views[node] = (pending[node], view)
        elif _task_not_found(result):
            lost.append(node)
    if not updates and not lost:
        return task
    now = cluster.now_ms()
    # The placement of the task's index: its own shard count (the poller runs outside any
    # request, so the layouts are brought up to date first).
    node_index = task.node_index or task.index_uid
    shard_map = (cluster.shard_map if node_index is None
                 else await cluster.current_shard_map_for(node_index))
    finished_here = False

    def observe(current: Task) -> Task:
        # The store may run this again after a racing writer; the last run is what it stored,
        # so exactly one process (this one, if set) made the task final.
        nonlocal finished_here
        changed = client_error(apply_node_updates(
            with_lost_parts(current, lost, shard_map.shards_of, shard_map.all_owners), updates,
            now,
        ))
        finished_here = changed.is_finished and not current.is_finished
        return changed

    task = await cluster.store.modify_task(uid, observe)
    if task is not None and task.is_finished:
        task = await _on_finish(cluster, task, final_views)
        if finished_here:
            task_finished(cluster, task)
        for index_uid in indexes_changed_by(task):
            # Any process may have re-read the index from a node that had not applied the
            # change yet: the catalog is invalidated again now that every node has.
            await cluster.catalog.changed(
                task.node_index if index_uid == task.index_uid and task.node_index else index_uid)
    return task


# A node that restarted with its state lost answers 404 task_not_found for the task uid it gave
# us (or that uid now names another index's task): `core.tasks.with_lost_parts` decides how that
# part counts.


def _task_not_found(result: NodeResult) -> bool:
    if not (isinstance(result, NodeResponse) and result.status == 404):
        return False
    try:
        return result.json().get("code") == "task_not_found"
    except Exception:  # noqa: BLE001 - a non-JSON 404 page is not Meilisearch's answer
        return False


async def _on_finish(
    cluster: Cluster,
    task: Task,
    final_views: Mapping[str, tuple[int, Mapping[str, Any]]] = {},  # read only
) -> Task:
    """Complete what the node tasks only tell at the end, from every node's final view: the
    document counts in `details`, and `canceledBy` (the Miroir cancelation task that holds the
    node's canceling task).

    `final_views` are views of finished node tasks the caller has just read, keyed by node
    with the node task uid they are for. A finished node task never changes, so those nodes are
    not asked again: usually the refresh that saw a task finish read every part of it, and
    the write then costs no further round of GET /tasks/{uid}."""
    counts = task.details is not None and any(key in task.details for key in _COUNT_KEYS)
    canceled = task.status == CANCELED and task.canceled_by is None
    if not counts and not canceled:
        return task
    acked = {n: nt.task_uid for n, nt in task.node_tasks.items() if nt.task_uid is not None}
    known = {node: final_views[node][1] for node, uid in acked.items()
             if node in final_views and final_views[node][0] == uid}
    unknown = {node: uid for node, uid in acked.items() if node not in known}
    results = await cluster.fan_out(unknown, "GET", lambda node: f"/tasks/{unknown[node]}")
    views = {
        node: known[node] if node in known else results[node].json()
        for node in acked
        if node in known or (isinstance(results[node], NodeResponse) and results[node].ok)
    }
    change: dict[str, Any] = {}
    if counts:
        change["details"] = _final_counts(cluster, task, views)
    if canceled:
        change["canceled_by"] = await _canceler(cluster, views)
    finished = await cluster.store.modify_task(task.uid, lambda t: attrs.evolve(t, **change))
    return finished or task


async def _canceler(cluster: Cluster, views: Mapping[str, Mapping[str, Any]]) -> int | None:
    by_node = {
        node: view["canceledBy"] for node, view in views.items()
        if isinstance(view.get("canceledBy"), int)
    }
    if not by_node:
        return None
    page = await cluster.store.list_tasks(
        TaskQuery(types=frozenset({"taskCancelation"}), limit=_ALL)
    )
    for cancelation in page.results:
        for node, node_uid in by_node.items():
            node_task = cancelation.node_tasks.get(node)
            if node_task is not None and node_task.task_uid == node_uid:
                return cancelation.uid
    return None


def _final_counts(
    cluster: Cluster, task: Task, views: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    copies = max(1, cluster.topology.replica_groups * cluster.topology.replication_factor)
    details = dict(task.details)
    for key in _COUNT_KEYS:
        if key not in details:
            continue
        if task.status != SUCCEEDED:
            details[key] = 0
            continue
        total = 0
        for view in views.values():
            value = (view.get("details") or {}).get(key)
            total += value if isinstance(value, int) else 0
        details[key] = round(total / copies)
    return details


async def unfinished_tasks(cluster: Cluster) -> list[Task]:
    page = await cluster.store.list_tasks(
        TaskQuery(statuses=frozenset({ENQUEUED, PROCESSING}), limit=_ALL)
    )
    return list(page.results)


async def poll_tasks_forever(cluster: Cluster, interval_s: float = 0.5) -> None:
    """Keep unfinished tasks fresh: refresh each one every `interval_s`; finished ones are left
    alone because `unfinished_tasks` never returns them."""
    while True:
        try:
            for task in await unfinished_tasks(cluster):
                await refresh_task(cluster, task.uid)
        except Exception:  # a store hiccup must not take the server down
            logger.exception("task poller round failed; retrying in %.1fs", interval_s)
        await trio.sleep(interval_s)


async def matching_tasks(cluster: Cluster, query: TaskQuery) -> list[Task]:
    page = await cluster.store.list_tasks(attrs.evolve(query, limit=_ALL, from_uid=None))
    return list(page.results)


def _node_uids_by_node(tasks: list[Task]) -> dict[str, list[int]]:
    per_node: dict[str, list[int]] = {}
    for task in tasks:
        for node, nt in task.node_tasks.items():
            if nt.task_uid is not None:
                per_node.setdefault(node, []).append(nt.task_uid)
    return per_node


def _uids_query(uids: list[int]) -> str:
    return "uids=" + ",".join(str(u) for u in sorted(uids))


async def cancel_tasks(cluster: Cluster, query: TaskQuery, original_filter: str) -> Task:
    """Cancel the unfinished tasks matching `query` on every node that holds a part of them."""
    matched = [t for t in await matching_tasks(cluster, query) if not t.is_finished]
    per_node = _node_uids_by_node(matched)
    results = await cluster.fan_out(
        per_node, "POST", lambda node: f"/tasks/cancel?{_uids_query(per_node[node])}"
    )
    details = {"matchedTasks": len(matched), "canceledTasks": None, "originalFilter": original_filter}
    if not per_node:
        return await record_finished_task(
            cluster, "taskCancelation", None, {**details, "canceledTasks": 0}
        )
    # The matched tasks turn `canceled` when the poller sees their node tasks canceled.
    return await record_task(cluster, "taskCancelation", None, results, details)


async def delete_tasks(cluster: Cluster, query: TaskQuery, original_filter: str) -> Task:
    """Delete the finished tasks matching `query` from the store and from the nodes."""
    matched = [t for t in await matching_tasks(cluster, query) if t.is_finished]
    per_node = _node_uids_by_node(matched)
    if per_node:
        await cluster.fan_out(
            per_node, "DELETE", lambda node: f"/tasks?{_uids_query(per_node[node])}"
        )
    deleted = await cluster.store.delete_tasks(t.uid for t in matched)
    return await record_finished_task(
        cluster,
        "taskDeletion",
        None,
        {"matchedTasks": len(matched), "deletedTasks": deleted, "originalFilter": original_filter},
    )

