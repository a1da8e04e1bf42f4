"""Swapping indexes and keeping aliases: changes of the index layouts, checked against the nodes.

Theory of operation. A swap, a rename and an alias change move no document: each is one
compare-and-set of the layouts record (`cluster.layouts`, `miroir.core.index_layout`), so every
node keeps answering for the node-side index it holds and no moment exists where some nodes
answer with the old index and others with the new. Before the write, the nodes are asked
whether the node-side indexes involved exist (a swap of a missing index fails like
Meilisearch's); the write itself re-checks that no other change moved those uids meanwhile,
and starts over if one did. `POST /swap-indexes` answers with a Miroir task recorded as already
finished (`indexSwap`, `details.swaps`), since the change is complete once the record is
stored; every process routes by it within `LayoutCache.check_interval_s`.

Must never: copy documents, or change the record without the compare-and-set.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from miroir.cluster.indexes import index_exists
from miroir.cluster.runtime import Cluster
from miroir.cluster.tasks import record_finished_task
from miroir.core.errors import MeiliError
from miroir.core.index_layout import Layouts
from miroir.core.tasks import Task

_ATTEMPTS = 5  # a swap re-checked this many times while other changes keep winning the race


@attrs.frozen
class Swap:
    """One item of a swap request: two client uids; `rename`: the first takes the second's
    name (which must not exist) instead of exchanging."""

    first: str
    second: str
    rename: bool = False


class _Moved(Exception):
    """Another change moved a uid this one checked: check again."""


async def swap_indexes(cluster: Cluster, swaps: Sequence[Swap]) -> Task:
    """Carry out a checked swap request (each uid once) as one layouts change; the task that
    tells how it went."""
    details = {"swaps": [{"indexes": [s.first, s.second], "rename": s.rename} for s in swaps]}
    error = await _flip(cluster, swaps)
    return await record_finished_task(
        cluster, "indexSwap", None, details,
        error=None if error is None else error.body(),
    )


async def rename_index(cluster: Cluster, uid: str, new_uid: str) -> Task:
    """`PATCH /indexes/{uid}` with a new uid, as a layouts change (the node-side index keeps
    its name): an `indexUpdate` task, failed like Meilisearch's when `uid` is missing or
    `new_uid` exists."""
    before = (await cluster.layouts.refresh()).node_index(uid)
    error = await _flip(cluster, [Swap(uid, new_uid, rename=True)])
    details = {"primaryKey": None, "oldIndexUid": uid, "newIndexUid": new_uid}
    return await record_finished_task(
        cluster, "indexUpdate", before or uid, details,
        error=None if error is None else error.body(), shown_as=uid,
    )


async def _flip(cluster: Cluster, swaps: Sequence[Swap]) -> MeiliError | None:
    """Check `swaps` against the nodes and store them as one layouts change; why not, or None."""
    error: MeiliError | None = None
    for _ in range(_ATTEMPTS):
        layouts = await cluster.layouts.refresh()
        checked = {uid: layouts.node_index(uid) for s in swaps for uid in (s.first, s.second)}
        error = await _refusal(cluster, swaps, checked)
        if error is not None:
            break

        def swapped(now: Layouts, checked: dict[str, str | None] = checked) -> Layouts:
            if any(now.node_index(uid) != name for uid, name in checked.items()):
                raise _Moved
            for swap in swaps:
                now = (now.renamed(swap.first, swap.second) if swap.rename
                       else now.swapped([(swap.first, swap.second)]))
            return now

        try:
            await cluster.layouts.change(swapped)
            break
        except _Moved:
            continue
    else:
        error = MeiliError("miroir_store_unavailable",
                           "The index layouts kept changing during the swap; try again.")
    return error


async def _refusal(
    cluster: Cluster, swaps: Sequence[Swap], names: dict[str, str | None]
) -> MeiliError | None:
    """Why the swap cannot be done, as Meilisearch words it, or None."""
    exists = {uid: name is not None and await index_exists(cluster, name) is not None
              for uid, name in names.items()}
    missing = [uid for s in swaps for uid in ((s.first,) if s.rename else (s.first, s.second))
               if not exists[uid]]
    if len(missing) == 1:
        return MeiliError("index_not_found", f"Index `{missing[0]}` not found.")
    if missing:
        listed = ", ".join(f"`{uid}`" for uid in missing)
        return MeiliError("index_not_found", f"Indexes {listed} not found.")
    for swap in swaps:
        if swap.rename and exists[swap.second]:
            return MeiliError(
                "index_already_exists",
                f"Cannot rename `{swap.first}` to `{swap.second}` as the index already exists. "
                f"Hint: You can remove `{swap.second}` first and then do your remove.")
    return None


# ---- aliases: the admin view of the layouts record


def alias_view(cluster: Cluster, layouts: Layouts, alias: str) -> dict[str, Any]:
    entry = layouts.entries[alias]
    # A uid naming no data has no shard count (it is reserved: renamed away, or the name of
    # another uid's node-side index, such as a reshard's new layout).
    return {"alias": alias, "index": entry.node_index,
            "shards": (None if entry.node_index is None
                       else layouts.shards_of(entry.node_index, cluster.topology.shards))}


async def list_aliases(cluster: Cluster) -> dict[str, Any]:
    layouts = await cluster.layouts.refresh()
    results = [alias_view(cluster, layouts, alias) for alias in layouts.entries]
    return {"results": results, "total": len(results)}


async def get_alias(cluster: Cluster, alias: str) -> dict[str, Any]:
    layouts = await cluster.layouts.refresh()
    if alias not in layouts.entries:
        raise _alias_not_found(alias)
    return alias_view(cluster, layouts, alias)


async def put_alias(cluster: Cluster, alias: str, node_index: str) -> dict[str, Any]:
    """`alias` names the node-side index `node_index` from now on (which must exist); the uid
    that named it before names nothing."""
    if await index_exists(cluster, node_index) is None:
        raise MeiliError("miroir_node_index_not_found",
                         f"No node holds an index named `{node_index}`.")
    layouts = await cluster.layouts.change(lambda now: now.with_alias(alias, node_index))
    if alias not in layouts.entries:  # an alias to its own name is the default: no entry
        return {"alias": alias, "index": node_index,
                "shards": layouts.shards_of(node_index, cluster.topology.shards)}
    return alias_view(cluster, layouts, alias)


async def delete_alias(cluster: Cluster, alias: str) -> None:
    def without(now: Layouts) -> Layouts:
        if alias not in now.entries:
            raise _alias_not_found(alias)
        return now.without_alias(alias)

    await cluster.layouts.change(without)


def _alias_not_found(alias: str) -> MeiliError:
    return MeiliError("miroir_alias_not_found", f"Alias `{alias}` not found.")
