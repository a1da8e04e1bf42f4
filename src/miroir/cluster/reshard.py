"""The reshard engine: changes an index's shard count S on a live index, one reshard at a time.

Theory of operation (docs/operations.md, "Reshard an index", has the operator's view; the
states and their rules are `miroir.core.reshard_plan`'s).
1. `start_reshard` (the admin route) checks the request, that no reshard or rebalance runs and
   the allowed windows (unless `force`), and opens a record `waiting` in the store's reshard
   history (`RESHARDS_RECORD`, newest first).
2. `Resharder` (a service; one cluster-wide: it works only while it holds the store lease
   `resharder`, renewed before every step, and every record write is a compare-and-set on the
   version it last wrote, like the rebalancer) creates the shadow `<node index>--s<S2>-<n>` on
   every node (same primary key and settings), and in one change of the layouts record
   reserves its name, gives it S2 (`nodeShards`) and mirrors the index's writes to it
   (`cluster.reshard_mirror`). It copies nothing before every live process announced that
   layouts version (`topology_sync.lagging_layouts`): from then on no acknowledged write can
   miss the shadow except by a counted mirror failure, which the comparison repairs.
3. `copying`: every old shard is copied into the shadow re-hashed (`cluster.reshard_copy`; the
   old shards done are in the record, so a restart resumes at the next one), at most
   `max_docs_per_second`, then the comparison runs until clean.
4. `verifying`: the mirror becomes required (a write the shadow did not take is refused), and
   once every process announced that, one more comparison is final; the counts, the content
   digest and the settings (normalized) must agree. A failure here goes back to `copying`
   with the mirror optional again (writes must not keep failing on a sick shadow).
5. The flip, one compare-and-set of the layouts record: the uid names the shadow, and the
   shadow's writes are mirrored (required) back to the old index: `grace`, for `grace_ms`
   after every process announced the flip. A rollback now flips back and loses nothing.
6. Then the mirror is dropped; once every process announced that, the old index is deleted on
   every node and its `nodeShards` entry dropped: `done`.
A rollback before the flip, or a failure (the index was deleted meanwhile), drops the mirror,
waits until every process announced that (a mirror write after the delete would create the
index again), then deletes the shadow: `rolledBack` / `failed`.

Must never: copy before every process mirrors, flip before a comparison made under the required
mirror was clean, delete the old index before every process stopped mirroring into it, or
write progress without holding the lease.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from miroir.cluster.indexes import index_exists
from miroir.cluster.leased_engine import LeasedEngine, LeaseLost
from miroir.cluster.rebalance import ACTIVE_STATES as REBALANCE_ACTIVE
from miroir.cluster.rebalance import REBALANCE_RECORD
from miroir.cluster.rebalance_nodes import _drain_queue
from miroir.cluster.reshard_copy import (
    Converger,
    CopyIncomplete,
    Pacer,
    copy_shard,
    count,
    count_both,
    create_shadow,
    delete_everywhere,
    settings_differ,
)
from miroir.cluster.reshard_mirror import mirror_failures, reset_mirror_failures
from miroir.cluster.runtime import Cluster
from miroir.cluster.topology_sync import lagging_layouts, read_topology
from miroir.core.errors import MeiliError
from miroir.core.reshard_plan import (
    ACTIVE_STATES,
    can_move,
    progress,
    read_request,
    shadow_name,
    window_refusal,
)
from miroir.core.reshard_window import Window
from miroir.core.topology import ShardMap
from miroir.store.base import VersionedRecord
from miroir.transport.base import NodeResponse

logger = logging.getLogger("miroir.reshard")

RESHARDS_RECORD = "reshards"
LEASE = "resharder"
HISTORY = 50  # finished reshards kept in the record
COUNT_ATTEMPTS = 5


@attrs.frozen
class ReshardSettings:
    max_docs_per_second: int = 2000
    grace_ms: int = 60_000
    # After every process announced a dropped mirror, how long before the index it pointed at
    # is deleted: a write that read the mirror just before may still be on its way to a node
    # (and a document write to a deleted index would create it again). Node timeouts' worth.
    settle_ms: int = 10_000
    lease_ttl_ms: int = 10_000
    poll_s: float = 1.0
    page_size: int = 500


# ---- the record ---------------------------------------------------------------------------------


async def list_reshards(cluster: Cluster) -> list[dict[str, Any]]:
    """Every reshard the store remembers, newest first, as the routes show them."""
    record = await cluster.store.get_record(RESHARDS_RECORD)
    found = [] if record is None else record.value.get("reshards", [])
    return [await _shown(cluster, r) for r in found]


async def get_reshard(cluster: Cluster, reshard_id: str) -> dict[str, Any]:
    record = await cluster.store.get_record(RESHARDS_RECORD)
    for found in [] if record is None else record.value.get("reshards", []):
        if found["id"] == reshard_id:
            return await _shown(cluster, found)
    raise MeiliError("miroir_reshard_not_found", f"Reshard `{reshard_id}` not found.")


async def _shown(cluster: Cluster, value: dict[str, Any]) -> dict[str, Any]:
    shown = progress(value, cluster.now_ms())
    if value.get("state") in ACTIVE_STATES:
        failures = await mirror_failures(
            cluster, [value["shadow"], value["nodeIndex"]] if value.get("shadow") else [])
        if failures:
            shown["errors"] = [*shown["errors"],
                               f"{failures} mirrored writes missed the new layout (repaired by "
                               "the comparison)"]
    return shown


def active_of(value: dict[str, Any] | None) -> dict[str, Any] | None:
    for found in [] if value is None else value.get("reshards", []):
        if found.get("state") in ACTIVE_STATES:
            return found
    return None


async def start_reshard(cluster: Cluster, uid: str, node_index: str, body: Any,
                        windows: Sequence[Window]) -> dict[str, Any]:
    """Open a reshard of client index `uid` (held in `node_index`); see the module docstring.
    Raises MeiliError (index_not_found, miroir_invalid_reshard, miroir_reshard_in_progress,
    miroir_rebalance_in_progress, miroir_reshard_outside_window)."""
    layouts = await cluster.layouts.refresh()
    current = layouts.shards_of(node_index, cluster.topology.shards)
    shards, force = read_request(body, current)
    index = await index_exists(cluster, node_index)
    if index is None:
        raise MeiliError("index_not_found", f"Index `{uid}` not found.")
    record = await cluster.store.get_record(RESHARDS_RECORD)
    running = active_of(None if record is None else record.value)
    if running is not None:
        raise MeiliError("miroir_reshard_in_progress",
                         f"Reshard `{running['id']}` of index `{running['index']}` is in "
                         "progress; one runs at a time.")
    rebalance = await cluster.store.get_record(REBALANCE_RECORD)
    topology = await read_topology(cluster.store)
    if (rebalance is not None and rebalance.value.get("state") in REBALANCE_ACTIVE) or \
            (topology is not None and topology.migration is not None):
        raise MeiliError("miroir_rebalance_in_progress",
                         "A rebalance is in progress; reshard once it is done.")
    now = cluster.now_ms()
    refusal = None if force else window_refusal(now, windows)
    if refusal is not None:
        raise MeiliError("miroir_reshard_outside_window", refusal)
    value = dict(record.value) if record is not None else {"reshards": [], "next": 1}
    reshard_id = f"rs-{value.get('next', 1)}"
    entry = {
        "id": reshard_id, "index": uid, "nodeIndex": node_index,
        "primaryKey": index.get("primaryKey"), "fromShards": current, "toShards": shards,
        "state": "waiting", "shadow": None, "documentsCopied": 0, "documentsTotal": 0,
        "documentsRecopied": 0,
        "errors": [], "startedAtMs": now, "finishedAtMs": None, "copyStartedAtMs": None,
        "shardsCopied": [], "forced": force, "rollbackRequested": False, "finishing": False,
    }
    kept = [r for r in value.get("reshards", [])][:HISTORY - 1]
    stored = await cluster.store.put_record_if(
        RESHARDS_RECORD, 0 if record is None else record.version,
        {"reshards": [entry, *kept], "next": value.get("next", 1) + 1})
    if stored is None:
        raise MeiliError("miroir_reshard_in_progress", "Another reshard started meanwhile.")
    logger.info("reshard %s of %s: %d -> %d shards requested", reshard_id, uid, current, shards)
    return {"reshardId": reshard_id, "index": uid, "fromShards": current, "toShards": shards,
            "state": "waiting"}


async def request_rollback(cluster: Cluster, reshard_id: str) -> dict[str, Any]:
    """Ask the engine to roll reshard `reshard_id` back (module docstring): before the flip it
    is abandoned, during the grace period flipped back. 409 once it is finishing or over."""
    while True:
        record = await cluster.store.get_record(RESHARDS_RECORD)
        entries = [] if record is None else record.value.get("reshards", [])
        found = next((r for r in entries if r["id"] == reshard_id), None)
        if found is None:
            raise MeiliError("miroir_reshard_not_found", f"Reshard `{reshard_id}` not found.")
        if found["state"] not in ACTIVE_STATES or found.get("finishing"):
            raise MeiliError("miroir_reshard_rollback_too_late",
                             f"Reshard `{reshard_id}` is {found['state']}"
                             f"{' and deleting the old index' if found.get('finishing') else ''}"
                             ": there is nothing to roll back to.")
        if found.get("rollbackRequested"):
            return await _shown(cluster, found)
        changed = {**found, "rollbackRequested": True}
        value = {**record.value,
                 "reshards": [changed if r["id"] == reshard_id else r for r in entries]}
        if await cluster.store.put_record_if(RESHARDS_RECORD, record.version, value) is not None:
            logger.info("reshard %s: rollback requested in state %s", reshard_id, found["state"])
            return await _shown(cluster, changed)


# ---- the engine -----------------------------------------------------------------------------


class Resharder(LeasedEngine):
    """The engine service; see the module docstring."""

    LEASE_NAME = LEASE
    logger = logger

    def __init__(self, cluster: Cluster, settings: ReshardSettings) -> None:
        super().__init__(cluster, settings, f"resharder-{uuid.uuid4().hex[:12]}")
        self.settings: ReshardSettings = settings
        self._record: VersionedRecord | None = None
        self._id: str | None = None
        self._pacer = Pacer(settings.max_docs_per_second)
        # Told the reshard's entry after every step (the metrics hook).
        self.observers: list[Callable[[dict[str, Any]], None]] = []

    async def drive_once(self) -> str | None:
        """One pass: take the lease if a reshard is open and move it as far as it goes; the
        entry's state afterwards (None: nothing to do, or the lease is elsewhere)."""
        record = await self.cluster.store.get_record(RESHARDS_RECORD)
        entry = active_of(None if record is None else record.value)
        if entry is None:
            return None
        if not await self._hold_lease():
            return None
        self._record, self._id = record, entry["id"]
        try:
            return await self._step()
        finally:
            await self._release_lease()

    @property
    def entry(self) -> dict[str, Any]:
        assert self._record is not None
        return next(r for r in self._record.value["reshards"] if r["id"] == self._id)

    async def _step(self) -> str:
        # The shard maps below read the layouts this process holds: a fresh copy first (a
        # process that just started has none).
        await self.cluster.layouts.refresh()
        entry = self.entry
        if entry.get("abandoning"):
            return await self._abandon(entry["abandoning"], None)
        if entry["rollbackRequested"] and not entry["finishing"]:
            return await self._abandon("rolledBack", None)
        try:
            if entry["state"] in ("waiting", "copying", "verifying") and \
                    await index_exists(self.cluster, entry["nodeIndex"]) is None:
                return await self._abandon("failed", f"index `{entry['index']}` was deleted")
            if entry["state"] == "waiting":
                if not await self._prepare():
                    return "waiting"
            if self.entry["state"] == "copying":
                if not await self._copy():
                    return "copying"
            if self.entry["state"] == "verifying":
                if not await self._verify_and_flip():
                    return self.entry["state"]
            if self.entry["state"] == "grace":
                await self._finish()
        except CopyIncomplete as why:
            await self._error(str(why))
        return self.entry["state"]

    # ---- steps

    async def _prepare(self) -> bool:
        """The shadow on every node and the mirror in the layouts; True once every process
        announced it (then `copying`)."""
        entry = self.entry
        old = entry["nodeIndex"]
        if entry.get("mirrorVersion") is None:
            shadow = entry["shadow"]
            if shadow is None:
                layouts = await self.cluster.layouts.refresh()
                taken = {*layouts.entries, *layouts.node_shards,
                         *(e.node_index for e in layouts.entries.values()
                                             if e.node_index)}
                shadow = shadow_name(old, entry["toShards"], taken | await self._node_indexes())
                await reset_mirror_failures(self.cluster, [shadow, old])
                await self._update(shadow=shadow)
            await create_shadow(self.cluster, old, shadow, entry["primaryKey"],
                                self.cluster.serving_nodes())
            await self.cluster.layouts.change(
                lambda now: now.with_reserved(shadow)
                .with_node_shards(shadow, entry["toShards"])
                .with_mirror(old, shadow))
            await self._update(mirrorVersion=self.cluster.layouts.version)
            logger.info("reshard %s: shadow %s created, writes mirrored to it", self._id, shadow)
        if await self._lagging(self.entry["mirrorVersion"]):
            return False
        total = await count(self.cluster, old, self.cluster.shard_map_for(old))
        await self._update(state="copying", copyStartedAtMs=self.cluster.now_ms(),
                           documentsTotal=total)
        return True

    async def _copy(self) -> bool:
        entry = self.entry
        old, shadow, pk = entry["nodeIndex"], entry["shadow"], entry["primaryKey"]
        old_map = self.cluster.shard_map_for(old)
        new_map = self.cluster.shard_map_for(shadow)
        if pk is None:
            pk = (await index_exists(self.cluster, old) or {}).get("primaryKey")
            if pk is not None:
                await self._update(primaryKey=pk)
        if pk is not None:
            done = set(self.entry["shardsCopied"])
            for shard in range(old_map.shards):
                if shard in done:
                    continue

                async def written(n: int) -> None:
                    # The total was counted as the copy began: documents written since then
                    # raise it, so the progress shown never passes 100 %.
                    copied = self.entry["documentsCopied"] + n
                    await self._update(documentsCopied=copied,
                                       documentsTotal=max(self.entry["documentsTotal"], copied))
                    await self._pacer.pace(n)

                await copy_shard(self.cluster, old, shadow, pk, shard, old_map, new_map,
                                 self.settings.page_size, written)
                done.add(shard)
                await self._update(shardsCopied=sorted(done))
            converger = Converger(self.cluster, old, shadow, pk, old_map, new_map,
                                  self.settings.page_size, self._renew)
            await converger.converge()
            if converger.recopied:  # repairs, counted apart from the progress
                await self._update(documentsRecopied=self.entry.get("documentsRecopied", 0)
                                   + converger.recopied)
        # Verifying: the mirror is required from the version this stores.
        await self.cluster.layouts.change(lambda now: now.with_mirror(old, shadow, required=True))
        await self._update(state="verifying", requiredVersion=self.cluster.layouts.version)
        return True

    async def _verify_and_flip(self) -> bool:
        entry = self.entry
        old, shadow, pk = entry["nodeIndex"], entry["shadow"], entry["primaryKey"]
        layouts = await self.cluster.layouts.refresh()
        if layouts.node_index(entry["index"]) == shadow:
            # The flip was stored and this engine (or its predecessor) died before recording it.
            await self._update(state="grace", flippedAtMs=self.cluster.now_ms(),
                               flipVersion=self.cluster.layouts.version)
            return True
        if await self._lagging(entry["requiredVersion"]):
            return False
        old_map = self.cluster.shard_map_for(old)
        new_map = self.cluster.shard_map_for(shadow)
        try:
            documents, digest = 0, 0
            if pk is not None:
                documents, digest = await Converger(
                    self.cluster, old, shadow, pk, old_map, new_map,
                    self.settings.page_size, self._renew).converge()
            old_count = await self._equal_counts(old, shadow, old_map, new_map)
            differ = await settings_differ(self.cluster, old, shadow)
            if differ:
                raise CopyIncomplete(f"settings of {shadow} differed on {', '.join(differ)} "
                                     "(copied again)")
        except CopyIncomplete as why:
            # Back to copying with an optional mirror: client writes must not keep failing.
            await self.cluster.layouts.change(lambda now: now.with_mirror(old, shadow))
            await self._update(state="copying", errors=[*entry["errors"], str(why)][-10:])
            return False
        layouts = await self.cluster.layouts.refresh()
        if layouts.node_index(entry["index"]) != old:
            await self._abandon("failed", f"index `{entry['index']}` was swapped, renamed or "
                                "aliased during the reshard")
            return False
        await self.cluster.layouts.change(
            lambda now: now.flipped(entry["index"], shadow, mirror_back=True))
        await self._update(state="grace", flippedAtMs=self.cluster.now_ms(),
                           flipVersion=self.cluster.layouts.version, verifiedDocuments=documents,
                           verifiedDigest=f"{digest:016x}", verifiedCount=old_count)
        logger.info("reshard %s: %s now names %s (%d documents, digest %016x); grace begins",
                    self._id, entry["index"], shadow, documents, digest)
        return True

    async def _equal_counts(self, old: str, shadow: str, old_map: ShardMap,
                            new_map: ShardMap) -> int:
        """Both indexes' document counts, equal (a write in flight between the two counts
        makes them differ for a moment: counted again, a few times, after the queues drain)."""
        for _ in range(COUNT_ATTEMPTS):
            for node in sorted(self.cluster.serving_nodes()):
                await _drain_queue(self.cluster, node)
            old_count, new_count = await count_both(self.cluster, old, old_map, shadow,
                                                    new_map)
            if old_count == new_count:
                return old_count
        raise CopyIncomplete(f"counts differ: {old} {old_count}, {shadow} {new_count}")

    async def _finish(self) -> None:
        entry = self.entry
        old, shadow = entry["nodeIndex"], entry["shadow"]
        if not entry["finishing"]:
            if self.cluster.now_ms() < entry["flippedAtMs"] + self.settings.grace_ms or \
                    await self._lagging(entry["flipVersion"]):
                return
            await self._update(finishing=True)  # from here on a rollback is refused
        if self.entry.get("unmirrorVersion") is None:
            await self.cluster.layouts.change(lambda now: now.without_mirror(shadow))
            await self._update(unmirrorVersion=self.cluster.layouts.version,
                               unmirroredAtMs=self.cluster.now_ms())
        if await self._lagging(self.entry["unmirrorVersion"]) or \
                self.cluster.now_ms() < self.entry["unmirroredAtMs"] + self.settings.settle_ms:
            return
        await delete_everywhere(self.cluster, old)
        await self.cluster.layouts.change(lambda now: now.with_node_shards(old, None))
        await self._update(state="done", finishedAtMs=self.cluster.now_ms())
        logger.info("reshard %s done: %s deleted", self._id, old)

    async def _abandon(self, final: str, why: str | None) -> str:
        """Drop the mirror (and flip back after the flip), wait until every process announced
        it, delete the shadow; then `final`."""
        entry = self.entry
        old, shadow, uid = entry["nodeIndex"], entry["shadow"], entry["index"]
        if not entry.get("abandoning"):
            errors = entry["errors"] if why is None else [*entry["errors"], why][-10:]
            if shadow is not None:
                def back(now):
                    if now.node_index(uid) == shadow:
                        now = now.flipped(uid, old, mirror_back=False)
                    return now.without_mirror(old).without_mirror(shadow)

                await self.cluster.layouts.change(back)
            await self._update(abandoning=final, errors=errors,
                               abandonVersion=self.cluster.layouts.version,
                               unmirroredAtMs=self.cluster.now_ms())
            logger.warning("reshard %s: %s (%s)", self._id, final, why or "rollback requested")
        if shadow is not None:
            if await self._lagging(self.entry["abandonVersion"]) or self.cluster.now_ms() < \
                    self.entry["unmirroredAtMs"] + self.settings.settle_ms:
                return self.entry["state"]
            try:
                await delete_everywhere(self.cluster, shadow)
            except CopyIncomplete as why_not:
                await self._error(f"deleting {shadow}: {why_not}")
                return self.entry["state"]
            await self.cluster.layouts.change(
                lambda now: now.with_node_shards(shadow, None).without_reserved(shadow))
        await self._update(state=final, finishedAtMs=self.cluster.now_ms())
        return final

    # ---- helpers

    async def _lagging(self, version: int) -> bool:
        await self.cluster.layouts.current()
        behind = sorted(await lagging_layouts(self.cluster, version))
        if behind != self.entry.get("waitingFor", []):
            await self._update(waitingFor=behind)
        return bool(behind)

    async def _node_indexes(self) -> set[str]:
        names: set[str] = set()
        for node in self.cluster.serving_nodes():
            answer = await self.cluster.call(node, "GET", "/indexes?limit=10000")
            if isinstance(answer, NodeResponse) and answer.ok:
                names.update(i["uid"] for i in answer.json()["results"])
        return names

    async def _error(self, why: str) -> None:
        logger.warning("reshard %s: %s (retried on the next pass)", self._id, why)
        await self._update(errors=[*self.entry["errors"], why][-10:])

    async def _update(self, **changes: Any) -> None:
        await self._renew()
        assert self._record is not None
        before = self.entry
        if "state" in changes:
            assert can_move(before["state"], changes["state"]), (before["state"], changes)
        after = {**before, **changes}
        value = {**self._record.value, "reshards": [
            after if r["id"] == self._id else r for r in self._record.value["reshards"]]}
        stored = await self.cluster.store.put_record_if(RESHARDS_RECORD, self._record.version,
                                                        value)
        if stored is None:
            raise LeaseLost()  # a rollback request (or another holder) changed it: read again
        self._record = stored
        for observer in self.observers:
            observer(after)
