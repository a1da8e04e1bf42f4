"""The repair worker: a node that comes back from `failed` is re-provisioned and caught up.

Theory of operation. A node that was `failed` missed every write made meanwhile, and may have
come back empty (a devnode always does; so does a Meilisearch whose disk was replaced). So every
return from `failed` is treated alike, whether the node kept its data or not:

1. `observe` (a `Cluster` state observer) sees the node go `failed` -> `healthy` and at once, in
   the same synchronous call, sends it `rejoin` -> `joining`: it takes writes from then on (so
   nothing written during the repair is missed) but serves no reads and counts toward no quorum.
   No read can reach it between the two events because no `await` separates them.
2. `repair_node` asks every serving node for its indexes (GET /indexes; the union counts, so a
   source that lost its state unnoticed cannot make the node drop an index) and a serving node
   for each one's settings; creates on the returning node what it lacks with the same primary
   key, applies the cluster's settings -- the committed ones (`settings_sync`) when the index
   has some, recording the node at their version once read back; else a serving node's --
   (`_miroir_shard` kept filterable by `broadcast.protect_settings_patch`) and deletes the
   indexes no serving node has.
3. Backfill, per index and per shard the node owns (by the index's own shard count,
   `Cluster.shard_map_for`): once the source finished every task it
   had enqueued (`_settled`: a write still queued there may already be applied on the node),
   the documents are paged from a readable replica of that shard (any group) with POST
   /documents/fetch filtered on `_miroir_shard` and written to the node with the index's
   primary key; then the node's tasks are waited for.
4. Reconcile, because a copy is a snapshot and writes kept arriving: list the shard's ids on the
   node, then on the source. Ids the source has and the node lacks are copied again (offset
   paging can skip a document when a delete shifts the pages). Ids the node has and the source
   does not are deleted on the node, but only among the ids the node held before the backfill
   or that the backfill copied: a document deleted on the source during the backfill may have
   been copied after its delete reached the node, and this is what keeps it from being
   resurrected; a document created during the backfill was never copied, so it is never a
   candidate even when the node applied its write before the source did.
5. When every shard had a source, `caught_up` -> `active`.

A node can also lose its state without ever being marked failed (wiped and restarted between
two probes). A sweep (`sweep_s`, and right after a node heals from `degraded`) rejoins a serving
node whose newest task uid went down (Meilisearch never reuses one) or that has no index of
Miroir's while a peer has, on two looks in a row.

Sources (the rule is `miroir.core.replicas.repair_sources`). A shard's source is a readable
owner in any group; failing that, a draining owner, or a joining owner judged intact: when it
rejoined, its first index had `_miroir_shard` filterable (an index a client write re-created on
a wiped node has not), and it was not judged empty at an earlier rejoin whose repair never
finished.
An intact node needs no copy of a shard nobody else can serve: its own copy is the best one
left, so two returning replicas do not wait for each other. A shard with no source waits (the
node stays `joining`, visible in GET /_miroir/topology, with `fullyCovered` false when no reader
of that shard is left; in the log; in `RepairWorker.waiting`; retried every `retry_s`) while some
other owner is `failed` or not judged yet: it may come back with the data. When every other
owner came back empty too, every copy is gone: the shard is accepted as lost (logged at error
level, `RepairWorker.lost`) rather than block forever the writes that can restore it.

Residual race, accepted: a document copied, then deleted and re-created during the backfill,
whose re-creation the node applied but the source had not yet when the source was listed, is
deleted on this node only; the source keeps it and the next repair of the node restores it.

Must never: change a node's state other than through `Cluster.apply_node_event`, serve reads
from a `joining` node, or raise out of `run` for a node failure (the next round retries).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import trio

from miroir.cluster import settings_sync
from miroir.cluster.broadcast import protect_settings_patch, run_everywhere
from miroir.cluster.runtime import Cluster, task_uid_of
from miroir.core.node_state import NodeEvent, NodeState
from miroir.core.replicas import repair_sources
from miroir.core.routing import SHARD_FIELD
from miroir.store.base import CommittedSettings, StoreError
from miroir.transport.base import NodeResponse

logger = logging.getLogger("miroir.repair")

PAGE_SIZE = 1000
# How often every serving node is looked at for a lost state (two or three small GETs each).
SWEEP_S = 2.0
# How long an unfinished repair (no source yet, a node did not answer) waits before retrying.
RETRY_S = 1.0
# A backfill batch can take a node a while to index; waiting longer than a request is fine here.
NODE_TASK_TIMEOUT_MS = 60_000


class RepairIncomplete(Exception):
    """The repair could not finish this round (no source, a node did not answer): retry later."""


class RepairWorker:
    """Watches node states through `cluster.state_observers` and repairs returning nodes."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        retry_s: float = RETRY_S,
        sweep_s: float = SWEEP_S,
        page_size: int = PAGE_SIZE,
    ):
        self.cluster = cluster
        self.retry_s = retry_s
        self.sweep_s = sweep_s
        # node -> the newest task uid it showed (GET /tasks?limit=1); a node whose newest uid
        # went down lost its task queue, which only a restart with its state lost does.
        self.newest_task_uid: dict[str, int] = {}
        self.page_size = page_size
        self._last_state = {node: cluster.state_of(node) for node in cluster.node_ids()}
        self._wanted: set[str] = set()
        self._suspects: set[str] = set()  # nodes to check for a lost state at once
        self._not_intact_once: set[str] = set()  # found without Miroir's indexes by one look
        # node -> whether it looked intact when it rejoined (see `_looks_intact`): it kept its
        # state, so it is the best copy left of a shard whose every owner is joining.
        self.intact: dict[str, bool] = {}
        # Nodes judged empty whose repair has not finished: what a first attempt provisioned
        # and copied would make such a node look intact on its next rejoin, so it stays empty.
        self.tainted: set[str] = set()
        self._wake: trio.Event | None = None
        # node -> index uid -> shards no readable replica could be found for (last attempt).
        self.waiting: dict[str, dict[str, list[int]]] = {}
        # node -> index uid -> shards whose every copy was lost, accepted when it caught up.
        self.lost: dict[str, dict[str, list[int]]] = {}
        cluster.state_observers.append(self.observe)

    def observe(self, node_id: str, state: NodeState) -> None:
        previous = self._last_state.get(node_id)
        self._last_state[node_id] = state
        if previous is NodeState.FAILED and state is NodeState.HEALTHY:
            self.cluster.apply_node_event(node_id, NodeEvent.REJOIN)
            self.request_repair(node_id)
        elif previous is NodeState.DEGRADED and state is NodeState.HEALTHY:
            # A restart quicker than the unhealthy threshold never reaches `failed`: look now
            # rather than at the next sweep.
            self._suspects.add(node_id)
            if self._wake is not None:
                self._wake.set()

    def request_repair(self, node_id: str) -> None:
        self._wanted.add(node_id)
        self.intact.pop(node_id, None)
        self.newest_task_uid.pop(node_id, None)  # a new baseline once it is back in service
        if self._wake is not None:
            self._wake.set()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Repair every node that asks for it, retrying unfinished ones every `retry_s`, and
        look at every serving node every `sweep_s` for a lost task queue."""
        self._wake = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._sweep_forever)
            task_status.started()
            await self._repair_forever()

    async def _sweep_forever(self) -> None:
        while True:  # the first look at once: it sets the baselines
            self._suspects.update(self.cluster.serving_nodes())
            if self._wake is not None:
                self._wake.set()
            await trio.sleep(self.sweep_s)

    async def _repair_forever(self) -> None:
        assert self._wake is not None
        while True:
            if not self._wanted and not self._suspects:
                await self._wake.wait()
            self._wake = trio.Event()
            for node_id in sorted(self._suspects):
                self._suspects.discard(node_id)
                await self._check_suspect(node_id)
            for node_id in sorted(self._wanted - set(self.intact)):
                await self._judge(node_id)
            for node_id in sorted(self._wanted):
                if self.cluster.state_of(node_id) is not NodeState.JOINING:
                    self._wanted.discard(node_id)  # failed again (it will rejoin) or removed
                    continue
                try:
                    done = await self.repair_node(node_id)
                except Exception:  # a node or store hiccup: the next round retries
                    logger.exception("repair of node %s failed; retrying", node_id)
                    done = False
                if done:
                    self._wanted.discard(node_id)
            if self._wanted:
                with trio.move_on_after(self.retry_s):
                    await self._wake.wait()

    async def _check_suspect(self, node_id: str) -> None:
        """Rejoin a serving node that restarted with its state lost without ever being marked
        failed (a restart quicker than the unhealthy threshold): its newest task uid went down
        since the last look, or its indexes are not Miroir's (`_looks_intact`) while a serving
        peer has indexes. Until a look notices, it serves what it has: at most one sweep
        interval, or one round trip after a probe failure."""
        cluster = self.cluster
        if node_id not in cluster.serving_nodes():
            return
        newest = await _newest_task_uid(cluster, node_id)
        if newest is None or node_id not in cluster.serving_nodes():
            return
        known = self.newest_task_uid.get(node_id)
        self.newest_task_uid[node_id] = newest
        looks = None
        if known is not None and newest < known:
            why = f"its newest task is {newest}, was {known}"
        elif (looks := await _looks_intact(cluster, node_id)) is False \
                and await _a_peer_looks_intact(cluster, node_id):
            # Seen twice in a row, a sweep apart: an index being created is briefly "not
            # Miroir's" (created, `_miroir_shard` not filterable yet) on some nodes.
            if node_id not in self._not_intact_once:
                self._not_intact_once.add(node_id)
                return
            why = "it has no index of Miroir's and a peer has"
        else:
            if looks is True:
                self._not_intact_once.discard(node_id)
            return
        self._not_intact_once.discard(node_id)
        if node_id in cluster.serving_nodes():
            logger.warning("node %s lost its state (%s): repairing", node_id, why)
            cluster.apply_node_event(node_id, NodeEvent.REJOIN)
            self.request_repair(node_id)
            self.intact[node_id] = False

    async def _judge(self, node_id: str) -> None:
        """Decide once per rejoin, before any repair step touches it, whether the node kept its
        state. A node that does not answer stays unjudged (asked again on the next attempt), and
        shards it could be the source of wait meanwhile."""
        if node_id in self.tainted:
            self.intact[node_id] = False
            return
        looks = await _looks_intact(self.cluster, node_id)
        if looks is not None:
            self.intact[node_id] = looks

    def _everyone_came_back_empty(self) -> bool:
        """Every node of the cluster is joining and judged empty: nothing is left to copy."""
        return all(
            self.cluster.state_of(n) is NodeState.JOINING and self.intact.get(n) is False
            for n in self.cluster.all_nodes()
        )

    async def repair_node(self, node_id: str) -> bool:
        """One attempt: re-provision, backfill, reconcile; `caught_up` if every shard had a
        source. Returns whether the node is caught up."""
        cluster = self.cluster
        for joining in cluster.node_ids():  # every joining node, so sources are known
            if joining not in self.intact and cluster.state_of(joining) is NodeState.JOINING:
                await self._judge(joining)
        if node_id not in self.intact:
            return False  # it did not answer: judged on the next attempt
        if not self.intact[node_id]:
            self.tainted.add(node_id)
        fallbacks = [n for n, kept in sorted(self.intact.items())
                     if kept and cluster.state_of(n) is NodeState.JOINING]
        sources = (
            [n for n in cluster.serving_nodes() if n != node_id]
            or [n for n in fallbacks if n != node_id]
            # Nobody else: its own copy is the best left, or nothing is left anywhere (its own
            # index list is then all there is to go by, and every shard is lost).
            or ([node_id] if self.intact[node_id] or self._everyone_came_back_empty() else [])
        )
        try:
            if not sources:
                raise RepairIncomplete("no serving or intact node to copy the indexes from")
            indexes = await _cluster_indexes(cluster, sources)
            if sources != [node_id]:
                await _provision(cluster, node_id, sources, indexes)
            waiting: dict[str, list[int]] = {}
            for index in indexes:
                waits, lost = await _backfill(
                    cluster, node_id, index["uid"], index.get("primaryKey"), self.page_size,
                    self.intact,
                )
                if waits:
                    waiting[index["uid"]] = waits
                if lost:
                    self.lost.setdefault(node_id, {})[index["uid"]] = lost
                    logger.error("index %s shards %s: every copy is gone (no owner kept its "
                                 "state); node %s serves them empty", index["uid"], lost, node_id)
        except RepairIncomplete as why:
            logger.warning("repair of node %s incomplete: %s", node_id, why)
            return False
        if waiting:
            self.waiting[node_id] = waiting
            logger.warning("node %s stays joining: no readable replica for %s", node_id, waiting)
            return False
        self.waiting.pop(node_id, None)
        self.tainted.discard(node_id)
        if cluster.state_of(node_id) is not NodeState.JOINING:
            return True  # failed during the repair: it rejoins, and is repaired, when back
        cluster.apply_node_event(node_id, NodeEvent.CAUGHT_UP)
        logger.info("node %s re-provisioned and caught up", node_id)
        return True


# ---- the cluster's indexes onto the node ------------------------------------------------------


async def _read(
    cluster: Cluster, nodes: list[str], method: str, path: str, body: Any = None
) -> Any:
    result = await cluster.first_success(nodes, method, path, body)
    if isinstance(result, NodeResponse) and result.ok:
        return result.json()
    raise RepairIncomplete(f"no serving node answered {method} {path}")


async def _a_peer_looks_intact(cluster: Cluster, node_id: str) -> bool:
    """Whether the first serving peer that answers has an index of Miroir's."""
    for peer in cluster.serving_nodes():
        if peer != node_id and (looks := await _looks_intact(cluster, peer)) is not None:
            return looks
    return False


async def _newest_task_uid(cluster: Cluster, node_id: str) -> int | None:
    """The node's newest task uid (-1 for an empty queue), None when it did not answer.
    Meilisearch never reuses a uid, and deleting tasks enqueues a newer one, so this number only
    goes down when the queue itself was lost."""
    result = await cluster.call(node_id, "GET", "/tasks?limit=1")
    if not (isinstance(result, NodeResponse) and result.ok):
        return None
    results = result.json().get("results") or []
    uid = results[0].get("uid") if results else -1
    return uid if isinstance(uid, int) else None


async def _looks_intact(cluster: Cluster, node_id: str) -> bool | None:
    """Whether the node has an index that Miroir provisioned: its first index exists and has
    `_miroir_shard` filterable. An index a document write re-created on a wiped node (Meilisearch
    creates a missing index on a write) has not, so that node is not taken for intact. None when
    the node did not answer."""
    listed = await cluster.call(node_id, "GET", "/indexes?limit=1")
    if not (isinstance(listed, NodeResponse) and listed.ok):
        return None
    if not listed.json().get("results"):
        return False
    uid = listed.json()["results"][0]["uid"]
    settings = await cluster.call(node_id, "GET", f"/indexes/{uid}/settings")
    if not (isinstance(settings, NodeResponse) and settings.ok):
        return None
    filterable = settings.json().get("filterableAttributes")
    return isinstance(filterable, list) and protect_settings_patch(
        {"filterableAttributes": filterable})["filterableAttributes"] is filterable


async def _cluster_indexes(cluster: Cluster, sources: list[str]) -> list[dict[str, Any]]:
    """The union (by uid, first answer wins) of every answering source's indexes. A source that
    lost its state unnoticed lists too few; the union keeps that from deleting the node's."""
    by_uid: dict[str, dict[str, Any]] = {}
    answered = False
    for source in sources:
        try:
            listed = await _list_indexes(cluster, [source])
        except RepairIncomplete:
            continue
        answered = True
        for index in listed:
            by_uid.setdefault(index["uid"], index)
    if not answered:
        raise RepairIncomplete("no source answered GET /indexes")
    return sorted(by_uid.values(), key=lambda index: index["uid"])


async def _list_indexes(cluster: Cluster, sources: list[str]) -> list[dict[str, Any]]:
    indexes: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = await _read(cluster, sources, "GET", f"/indexes?offset={offset}&limit={PAGE_SIZE}")
        indexes.extend(page["results"])
        offset += PAGE_SIZE
        if offset >= page["total"]:
            return indexes


async def _provision(
    cluster: Cluster, node_id: str, sources: list[str], indexes: list[dict[str, Any]]
) -> None:
    """Create the missing indexes on the node, apply the cluster's settings to every index,
    and delete the indexes the cluster no longer has."""
    present = {index["uid"]: index for index in await _list_indexes(cluster, [node_id])}
    wanted = {index["uid"] for index in indexes}
    for uid in sorted(set(present) - wanted):
        await _step(cluster, node_id, "DELETE", f"/indexes/{uid}", None)
    for index in indexes:
        uid = index["uid"]
        if uid not in present:
            # A write may re-create the index on the node meanwhile: that is as good.
            await _step(cluster, node_id, "POST", "/indexes",
                        {"uid": uid, "primaryKey": index.get("primaryKey")},
                        tolerated="index_already_exists")
        elif present[uid].get("primaryKey") is None and index.get("primaryKey") is not None:
            await _step(cluster, node_id, "PATCH", f"/indexes/{uid}",
                        {"primaryKey": index["primaryKey"]})
        await _provision_settings(cluster, node_id, sources, uid)


# How often the settings of one index are applied to a returning node while settings changes
# keep committing under it, before the repair gives up (and retries on its next round).
SETTINGS_ATTEMPTS = 5


async def _provision_settings(
    cluster: Cluster, node_id: str, sources: list[str], uid: str
) -> None:
    """Apply the cluster's settings of `uid` to the node: the committed ones when there are some
    (a source's own settings may have been changed behind Miroir's back, and copying them would
    spread the drift), else a serving node's.

    A client's settings change runs meanwhile and reaches this node too (it takes writes). If
    it commits between our read of the committed settings and our PATCH landing, our PATCH
    would put the older settings back on a node the commit recorded at the newer version: a
    node readable for the index that refuses its filters (the simulator's seed 5 on 3n-rf2).
    So the committed version is read again after our PATCH, and a newer one is applied in
    turn. A change that commits after that read read the node back itself."""
    for _ in range(SETTINGS_ATTEMPTS):
        committed = await _committed_settings(cluster, uid)
        settings = committed.settings if committed is not None else await _read(
            cluster, sources, "GET", f"/indexes/{uid}/settings")
        await _step(cluster, node_id, "PATCH", f"/indexes/{uid}/settings",
                    protect_settings_patch(settings))
        now = await _committed_settings(cluster, uid)
        if _version(now) != _version(committed):
            continue  # a change committed while ours was on its way: apply that one
        if committed is not None:
            held = await settings_sync.read_node_settings(cluster, node_id, uid)
            if held is not None and settings_sync.settings_digest(held) == \
                    settings_sync.settings_digest(committed.settings):
                await cluster.store.record_settings_version(uid, node_id, committed.version)
                await cluster.catalog.changed(uid, same_primary_key=True)
        return
    raise RepairIncomplete(f"the settings of {uid} kept changing while {node_id} was provisioned")


def _version(committed: CommittedSettings | None) -> int:
    return 0 if committed is None else committed.version


async def _committed_settings(cluster: Cluster, uid: str) -> CommittedSettings | None:
    try:
        return await cluster.store.get_committed_settings(uid)
    except StoreError as error:
        raise RepairIncomplete(f"committed settings of {uid} unreadable: {error}") from None


async def _step(cluster: Cluster, node_id: str, method: str, path: str, body: Any,
                tolerated: str | None = None) -> None:
    """One write on the node, waited for (broadcast's helper, on one node)."""
    _still_joining(cluster, node_id)
    _, error, _ = await run_everywhere(cluster, [node_id], method, path, body)
    if error is not None and error.get("code") != tolerated:
        raise RepairIncomplete(f"{method} {path} on {node_id}: {error.get('message')}")


# ---- documents ----------------------------------------------------------------------------------


def _shard_filter(shards: Iterable[int]) -> str:
    return f"{SHARD_FIELD} IN [{', '.join(str(s) for s in sorted(shards))}]"


async def _fetch_pages(
    cluster: Cluster, node_id: str, uid: str, body: Mapping[str, Any], page_size: int
) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    offset = 0
    while True:
        result = await cluster.call(
            node_id, "POST", f"/indexes/{uid}/documents/fetch",
            {**body, "offset": offset, "limit": page_size},
        )
        if not (isinstance(result, NodeResponse) and result.ok):
            raise RepairIncomplete(f"{node_id} did not answer a documents fetch on {uid}")
        page = result.json()
        documents.extend(page["results"])
        offset += page_size
        if offset >= page["total"] or not page["results"]:
            return documents


async def _ids(cluster: Cluster, node_id: str, uid: str, pk: str, shards: list[int],
               page_size: int) -> set[Any]:
    docs = await _fetch_pages(
        cluster, node_id, uid, {"filter": _shard_filter(shards), "fields": [pk]}, page_size
    )
    return {doc[pk] for doc in docs if pk in doc}


def _still_joining(cluster: Cluster, node_id: str) -> None:
    """A node that failed (or was removed) mid-repair gets no more repair writes: it rejoins,
    and is repaired from the start, when it is back."""
    if cluster.state_of(node_id) is not NodeState.JOINING:
        raise RepairIncomplete(f"{node_id} left joining during its repair")


async def _write(cluster: Cluster, node_id: str, method: str, path: str, body: Any) -> None:
    _still_joining(cluster, node_id)
    result = await cluster.call(node_id, method, path, body)
    node_uid = task_uid_of(result)
    if node_uid is None:
        raise RepairIncomplete(f"{node_id} refused {method} {path}")
    view = (await cluster.wait_for_node_tasks(
        {node_id: node_uid}, timeout_ms=NODE_TASK_TIMEOUT_MS
    )).get(node_id)
    if (view or {}).get("status") != "succeeded":
        raise RepairIncomplete(f"{node_id} did not apply {method} {path}: {view}")


async def _settled(cluster: Cluster, source: str) -> None:
    """Wait until the source finished every task it had enqueued (tasks run in uid order, so
    its newest one). A write both owners acknowledged may still wait in a slow source's queue
    while the returning node, which kept its data, already applied it: a snapshot taken
    before the source caught up would copy the older version over the node's newer one
    (found by the issue #19 sweep, seed 104 on 3n-rf2)."""
    newest = await _newest_task_uid(cluster, source)
    if newest is None:
        raise RepairIncomplete(f"source {source} did not show its tasks")
    if newest < 0:
        return
    view = (await cluster.wait_for_node_tasks(
        {source: newest}, timeout_ms=NODE_TASK_TIMEOUT_MS)).get(source)
    if view is None:
        raise RepairIncomplete(f"source {source} did not finish its task {newest} in time")


async def _copy(cluster: Cluster, source: str, node_id: str, uid: str, pk: str,
                body: Mapping[str, Any], page_size: int) -> set[Any]:
    """Copy the documents `body` selects from `source` to the node; returns their ids."""
    copied: set[Any] = set()
    # With their embeddings (`{embeddings, regenerate}` as the source shows them), so the copy
    # is not re-embedded and a userProvided embedder's vectors are not lost.
    documents = await _fetch_pages(
        cluster, source, uid, {**body, "retrieveVectors": True}, page_size
    )
    for document in documents:
        # No embedders: the source shows `_vectors: {}`, which the document never held.
        if document.get("_vectors") == {}:
            del document["_vectors"]
    for start in range(0, len(documents), page_size):
        batch = documents[start:start + page_size]
        await _write(cluster, node_id, "POST", f"/indexes/{uid}/documents?primaryKey={pk}",
                     batch)
        copied.update(doc[pk] for doc in batch if pk in doc)
    return copied


async def _backfill(
    cluster: Cluster, node_id: str, uid: str, pk: str | None, page_size: int,
    intact: Mapping[str, bool],
) -> tuple[list[int], list[int]]:
    """Copy and reconcile every shard of `uid` the node owns; returns the shards left waiting
    for a source and the shards lost (see the module docstring for the order and why)."""
    if pk is None:
        return [], []  # no document was ever written to this index: nothing to copy or lose
    # The shards of the index's own shard count (a reshard may have given it its own).
    sources = repair_sources(await cluster.current_shard_map_for(uid), node_id, intact)
    for source, shards in sorted(sources.by_source.items()):
        before = await _ids(cluster, node_id, uid, pk, shards, page_size)
        await _settled(cluster, source)
        copied = await _copy(cluster, source, node_id, uid, pk,
                             {"filter": _shard_filter(shards)}, page_size)
        on_node = await _ids(cluster, node_id, uid, pk, shards, page_size)
        on_source = await _ids(cluster, source, uid, pk, shards, page_size)
        skipped = sorted(str(i) for i in on_source - on_node)
        if skipped:
            await _copy(cluster, source, node_id, uid, pk, {"ids": skipped}, page_size)
        stale = sorted(((before | copied) & on_node) - on_source, key=str)
        for start in range(0, len(stale), page_size):
            await _write(cluster, node_id, "POST", f"/indexes/{uid}/documents/delete-batch",
                         stale[start:start + page_size])
    return sources.waiting, sources.lost
