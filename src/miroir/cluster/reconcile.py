"""Anti-entropy: a background pass that makes every replica of every shard agree again.

Owns the reconciler (`Reconciler`), a service `run_services` starts. Writes go to every owner,
but a replica can still miss one and nobody would notice until a client reads it: a node edited
behind Miroir's back, a write whose answer was lost, a repair that copied a snapshot. The repair
worker only looks at nodes coming back from `failed`; this service looks at every serving node,
all the time, slowly.

Theory of operation. One *pass* visits every index a serving node lists, then sleeps
`interval_s`. Per index:

1. Settings (`miroir.cluster.settings_sync`). The committed settings are the reference; an
   index with none yet commits what most writable nodes hold (ties: the lowest node id's). A
   node whose settings digest differs from the reference, or whose recorded version is behind,
   gets the committed settings written and read back (`repair_node_settings`); the catalog is
   told, so reads return to it. Skipped while a settings change holds the index's settings lease
   (`settings:<uid>`), so a change being applied is never "repaired" back.
2. Documents, per shard of the index's own shard count (`Cluster.shard_map_for`), when no task of the index is unfinished (a write in flight is a
   difference that heals by itself). Every serving owner of the shard (all groups) is asked for
   its count, then for its documents in pages of `page_size` (POST /documents/fetch filtered on
   `_miroir_shard`), each reduced to a SHA-256 of its canonical JSON; a shard whose owners hold
   equal counts and equal digests is consistent. Otherwise each id whose versions differ is
   read again from every owner (a write may have landed meanwhile), and if it still differs,
   every owner that does not hold the majority version is repaired: written the majority's
   document, or sent a delete when most owners lack it. A tie (one owner against one) goes to
   the version held by the owner that ranks first for the shard in the lowest group (placement
   order): Miroir keeps no per-document history to know better, and any fixed choice makes the
   replicas agree; the tie is counted (`ties`) so an operator can see how often that happened.
   Between shards the pass sleeps `shard_pause_s`: the rate limit.

What it found is in `report` (rendered by GET /_miroir/consistency, counted by the metrics):
passes, when the last one started and finished, and per index the lagging/repaired nodes and
the differing documents found and repaired.

Residual race, accepted: a client write that reaches an owner between the second read and the
repair write can be overwritten there by the older majority version; the next pass sees the
difference again and repairs it from the new majority.

Must never: repair a node that is joining or failed (the repair worker owns those), repair
during a settings change, or raise out of `run` for a node or store failure (the next pass
retries).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import orjson
import trio

from miroir.cluster import settings_sync
from miroir.cluster.runtime import Cluster, task_uid_of
from miroir.core.routing import SHARD_FIELD
from miroir.core.tasks import ENQUEUED, PROCESSING, TaskQuery
from miroir.core.topology import ShardMap
from miroir.store.base import StoreError
from miroir.transport.base import NodeResponse

logger = logging.getLogger("miroir.reconcile")

INTERVAL_S = 60.0
SHARD_PAUSE_S = 0.05
PAGE_SIZE = 1000
ABSENT = "<absent>"

# observer(event, kind, count): event "pass" | "differences" | "repairs"; kind "settings" |
# "documents" (empty for "pass").
ReconcileObserver = Callable[[str, str, int], None]


class PassIncomplete(Exception):
    """A node did not answer: this index or shard is left for the next pass."""


@attrs.define
class IndexReport:
    lagging_settings: list[str] = attrs.field(factory=list)
    repaired_settings: list[str] = attrs.field(factory=list)
    shards_checked: int = 0
    shards_differing: list[int] = attrs.field(factory=list)
    documents_differing: int = 0
    documents_repaired: int = 0
    ties: int = 0
    skipped: str | None = None

    def render(self) -> dict[str, Any]:
        return {
            "settings": {"lagging": self.lagging_settings, "repaired": self.repaired_settings},
            "documents": {
                "shardsChecked": self.shards_checked,
                "shardsDiffering": self.shards_differing,
                "documentsDiffering": self.documents_differing,
                "documentsRepaired": self.documents_repaired,
                "ties": self.ties,
            },
            "skipped": self.skipped,
        }


@attrs.define
class ConsistencyReport:
    passes: int = 0
    last_started_ms: int | None = None
    last_finished_ms: int | None = None
    indexes: dict[str, IndexReport] = attrs.field(factory=dict)  # the last finished pass
    totals: Counter[str] = attrs.field(factory=Counter)

    def render(self) -> dict[str, Any]:
        return {
            "passes": self.passes,
            "lastPassStartedAt": self.last_started_ms,
            "lastPassFinishedAt": self.last_finished_ms,
            "indexes": {uid: report.render() for uid, report in sorted(self.indexes.items())},
            "totals": dict(sorted(self.totals.items())),
        }


settings_lease = settings_sync.settings_lease


def document_digest(document: Mapping[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


majority_version = settings_sync.majority_version


def preference(shard_map: ShardMap, shard: int, owners: list[str]) -> list[str]:
    """Owners in placement order (the index's map), lowest group first: the tie-break order."""
    ranked = [n for g in range(shard_map.replica_groups) for n in shard_map.owners(g, shard)]
    return sorted(owners, key=ranked.index)


class Reconciler:
    """The anti-entropy service; see the module docstring."""

    def __init__(self, cluster: Cluster, *, interval_s: float = INTERVAL_S,
                 shard_pause_s: float = SHARD_PAUSE_S, page_size: int = PAGE_SIZE) -> None:
        self.cluster = cluster
        self.interval_s = interval_s
        self.shard_pause_s = shard_pause_s
        self.page_size = page_size
        self.report = ConsistencyReport()
        self.observers: list[ReconcileObserver] = []
        self.holder = f"reconciler-{os.getpid()}-{id(self)}"
        self._one_pass_at_a_time = trio.Lock()

    def _note(self, event: str, kind: str, count: int = 1) -> None:
        self.report.totals[f"{event}:{kind}" if kind else event] += count
        for observer in self.observers:
            observer(event, kind, count)

    async def run(self) -> None:
        while True:
            try:
                await self.run_pass()
            except Exception:
                logger.exception("reconciler pass failed; retrying in %.1fs", self.interval_s)
            await trio.sleep(self.interval_s)

    async def run_pass(self) -> ConsistencyReport:
        """One pass over every index (the background loop's, or one an operator asked for with
        POST /_miroir/consistency; a pass asked for while one runs waits for it, then runs)."""
        async with self._one_pass_at_a_time:
            return await self._run_pass()

    async def _run_pass(self) -> ConsistencyReport:
        cluster = self.cluster
        self.report.last_started_ms = cluster.now_ms()
        indexes = await self._indexes()
        found: dict[str, IndexReport] = {}
        for index in indexes:
            uid = index["uid"]
            report = found[uid] = IndexReport()
            try:
                await self._settings(uid, report)
                await self._documents(uid, index.get("primaryKey"), report)
            except (PassIncomplete, StoreError) as why:
                report.skipped = str(why)
        self.report.indexes = found
        self.report.passes += 1
        self.report.last_finished_ms = cluster.now_ms()
        self._note("pass", "")
        return self.report

    async def _indexes(self) -> list[dict[str, Any]]:
        indexes: list[dict[str, Any]] = []
        offset = 0
        while True:
            result = await self.cluster.first_success(
                self.cluster.serving_nodes(), "GET", f"/indexes?offset={offset}&limit=1000")
            if not (isinstance(result, NodeResponse) and result.ok):
                return indexes
            page = result.json()
            indexes.extend(page.get("results") or [])
            offset += 1000
            if offset >= page.get("total", 0):
                return sorted(indexes, key=lambda index: index["uid"])

    # ---- settings

    async def _settings(self, uid: str, report: IndexReport) -> None:
        cluster, store = self.cluster, self.cluster.store
        now = cluster.now_ms()
        if await store.get_lease(settings_lease(uid), now) is not None:
            report.skipped = "a settings change is running"
            return
        nodes = sorted(n for n in cluster.writable_nodes() if n in cluster.serving_nodes())
        if not nodes:
            return
        held = await settings_sync.read_all_settings(cluster, nodes, uid)
        committed = await store.get_committed_settings(uid)
        if committed is None:
            # Only an index Miroir finished creating (`_miroir_shard` filterable): one being
            # created right now must not have its half-made settings committed and "repaired".
            answered = [held[n] for n in nodes if held[n] is not None
                        and SHARD_FIELD in (held[n].get("filterableAttributes") or [])]
            if not answered or 2 * len(answered) <= len(nodes):
                report.skipped = "no committed settings, and most nodes not provisioned yet"
                return
            digests = [settings_sync.settings_digest(s) for s in answered]
            leader, _ = majority_version(digests)
            reference = answered[digests.index(leader)]
            version = await store.allocate_settings_version(uid)
            committed = await store.commit_settings(uid, version, reference)
            for node in nodes:
                if held[node] is not None and \
                        settings_sync.settings_digest(held[node]) == leader:
                    await store.record_settings_version(uid, node, committed.version)
        versions = await store.get_settings_versions(uid)
        digest = settings_sync.settings_digest(committed.settings)
        lagging = [n for n in nodes if held[n] is not None and (
            settings_sync.settings_digest(held[n]) != digest
            or versions.get(n, 0) < committed.version)]
        report.lagging_settings = lagging
        if lagging:
            self._note("differences", "settings", len(lagging))
        changed = False
        for node in lagging:
            if await store.get_lease(settings_lease(uid), cluster.now_ms()) is not None:
                return  # a change started meanwhile: it commits for itself
            if settings_sync.settings_digest(held[node]) == digest:
                await store.record_settings_version(uid, node, committed.version)
                ok = True
            else:
                logger.warning("index %s: node %s does not hold the committed settings "
                               "(version %d); repairing", uid, node, committed.version)
                ok = await settings_sync.repair_node_settings(cluster, uid, node, committed)
            if ok:
                report.repaired_settings.append(node)
                self._note("repairs", "settings")
                changed = True
        if changed:
            await cluster.catalog.changed(uid, same_primary_key=True)

    # ---- documents

    async def _documents(self, uid: str, pk: str | None, report: IndexReport) -> None:
        if pk is None:
            return
        unfinished = await self.cluster.store.list_tasks(TaskQuery(
            statuses=frozenset({ENQUEUED, PROCESSING}), index_uids=frozenset({uid}), limit=1))
        if unfinished.results:
            report.skipped = "tasks of the index are unfinished"
            return
        # The index's own shard count (a reshard may have given it one other than the
        # topology's).
        shard_map = await self.cluster.current_shard_map_for(uid)
        for shard in range(shard_map.shards):
            owners = [node for group in range(shard_map.replica_groups)
                      for node in shard_map.readable_owners(group, shard)]
            if len(owners) > 1:
                await self._shard(uid, pk, shard, owners, report, shard_map)
            await trio.sleep(self.shard_pause_s)

    async def _fetch(self, node: str, uid: str, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        documents: list[dict[str, Any]] = []
        offset = 0
        while True:
            result = await self.cluster.call(
                node, "POST", f"/indexes/{uid}/documents/fetch",
                {**body, "offset": offset, "limit": self.page_size})
            if not (isinstance(result, NodeResponse) and result.ok):
                raise PassIncomplete(f"{node} did not answer a documents fetch on {uid}")
            page = result.json()
            documents.extend(page["results"])
            offset += self.page_size
            if offset >= page["total"] or not page["results"]:
                return documents

    async def _count(self, node: str, uid: str, shard: int) -> int:
        result = await self.cluster.call(
            node, "POST", f"/indexes/{uid}/documents/fetch",
            {"filter": f"{SHARD_FIELD} = {shard}", "limit": 0})
        if not (isinstance(result, NodeResponse) and result.ok):
            raise PassIncomplete(f"{node} did not answer a count on {uid}")
        return int(result.json().get("total", 0))

    async def _versions(self, node: str, uid: str, pk: str,
                        body: Mapping[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
        return {str(doc[pk]): (document_digest(doc), doc)
                for doc in await self._fetch(node, uid, body) if pk in doc}

    async def _shard(self, uid: str, pk: str, shard: int, owners: list[str],
                     report: IndexReport, shard_map: ShardMap) -> None:
        report.shards_checked += 1
        counts = {node: await self._count(node, uid, shard) for node in owners}
        body = {"filter": f"{SHARD_FIELD} = {shard}"}
        held = {node: await self._versions(node, uid, pk, body) for node in owners}
        digests = {node: sorted((i, d) for i, (d, _) in docs.items())
                   for node, docs in held.items()}
        if len(set(counts.values())) == 1 and all(d == digests[owners[0]]
                                                  for d in digests.values()):
            return
        ids = sorted({i for docs in held.values() for i in docs
                      if any(held[n].get(i, (ABSENT,))[0] != docs[i][0] for n in owners)})
        if not ids:
            return
        report.shards_differing.append(shard)
        report.documents_differing += len(ids)
        self._note("differences", "documents", len(ids))
        # A second look at just those ids: a write may have reached some owners meanwhile.
        again = {node: await self._versions(node, uid, pk, {"ids": ids}) for node in owners}
        order = preference(shard_map, shard, owners)
        deletes: dict[str, list[str]] = {}
        writes: dict[str, list[dict[str, Any]]] = {}
        for doc_id in ids:
            versions = [again[n].get(doc_id, (ABSENT, None))[0] for n in order]
            if len(set(versions)) == 1:
                continue
            leader, tie = majority_version(versions)
            report.ties += tie
            # None when the leader is "absent" (a tie won by an owner that lacks it): deleted.
            document = next((again[n].get(doc_id, (ABSENT, None))[1] for n in order
                             if again[n].get(doc_id, (ABSENT,))[0] == leader), None)
            for node, version in zip(order, versions, strict=True):
                if version == leader:
                    continue
                if document is None:
                    deletes.setdefault(node, []).append(doc_id)
                else:
                    writes.setdefault(node, []).append(document)
        for node, documents in sorted(writes.items()):
            if await self._apply(node, "POST", f"/indexes/{uid}/documents?primaryKey={pk}",
                                 documents):
                report.documents_repaired += len(documents)
                self._note("repairs", "documents", len(documents))
        for node, doomed in sorted(deletes.items()):
            if await self._apply(node, "POST", f"/indexes/{uid}/documents/delete-batch", doomed):
                report.documents_repaired += len(doomed)
                self._note("repairs", "documents", len(doomed))

    async def _apply(self, node: str, method: str, path: str, body: Any) -> bool:
        logger.warning("reconciler: %s %s on %s (%d documents)", method, path, node, len(body))
        result = await self.cluster.call(node, method, path, body)
        node_uid = task_uid_of(result)
        if node_uid is None:
            return False
        view = (await self.cluster.wait_for_node_tasks({node: node_uid})).get(node)
        return (view or {}).get("status") == "succeeded"
