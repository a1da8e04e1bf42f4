"""The migration engine: moves shard replicas between two epochs' placements, online.

On by default (`rebalance.enabled`; docs/operations.md, "Changing the fleet", says what it has
been through). It carries out adding and draining a node, forcing a dead one
out and adding a replica group.

Theory of operation (docs/operations.md, "Changing the fleet", has the operator's view).
1. `start_rebalance` publishes, in one compare-and-set on the epoch, the new membership (new
   nodes `joining`, a drained node `draining`, a force-removed node `removed`) and the migration
   (source and target members). Every process adopts it within one follow interval and routes by
   `MigratingShardMap`: writes to old and new owners, quorum and reads on the old owners (a
   forced removal counts the target owners where the group has a survivor). The rebalance
   record (`rebalance` in the store) starts `waiting`.
2. `Rebalancer` (a service; one cluster-wide: it works only while it holds the store lease
   `rebalancer`, renewed before every step, and every record write is a compare-and-set on the
   version it last wrote, so a holder that lost the lease cannot overwrite its successor's
   progress) waits until every live proxy process routes by the migration's epoch
   (`topology_sync.lagging`: each process records its epoch in the store; the record's
   `waitingFor` names the laggards), so every process dual-writes before anything is copied.
3. It provisions every index (and, on a joining node, its settings) on every gaining node; then
   per shard count among the indexes (the topology's S, and each one the index layouts give an
   index: `core.rebalance_plan.count_plans`, the same memberships placed at that S), per move
   (group, shard) and gaining node, it copies the shard's documents from a source
   (`rebalance_plan.copy_sources`; in a forced removal a survivor, else another group's owner;
   with none, the replica is recorded `lost`) by `_miroir_shard = s` pages, at most
   `max_docs_per_second`.
4. The cutover race (`core.shard_copy`): after the copy, it waits until source and target have
   processed every task enqueued so far, compares the shard's documents on both sides by
   content digest, copies again what differs and deletes on the target only what the copy wrote,
   and repeats until a comparison is clean: counts and every document's digest agree. A move
   whose node does not answer is retried on the next pass (the move pauses, nothing is lost:
   writes keep reaching both sides).
5. Cutting (the residual window, closed): when every move is verified, one more epoch marks the
   migration `cutting`, in which a write is acknowledged only if every new owner of its shard
   acknowledged it too (`core.quorum.with_required_acks`). Once every live process routes by
   it, every move is compared once more: from then on no acknowledged write can miss a new
   owner, so a clean compare is final. A new owner that fails here sends the migration back to
   copying (one more epoch without the requirement) so writes to its shards do not keep
   failing. `RebalanceSettings.cutting_phase=False` skips this step, only to measure the window
   it closes (tests/proxy/test_rebalance_window.py).
6. Then one more epoch cuts over: the target membership, joining nodes `active`, drained nodes
   `removed`, no migration. Old owners stop taking the shards' writes.
7. Once every live process routes by the cutover and `grace_ms` passed, the old owners that stay
   in the cluster delete their copies by filter (a `failed` one is waited for, within
   `LEFTOVER_PATIENCE_MS`, then its copy is recorded in `leftovers`); the record ends `done`.
A process that crashes mid-rebalance loses nothing: the migration is in the topology record,
done moves are in the rebalance record, and whoever takes the lease next resumes (a move is
copied again from the start, which the compare makes idempotent; an epoch published and not yet
recorded is recognised from the topology).

Must never: cut over before every move compared clean after every process required the new
owners' acknowledgements, delete a source copy before every live process routes by the cutover
epoch and `grace_ms` has passed, or write progress without holding the lease.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Hashable, Iterable
from typing import Any

import attrs
import trio

from miroir.cluster.rebalance_nodes import (
    MoveIncomplete,
    _drain_queue,
    _indexes,
    _node_write,
    _provision,
)
from miroir.cluster.runtime import Cluster
from miroir.cluster.topology_sync import lagging, publish, read_topology
from miroir.core.errors import MeiliError
from miroir.core.membership import MembershipChange, members
from miroir.core.migration_map import Migration
from miroir.core.node_state import NodeState
from miroir.core.rebalance_plan import (
    CountPlan,
    RebalancePlan,
    ShardMove,
    copy_sources,
    count_plans,
    plan_rebalance,
)
from miroir.core.routing import SHARD_FIELD
from miroir.core.shard_copy import content_digest, document_digest, reconcile
from miroir.core.topology import Placement, Topology
from miroir.store.base import VersionedRecord
from miroir.transport.base import NodeResponse

logger = logging.getLogger("miroir.rebalance")

REBALANCE_RECORD = "rebalance"
LEASE = "rebalancer"
PAGE_SIZE = 500
MAX_COMPARE_ROUNDS = 5
# How long the grace step waits for a failed old owner before leaving its copy (at least).
LEFTOVER_PATIENCE_MS = 60_000
ACTIVE_STATES = ("waiting", "copying", "cutting", "grace")


@attrs.frozen
class RebalanceSettings:
    max_docs_per_second: int = 2000
    # How long a `waiting` record may go without its migration in the topology (a start that
    # died between the two writes) before it is failed.
    settle_ms: int = 2000
    grace_ms: int = 5000
    lease_ttl_ms: int = 10_000
    poll_s: float = 1.0
    page_size: int = PAGE_SIZE
    # False only to measure the residual window the cutting phase closes (tests/sim).
    cutting_phase: bool = True


class ShardLost(Exception):
    """A forced removal took the only replicas of a (group, shard): nothing is left to copy."""


class LeaseLost(Exception):
    """Another process holds the rebalancer lease now: stop at once."""


async def start_rebalance(cluster: Cluster, change: MembershipChange, now_ms: int) -> dict[str, Any]:
    """Publish `change` with its migration and open the rebalance record. 409
    `miroir_rebalance_in_progress` when one is running."""
    found = await read_topology(cluster.store)
    if found is None:
        raise MeiliError("miroir_rebalance_in_progress", "The topology is not stored yet.")
    if found.migration is not None:
        raise MeiliError("miroir_rebalance_in_progress",
                         f"Rebalance `{found.migration.id}` is in progress.")
    current = await cluster.store.get_record(REBALANCE_RECORD)
    if current is not None and current.value.get("state") in ACTIVE_STATES:
        raise MeiliError("miroir_rebalance_in_progress",
                         f"Rebalance `{current.value['id']}` is in progress.")
    rebalance_id = f"rb-{found.epoch + 1}-{uuid.uuid4().hex[:8]}"
    # Every shard count among the node-side indexes moves by its own plan (`shard_counts`).
    plans = change.plans(await shard_counts(cluster))
    moves = any(plan.moves for plan in plans.values())
    migration = Migration(rebalance_id, change.source, change.target,
                          forced=change.kind == "force_remove")
    # The record first, then the topology: a process that dies between the two leaves a
    # `waiting` record whose migration never appears, which the engine fails after `settle_ms`
    # (the other order would leave a migration no engine ever drives).
    record = {
        "id": rebalance_id, "kind": change.kind, "state": "waiting" if moves else "done",
        "epoch": found.epoch + 1, "startedAtMs": now_ms, "copyStartedAtMs": None,
        "finishedAtMs": None if moves else now_ms,
        "shardsTotal": sum(plan.replicas_copied for plan in plans.values()), "shardsDone": 0,
        "documentsCopied": 0,
        "done": [], "errors": [], "waitingFor": [], "lost": [],
        "source": [list(g) for g in change.source], "target": [list(g) for g in change.target],
    }
    stored = await cluster.store.put_record_if(
        REBALANCE_RECORD, 0 if current is None else current.version, record)
    if stored is None:
        raise MeiliError("miroir_rebalance_in_progress", "Another rebalance started meanwhile.")
    if moves:
        published = await publish(cluster, found.epoch, change.topology, migration)
    else:  # nothing to copy (a new node that wins no shard): the target is in force at once
        published = await publish(cluster, found.epoch, final_topology(change.topology, migration))
    if published is None:
        await cluster.store.put_record_if(REBALANCE_RECORD, stored.version, {
            **record, "state": "failed", "finishedAtMs": now_ms,
            "errors": ["the topology changed while the change was judged"]})
        raise MeiliError("miroir_rebalance_in_progress",
                         "The topology changed while this change was judged; send it again.")
    return {"rebalanceId": rebalance_id, "epoch": published.epoch, "kind": change.kind,
            "shardReplicasToCopy": record["shardsTotal"]}


async def shard_counts(cluster: Cluster) -> set[int]:
    """The shard counts the index layouts give node-side indexes (besides the topology's)."""
    return set((await cluster.layouts.current()).node_shards.values())


def final_topology(topology: Topology, migration: Migration) -> Topology:
    """The cutover's membership: joining target members `active`, draining nodes that are not
    target members `removed`."""
    target = {n for group in migration.target for n in group}
    return attrs.evolve(topology, nodes=tuple(
        attrs.evolve(n, state=NodeState.ACTIVE)
        if n.state is NodeState.JOINING and n.id in target else
        attrs.evolve(n, state=NodeState.REMOVED)
        if n.state is NodeState.DRAINING and n.id not in target else n
        for n in topology.nodes))


def progress(value: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The rebalance record as `GET /_miroir/rebalance` shows it: rate and ETA derived."""
    rate = eta = None
    started = value.get("copyStartedAtMs")
    if started is not None and value.get("state") == "copying" and now_ms > started:
        rate = value["documentsCopied"] * 1000 / (now_ms - started)
        done, total = value["shardsDone"], value["shardsTotal"]
        if done:
            eta = (now_ms - started) / 1000 * (total - done) / done
    shown = {k: v for k, v in value.items() if k != "done"}
    return {**shown, "documentsPerSecond": rate, "etaSeconds": eta}


class Rebalancer:
    """The engine service; see the module docstring."""

    def __init__(self, cluster: Cluster, settings: RebalanceSettings) -> None:
        self.cluster = cluster
        self.settings = settings
        self.holder = f"rebalancer-{uuid.uuid4().hex[:12]}"
        self._record: VersionedRecord | None = None
        self._window_start: float | None = None  # the pacing window's start (trio time)
        self._window_docs = 0
        # Told the rebalance record after every step (the metrics hook).
        self.observers: list[Callable[[dict[str, Any]], None]] = []

    async def run(self) -> None:
        while True:
            try:
                await self.drive_once()
            except LeaseLost:
                logger.warning("the rebalancer lease moved to another process")
            except Exception:
                logger.exception("rebalance pass failed; retrying")
            await trio.sleep(self.settings.poll_s)

    # ---- one pass -----------------------------------------------------------------------

    async def drive_once(self) -> str | None:
        """One pass: take the lease if a rebalance is open, and move it as far as it goes.
        Returns the record's state afterwards (None: nothing to do or the lease is elsewhere)."""
        record = await self.cluster.store.get_record(REBALANCE_RECORD)
        if record is None or record.value.get("state") not in ACTIVE_STATES:
            return None
        if not await self._hold_lease():
            return None
        self._record = record
        try:
            return await self._step(record.value["state"])
        finally:
            await self.cluster.store.release_lease(LEASE, self.holder)

    async def _step(self, state: str) -> str:
        found = await read_topology(self.cluster.store)
        value = self._record.value
        if state == "grace":
            return await self._grace()
        if found is not None and found.migration is None and state == "cutting" \
                and _is_cut_over(found.topology, value.get("target")):
            # The cutover was published and this engine (or its predecessor) died before
            # recording it: record it now.
            await self._update(state="grace", cutOverAtMs=self.cluster.now_ms(),
                               cutOverEpoch=found.epoch)
            return "grace"
        if found is None or found.migration is None or found.migration.id != value["id"]:
            if self.cluster.now_ms() < value["startedAtMs"] + self.settings.settle_ms:
                return state  # its start may not have published the migration yet
            await self._fail("the topology does not carry this rebalance's migration")
            return "failed"
        self.cluster.adopt_epoch(found.epoch, found.topology, found.migration)
        migration = found.migration
        if state == "waiting":
            # Nothing is copied before every live process dual-writes.
            if not await self._adopted(value["epoch"]):
                return "waiting"
            await self._update(state="copying", copyStartedAtMs=self.cluster.now_ms())
        if migration.cutting and self._record.value["state"] != "cutting":
            # a predecessor published the cutting epoch and died before recording it
            await self._update(state="cutting", cuttingEpoch=found.epoch)
        elif not migration.cutting and self._record.value["state"] == "cutting":
            # a predecessor went back to copying and died before recording it
            await self._update(state="copying")
        if self._record.value["state"] == "copying":
            if not await self._copy_all(migration, found.topology):
                return "copying"
            if not self.settings.cutting_phase:
                return await self._compare_then_cut_over(found.epoch, found.topology, migration)
            published = await publish(self.cluster, found.epoch, found.topology,
                                      attrs.evolve(migration, cutting=True))
            if published is None:
                raise LeaseLost()  # someone else changed the topology: look again next pass
            await self._update(state="cutting", cuttingEpoch=published.epoch)
            found = published
        # cutting: the new owners' acknowledgements are required once every process routes by
        # the cutting epoch; from then on no acknowledged write can miss them, so one more
        # compare of every move closes the residual window before the cutover.
        if not await self._adopted(self._record.value["cuttingEpoch"]):
            return "cutting"
        return await self._compare_then_cut_over(found.epoch, found.topology, found.migration)

    async def _compare_then_cut_over(self, epoch: int, topology: Topology,
                                     migration: Migration) -> str:
        indexes = await _indexes(self.cluster, self.cluster.serving_nodes())
        if not await self._compare_all_again(await self._by_count(topology, migration, indexes)):
            if migration.cutting:
                # A new owner does not answer: back to dual writes without requiring it, so
                # client writes to its shards do not fail while the engine waits for it.
                published = await publish(self.cluster, epoch, topology,
                                          attrs.evolve(migration, cutting=False))
                if published is None:
                    raise LeaseLost()
                await self._update(state="copying")
            return "copying"
        await self._cut_over(epoch, topology, migration)
        return "grace"

    async def _grace(self) -> str:
        """The cutover is published: delete the old owners' copies once every live process
        routes by it and `grace_ms` passed (requests still holding an older map finish)."""
        value = self._record.value
        if not await self._adopted(value["cutOverEpoch"]) or \
                self.cluster.now_ms() < value["cutOverAtMs"] + self.settings.grace_ms:
            return "grace"
        try:
            await self._delete_old_copies()
        except MoveIncomplete as why:
            await self._error(f"deleting old copies: {why}")
            return "grace"
        await self._update(state="done", finishedAtMs=self.cluster.now_ms())
        return "done"

    async def _adopted(self, epoch: int) -> bool:
        """Whether every live proxy process routes by `epoch` or newer; the record's
        `waitingFor` names those that do not (process id and epoch)."""
        behind = await lagging(self.cluster, epoch)
        waiting = [f"{pid}@{found}" for pid, found in sorted(behind.items())]
        if waiting != self._record.value.get("waitingFor", []):
            await self._update(waitingFor=waiting)
        return not behind

    async def _hold_lease(self) -> bool:
        lease = await self.cluster.store.acquire_lease(
            LEASE, self.holder, self.cluster.now_ms(), self.settings.lease_ttl_ms)
        return lease is not None

    async def _renew(self) -> None:
        lease = await self.cluster.store.renew_lease(
            LEASE, self.holder, self.cluster.now_ms(), self.settings.lease_ttl_ms)
        if lease is None:
            raise LeaseLost()

    async def _update(self, **changes: Any) -> None:
        await self._renew()
        assert self._record is not None
        value = {**self._record.value, **changes}
        stored = await self.cluster.store.put_record_if(
            REBALANCE_RECORD, self._record.version, value)
        if stored is None:
            raise LeaseLost()
        self._record = stored
        for observer in self.observers:
            observer(stored.value)

    async def _fail(self, why: str) -> None:
        logger.error("rebalance failed: %s", why)
        await self._update(state="failed", errors=[*self._record.value["errors"], why][-10:])

    async def _lost(self, why: str) -> None:
        logger.error("forced removal: %s; the new owner starts without those documents", why)
        lost = self._record.value.get("lost", [])
        if why not in lost:
            await self._update(lost=[*lost, why])

    async def _error(self, why: str) -> None:
        logger.warning("rebalance: %s (retried on the next pass)", why)
        await self._update(errors=[*self._record.value["errors"], why][-10:])

    # ---- copy -----------------------------------------------------------------------------

    async def _copy_all(self, migration: Migration, topology: Topology) -> bool:
        """Copy and verify every move not done yet; True when all are done."""
        # Which nodes gain a copy depends on S: the plans of every count the layouts name
        # (the indexes are not listed yet: the readers are the nodes that gain nothing).
        counts = {topology.shards, *await shard_counts(self.cluster)}
        gaining = sorted({node for shards in counts
                          for move in _placements(topology, migration, shards)[2]
                          for node in move.gains})
        readers = [n for n in self.cluster.serving_nodes() if n not in gaining] or \
            self.cluster.serving_nodes()
        try:
            indexes = await _indexes(self.cluster, readers)
            for node in gaining:
                await _provision(self.cluster, node, readers, indexes)
        except MoveIncomplete as why:
            await self._error(f"provisioning: {why}")
            return False
        done = set(self._record.value["done"])
        complete = True
        for count in await self._by_count(topology, migration, indexes):
            for move in count.plan:
                for node in move.gains:
                    key = count.key(move, node)
                    if key in done:
                        continue
                    try:
                        for index in count.indexes:
                            if index.get("primaryKey"):
                                await self._move(move, node, count.source, index["uid"],
                                                 index["primaryKey"])
                    except ShardLost as why:
                        await self._lost(str(why))
                    except MoveIncomplete as why:
                        await self._error(f"{key}: {why}")
                        complete = False
                        continue
                    done.add(key)
                    await self._update(done=sorted(done), shardsDone=len(done))
        return complete

    async def _by_count(self, topology: Topology, migration: Migration,
                        indexes: list[dict[str, Any]]) -> list[CountPlan]:
        """The indexes grouped by shard count (the layouts' `node_shards`, else the topology's
        S), each with its placements and plan (`core.rebalance_plan.count_plans`)."""
        layouts = await self.cluster.layouts.current()
        # Every count `start_rebalance` counted in `shardsTotal`, even one no index has now.
        grouped: dict[int, list[dict[str, Any]]] = {
            shards: [] for shards in layouts.node_shards.values()}
        for index in indexes:
            grouped.setdefault(layouts.shards_of(index["uid"], topology.shards), []).append(index)
        groups = topology.replica_groups
        return count_plans(_pad(migration.source, groups), _pad(migration.target, groups),
                           topology.replication_factor, topology.shards, grouped)

    async def _compare_all_again(self, counts: list[CountPlan]) -> bool:
        """A gaining node that missed a dual write after its move was verified (it failed, or
        one write to it did) would be cut over stale: compare every move once more, right
        before the cutover (once every process requires the new owners' acknowledgements:
        the cutting phase, module docstring step 5)."""
        for count in counts:
            for move in count.plan:
                for node in move.gains:
                    try:
                        self._writable(node)
                        try:
                            sources = self._sources(move, count.source)
                        except ShardLost:
                            continue  # recorded when it was copied: nothing to compare with
                        for index in count.indexes:
                            if index.get("primaryKey"):
                                await self._converge(move, node, sources[0], index["uid"],
                                                     index["primaryKey"], None)
                    except MoveIncomplete as why:
                        await self._error(f"{count.key(move, node)} final compare: {why}")
                        return False
        return True

    def _writable(self, node: str) -> None:
        """A gaining node this process sees `failed` gets no copy and no cutover: it takes no
        client writes meanwhile, so a verified copy on it would go stale (it is retried once
        the node is back, through the repair worker's rejoin)."""
        if self.cluster.state_of(node) in (NodeState.FAILED, NodeState.REMOVED):
            raise MoveIncomplete(f"{node} is {self.cluster.state_of(node).value}")

    def _sources(self, move: ShardMove, source: Placement) -> list[str]:
        """Where `move` copies from, readable ones only. A forced removal's leaving node is
        `removed` (gone): the group's survivors, else the shard's owners in the other groups;
        with none at all, the replica is lost (ShardLost)."""
        def alive(nodes: Iterable[str]) -> list[str]:
            return [n for n in nodes
                    if self.cluster.state_of(n) not in (NodeState.FAILED, NodeState.REMOVED)]

        sources = alive(copy_sources(move, source))
        if not sources and self.cluster.migration is not None and self.cluster.migration.forced:
            gone = [n for n in (*move.keeps, *move.loses)
                    if self.cluster.state_of(n) is NodeState.REMOVED]
            others = [n for g in range(len(source.owners)) if g != move.group
                      for n in source.owners[g][move.shard]]
            sources = alive(others)
            candidates = (*move.keeps, *move.loses, *others)
            if not sources and all(self.cluster.state_of(n) is NodeState.REMOVED
                                   for n in candidates):
                raise ShardLost(f"{move.key}: its only replicas were on {', '.join(gone)}")
        if not sources:
            raise MoveIncomplete("no readable source")
        return sources

    async def _move(self, move: ShardMove, node: str, source: Placement, uid: str,
                    pk: str) -> None:
        self._writable(node)
        source_node = self._sources(move, source)[0]
        copied: set[Hashable] = set()
        shard_filter = f"{SHARD_FIELD} = {move.shard}"
        offset = 0
        while True:
            page = await self._fetch(source_node, uid, {"filter": shard_filter}, offset)
            documents = page["results"]
            if documents:
                await self._write_documents(node, uid, pk, documents)
                copied.update(d[pk] for d in documents if pk in d)
            offset += self.settings.page_size
            if offset >= page["total"] or not documents:
                break
        await self._converge(move, node, source_node, uid, pk, copied)

    async def _converge(self, move: ShardMove, node: str, source_node: str, uid: str, pk: str,
                        copied: set[Hashable] | None) -> None:
        """Compare rounds until clean (module docstring, step 4). `copied` None: every id on the
        target may be deleted (the final pass, after a restart forgot what was copied)."""
        shard_filter = f"{SHARD_FIELD} = {move.shard}"
        for _ in range(MAX_COMPARE_ROUNDS):
            await _drain_queue(self.cluster, source_node)
            await _drain_queue(self.cluster, node)
            on_source = await self._digests(source_node, uid, pk, shard_filter)
            on_target = await self._digests(node, uid, pk, shard_filter)
            verdict = reconcile(on_source, on_target,
                                on_target.keys() if copied is None else copied)
            if verdict.clean:
                logger.info("%s -> %s index %s: %d documents verified (digest %x)", move.key,
                            node, uid, len(on_source), content_digest(on_source))
                return
            if verdict.recopy:
                wanted = [str(i) for i in verdict.recopy]
                for start in range(0, len(wanted), self.settings.page_size):
                    docs = await self._fetch_all(
                        source_node, uid, {"ids": wanted[start:start + self.settings.page_size]})
                    if docs:
                        await self._write_documents(node, uid, pk, docs)
                        if copied is not None:
                            copied.update(d[pk] for d in docs if pk in d)
            if verdict.delete:
                await _node_write(self.cluster, node, "POST",
                                  f"/indexes/{uid}/documents/delete-batch", list(verdict.delete))
        raise MoveIncomplete(f"index {uid} still differed after {MAX_COMPARE_ROUNDS} compares")

    async def _write_documents(self, node: str, uid: str, pk: str,
                               documents: list[dict[str, Any]]) -> None:
        await self._renew()
        await _node_write(self.cluster, node, "POST",
                          f"/indexes/{uid}/documents?primaryKey={pk}", documents)
        await self._update(documentsCopied=self._record.value["documentsCopied"] + len(documents))
        await self._pace(len(documents))

    async def _pace(self, documents: int) -> None:
        """Hold the copy to `max_docs_per_second` over a sliding one-second window."""
        now = trio.current_time()
        if self._window_start is None or now - self._window_start >= 1.0:
            self._window_start, self._window_docs = now, 0
        self._window_docs += documents
        await trio.sleep_until(
            self._window_start + self._window_docs / self.settings.max_docs_per_second)

    async def _fetch(self, node: str, uid: str, body: dict[str, Any], offset: int) -> dict[str, Any]:
        result = await self.cluster.call(
            node, "POST", f"/indexes/{uid}/documents/fetch",
            {**body, "offset": offset, "limit": self.settings.page_size})
        if not (isinstance(result, NodeResponse) and result.ok):
            raise MoveIncomplete(f"{node} did not answer a documents fetch on {uid}")
        return result.json()

    async def _fetch_all(self, node: str, uid: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        documents: list[dict[str, Any]] = []
        offset = 0
        while True:
            page = await self._fetch(node, uid, body, offset)
            documents.extend(page["results"])
            offset += self.settings.page_size
            if offset >= page["total"] or not page["results"]:
                return documents

    async def _digests(self, node: str, uid: str, pk: str, shard_filter: str) -> dict[Hashable, int]:
        documents = await self._fetch_all(node, uid, {"filter": shard_filter})
        return {d[pk]: document_digest(d) for d in documents if pk in d}

    # ---- cutover and grace ------------------------------------------------------------------

    async def _cut_over(self, epoch: int, topology: Topology, migration: Migration) -> None:
        final = final_topology(topology, migration)
        await self._renew()
        published = await publish(self.cluster, epoch, final, None)
        if published is None:
            raise LeaseLost()  # someone else changed the topology: look again next pass
        source = [list(g) for g in migration.source]
        await self._update(state="grace", cutOverAtMs=self.cluster.now_ms(),
                           cutOverEpoch=published.epoch, source=source,
                           target=[list(g) for g in migration.target])
        logger.info("rebalance %s cut over at epoch %d", migration.id, published.epoch)

    async def _delete_old_copies(self) -> None:
        value = self._record.value
        topology = self.cluster.topology
        members = {n.id: n.state for n in topology.nodes}
        indexes = await _indexes(self.cluster, self.cluster.serving_nodes())
        patience_over = self.cluster.now_ms() >= value["cutOverAtMs"] + max(
            10 * self.settings.grace_ms, LEFTOVER_PATIENCE_MS)
        leftovers = []
        # Per shard count: an index's old copies are the shards its own S's plan moved.
        migration = Migration(value["id"], _pad(value["source"], topology.replica_groups),
                              _pad(value["target"], topology.replica_groups))
        for count in await self._by_count(topology, migration, indexes):
            for move in count.plan:
                for node in move.loses:
                    if members.get(node, NodeState.REMOVED) is NodeState.REMOVED:
                        continue  # a drained node is out of the cluster: the operator retires it
                    if members[node] is NodeState.FAILED:
                        # Its copy is harmless (reads filter by shard, a later move onto it
                        # compares it away) but takes room: wait for it to come back, within
                        # reason.
                        if not patience_over:
                            raise MoveIncomplete(
                                f"{node} is failed; its copy of {count.name(move)} waits")
                        leftovers.append(f"{node}:{count.name(move)}")
                        continue
                    for index in count.indexes:
                        await _node_write(self.cluster, node, "POST",
                                          f"/indexes/{index['uid']}/documents/delete",
                                          {"filter": f"{SHARD_FIELD} = {move.shard}"})
        if leftovers:
            logger.warning("rebalance: old copies left on failed nodes: %s (delete them by "
                           "filter `%s = <shard>` once they are back)", leftovers, SHARD_FIELD)
            await self._update(leftovers=leftovers)


def _placements(topology: Topology, migration: Migration, shards: int | None = None
                ) -> tuple[Placement, Placement, RebalancePlan]:
    """A migration's source and target placements of `shards` shards (default: the
    topology's) and the plan between them."""
    groups = topology.replica_groups
    shards = topology.shards if shards is None else shards
    source = Placement.from_members(shards, topology.replication_factor,
                                    _pad(migration.source, groups))
    target = Placement.from_members(shards, topology.replication_factor,
                                    _pad(migration.target, groups))
    return source, target, plan_rebalance(source, target)


def _is_cut_over(topology: Topology, target: Any) -> bool:
    """Whether `topology` is a rebalance's cutover: nobody joining or draining, and the members
    per group are the rebalance's target members."""
    if target is None or any(n.state in (NodeState.JOINING, NodeState.DRAINING)
                             for n in topology.nodes):
        return False
    return [list(m) for m in members(topology)] == [sorted(g) for g in target] + \
        [[] for _ in range(topology.replica_groups - len(target))]


def _pad(members: Any, groups: int) -> tuple[tuple[str, ...], ...]:
    return tuple(tuple(members[g]) if g < len(members) else () for g in range(groups))
