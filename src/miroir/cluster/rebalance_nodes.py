"""The migration engine's calls to one node: a write waited for, a queue drained, the index
list, and provisioning a gaining node (`miroir.cluster.rebalance` drives them).

Each either succeeds or raises `MoveIncomplete` (the move pauses and the next pass retries);
none decides anything about the migration. Must never: write settings onto a member that
already serves an index (the settings sync owns those; see `_provision`).
"""

from __future__ import annotations

from typing import Any

from miroir.cluster import settings_sync
from miroir.cluster.broadcast import protect_settings_patch, run_everywhere
from miroir.cluster.runtime import Cluster, task_uid_of
from miroir.core.node_state import NodeState
from miroir.transport.base import NodeResponse

NODE_TASK_TIMEOUT_MS = 60_000


class MoveIncomplete(Exception):
    """A move could not finish this pass (a node did not answer, a compare kept differing)."""



# ---- node helpers ---------------------------------------------------------------------------


async def _node_write(cluster: Cluster, node: str, method: str, path: str, body: Any) -> None:
    """One write on one node, waited for; MoveIncomplete when it was not applied."""
    result = await cluster.call(node, method, path, body)
    node_uid = task_uid_of(result)
    if node_uid is None:
        raise MoveIncomplete(f"{node} refused {method} {path}")
    view = (await cluster.wait_for_node_tasks(
        {node: node_uid}, timeout_ms=NODE_TASK_TIMEOUT_MS)).get(node)
    if (view or {}).get("status") != "succeeded":
        raise MoveIncomplete(f"{node} did not apply {method} {path}")


async def _drain_queue(cluster: Cluster, node: str) -> None:
    """Wait until `node` processed every task enqueued so far (Meilisearch processes in uid
    order, so waiting for the newest is waiting for all)."""
    result = await cluster.call(node, "GET", "/tasks?limit=1")
    if not (isinstance(result, NodeResponse) and result.ok):
        raise MoveIncomplete(f"{node} did not list its tasks")
    newest = (result.json().get("results") or [{}])[0].get("uid")
    if isinstance(newest, int):
        view = (await cluster.wait_for_node_tasks(
            {node: newest}, timeout_ms=NODE_TASK_TIMEOUT_MS)).get(node)
        if view is None:
            raise MoveIncomplete(f"{node} did not finish task {newest}")


async def _indexes(cluster: Cluster, readers: list[str]) -> list[dict[str, Any]]:
    """The union (by uid, first answer wins) of every answering reader's indexes. One reader
    that lost its state unnoticed (wiped between two health probes) lists too few: trusting it
    alone would skip copying the indexes it lacks, and the cutover would then delete their only
    copies on the old owners."""
    by_uid: dict[str, dict[str, Any]] = {}
    answered = False
    for node in readers:
        result = await cluster.call(node, "GET", "/indexes?limit=10000")
        if isinstance(result, NodeResponse) and result.ok:
            answered = True
            for index in result.json()["results"]:
                by_uid.setdefault(index["uid"], index)
    if not answered:
        raise MoveIncomplete("no serving node listed the indexes")
    return sorted(by_uid.values(), key=lambda i: i["uid"])


async def _provision(cluster: Cluster, node: str, readers: list[str],
                     indexes: list[dict[str, Any]]) -> None:
    """Every index on `node`, with the cluster's primary key and settings (a joining node, or
    one that lacks the index)."""
    for index in indexes:
        uid = index["uid"]
        present = await cluster.call(node, "GET", f"/indexes/{uid}")
        if isinstance(present, NodeResponse) and present.ok and \
                cluster.state_of(node) is not NodeState.JOINING:
            # A member that already serves the index (it gains shards in a drain, a forced
            # removal): its settings are the settings sync's; writing the committed ones here
            # could undo a newer change racing this copy.
            continue
        if not (isinstance(present, NodeResponse) and present.ok):
            created, error, _ = await run_everywhere(
                cluster, [node], "POST", "/indexes",
                {"uid": uid, "primaryKey": index.get("primaryKey")})
            if node not in created and (error or {}).get("code") != "index_already_exists":
                raise MoveIncomplete(f"creating {uid} on {node}: {(error or {}).get('message')}")
        # The committed settings when there are some (as the repair worker provisions), so the
        # node can be recorded at their version: a node behind it serves no reads of the index.
        committed = await cluster.store.get_committed_settings(uid)
        settings = committed.settings if committed is not None else None
        for reader in readers if settings is None else ():
            answer = await cluster.call(reader, "GET", f"/indexes/{uid}/settings")
            if isinstance(answer, NodeResponse) and answer.ok:
                settings = answer.json()
                break
        if settings is None:
            raise MoveIncomplete(f"no serving node answered the settings of {uid}")
        applied, error, _ = await run_everywhere(
            cluster, [node], "PATCH", f"/indexes/{uid}/settings", protect_settings_patch(settings))
        if node not in applied:
            raise MoveIncomplete(f"settings of {uid} on {node}: {(error or {}).get('message')}")
        if committed is not None:
            held = await settings_sync.read_node_settings(cluster, node, uid)
            if held is None or settings_sync.settings_digest(held) != \
                    settings_sync.settings_digest(committed.settings):
                raise MoveIncomplete(f"settings of {uid} on {node} differ from the committed ones")
            await cluster.store.record_settings_version(uid, node, committed.version)
            await cluster.catalog.changed(uid, same_primary_key=True)


