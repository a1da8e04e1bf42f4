"""A reshard's node work: create the shadow, copy old shards into it re-hashed, compare the two
and repair what differs, check settings, delete an index everywhere (`miroir.cluster.reshard`
decides when).

Theory of operation. The old index has S shards, the shadow S2; a document of old shard s lands
in shadow shard `shard_for_key(id, S2)`. The copy pages through each old shard (`_miroir_shard =
s`) on one readable owner and writes every page to the shadow's owners of each document's new
shard, `_miroir_shard` set for S2, every write waited for, at most `max_docs_per_second`
(`Pacer`). The comparison (`Converger`) is the cutover-race rule of `core.shard_copy` over the
whole index: once every node processed the tasks enqueued so far, the old index's documents
(one readable owner per old shard) are the truth, and each shadow replica (every owner of every
new shard, each compared on its own) gets again what it lacks or holds differently and loses
what the source no longer has; rounds repeat until one is clean. Mirror writes always reach the
shadow after the old index (`cluster.reshard_mirror`), so a clean round sees every acknowledged
write on both sides.

Every function either succeeds or raises `CopyIncomplete` (the engine retries on its next pass);
none decides anything about the reshard's state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import trio

from miroir.cluster import settings_sync
from miroir.cluster.broadcast import protect_settings_patch
from miroir.cluster.rebalance_nodes import MoveIncomplete, _drain_queue, _node_write
from miroir.cluster.runtime import Cluster
from miroir.cluster.settings_sync import read_node_settings, settings_digest
from miroir.core.documents import document_id
from miroir.core.node_state import NodeState
from miroir.core.placement import shard_for_key
from miroir.core.routing import SHARD_FIELD
from miroir.core.shard_copy import content_digest, document_digest, reconcile
from miroir.core.topology import ShardMap
from miroir.transport.base import NodeResponse

MAX_COMPARE_ROUNDS = 5
CopyIncomplete = MoveIncomplete  # the same "retry on the next pass" as the rebalancer's moves


class Pacer:
    """At most `per_second` documents over a sliding one-second window (the rebalancer's rule)."""

    def __init__(self, per_second: int) -> None:
        self.per_second = per_second
        self._start: float | None = None
        self._docs = 0

    async def pace(self, documents: int) -> None:
        now = trio.current_time()
        if self._start is None or now - self._start >= 1.0:
            self._start, self._docs = now, 0
        self._docs += documents
        await trio.sleep_until(self._start + self._docs / self.per_second)


def _readable(cluster: Cluster, nodes: Iterable[str]) -> list[str]:
    return [n for n in nodes if cluster.state_of(n) not in (NodeState.FAILED, NodeState.REMOVED)]


def source_of(cluster: Cluster, shard_map: ShardMap, shard: int) -> str:
    """One readable owner of `shard` (any group), or CopyIncomplete."""
    for group in range(shard_map.replica_groups):
        found = _readable(cluster, shard_map.owners(group, shard))
        if found:
            return found[0]
    raise CopyIncomplete(f"no readable owner of shard {shard}")


def _strip(document: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != SHARD_FIELD}


async def fetch_all(cluster: Cluster, node: str, index: str, body: dict[str, Any],
                    page_size: int) -> list[dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = await fetch_page(cluster, node, index, body, offset, page_size)
        documents.extend(page["results"])
        offset += page_size
        if offset >= page["total"] or not page["results"]:
            return documents


async def fetch_page(cluster: Cluster, node: str, index: str, body: dict[str, Any], offset: int,
                     limit: int) -> dict[str, Any]:
    answer = await cluster.call(node, "POST", f"/indexes/{index}/documents/fetch",
                                {**body, "offset": offset, "limit": limit})
    if not (isinstance(answer, NodeResponse) and answer.ok):
        raise CopyIncomplete(f"{node} did not answer a documents fetch on {index}")
    return answer.json()


async def write_to(cluster: Cluster, node: str, index: str, pk: str,
                   documents: list[dict[str, Any]]) -> None:
    await _node_write(cluster, node, "POST", f"/indexes/{index}/documents?primaryKey={pk}",
                      documents)


def route(documents: Iterable[dict[str, Any]], pk: str, shard_map: ShardMap
          ) -> dict[str, list[dict[str, Any]]]:
    """Per shadow owner, its documents with `_miroir_shard` computed for the shadow's S."""
    per_node: dict[str, list[dict[str, Any]]] = {}
    for document in documents:
        shard = shard_for_key(document_id(document, pk), shard_map.shards)
        routed = {**_strip(document), SHARD_FIELD: shard}
        for _, node in shard_map.write_targets(shard):
            per_node.setdefault(node, []).append(routed)
    return per_node


async def copy_shard(cluster: Cluster, old: str, shadow: str, pk: str, shard: int,
                     old_map: ShardMap, new_map: ShardMap, page_size: int,
                     written: Callable[[int], Awaitable[None]]) -> None:
    """Page through old shard `shard` and write it into the shadow re-hashed; `written(n)` is
    awaited after every page of n documents (progress, the lease, pacing)."""
    source = source_of(cluster, old_map, shard)
    offset = 0
    while True:
        page = await fetch_page(cluster, source, old, {"filter": f"{SHARD_FIELD} = {shard}"},
                                offset, page_size)
        documents = page["results"]
        if documents:
            for node, batch in sorted(route(documents, pk, new_map).items()):
                if cluster.state_of(node) in (NodeState.FAILED, NodeState.REMOVED):
                    raise CopyIncomplete(f"{node} is {cluster.state_of(node).value}")
                await write_to(cluster, node, shadow, pk, batch)
            await written(len(documents))
        offset += page_size
        if offset >= page["total"] or not documents:
            return


async def count(cluster: Cluster, index: str, shard_map: ShardMap) -> int:
    """Documents in `index`: the sum over its shards, one readable owner each."""
    total = 0
    for shard in range(shard_map.shards):
        node = source_of(cluster, shard_map, shard)
        page = await fetch_page(cluster, node, index, {"filter": f"{SHARD_FIELD} = {shard}"}, 0, 1)
        total += page["total"]
    return total


COUNT_CONCURRENCY = 32


async def count_both(cluster: Cluster, old: str, old_map: ShardMap, shadow: str,
                     new_map: ShardMap) -> tuple[int, int]:
    """Both indexes' document counts taken at about the same moment: every shard of both is
    asked at once (at most COUNT_CONCURRENCY requests in flight). Counted one index after the
    other, a steady stream of inserts lands between the two and the shadow, counted last, is
    always ahead (an acceptance run with a writer adding documents never got past verifying)."""
    totals = {old: 0, shadow: 0}
    failures: list[CopyIncomplete] = []
    limiter = trio.CapacityLimiter(COUNT_CONCURRENCY)

    async def one(index: str, shard_map: ShardMap, shard: int) -> None:
        async with limiter:
            try:
                node = source_of(cluster, shard_map, shard)
                page = await fetch_page(cluster, node, index,
                                        {"filter": f"{SHARD_FIELD} = {shard}"}, 0, 1)
            except CopyIncomplete as why:  # raised once the others finished, not as a group
                failures.append(why)
                return
            totals[index] += page["total"]

    async with trio.open_nursery() as nursery:
        for index, shard_map in ((old, old_map), (shadow, new_map)):
            for shard in range(shard_map.shards):
                nursery.start_soon(one, index, shard_map, shard)
    if failures:
        raise failures[0]
    return totals[old], totals[shadow]


class Converger:
    """The comparison (module docstring): a full round reads both sides and names the
    suspects, the ids that differed; a write that raced the round's reads shows up there too,
    so once every queue drained the suspects alone are read again on both sides and only what
    still differs is repaired (copied again from the old index, or deleted from the shadow: a
    mirror write reaches the shadow after the old index took it, so once the old index's queue
    drained, a document it lacks and the shadow holds is a leftover). A recheck that repaired
    nothing ends it; one that did starts another round."""

    def __init__(self, cluster: Cluster, old: str, shadow: str, pk: str, old_map: ShardMap,
                 new_map: ShardMap, page_size: int,
                 tick: Callable[[], Awaitable[None]] | None = None) -> None:
        self.cluster = cluster
        # Awaited before each shard is read (the engine renews its lease: a comparison of a
        # big index outlasts it otherwise).
        self.tick = tick
        self.old, self.shadow, self.pk = old, shadow, pk
        self.old_map, self.new_map = old_map, new_map
        self.page_size = page_size
        self.recopied = 0

    async def converge(self) -> tuple[int, int]:
        """Rounds until clean; returns the old index's document count and content digest as
        the last full round read them."""
        for _ in range(MAX_COMPARE_ROUNDS):
            await self._drain()
            source = await self._source_digests()
            suspects: dict[tuple[str, int], list[str]] = {}
            for shard in range(self.new_map.shards):
                await self._tick()
                expected = {i: d for i, (d, s) in source.items() if s == shard}
                for node in self._owners(shard):
                    held = await self._digests(node, self.shadow,
                                               {"filter": f"{SHARD_FIELD} = {shard}"})
                    verdict = reconcile(expected, held, held.keys())
                    if not verdict.clean:
                        suspects[(node, shard)] = [str(i) for i in
                                                   (*verdict.recopy, *verdict.delete)]
            summary = len(source), content_digest({i: d for i, (d, _) in source.items()})
            if not suspects:
                return summary
            await self._drain()
            if await self._recheck(suspects):
                return summary
        raise CopyIncomplete(f"{self.shadow} still differed from {self.old} after "
                             f"{MAX_COMPARE_ROUNDS} compares")

    async def _tick(self) -> None:
        if self.tick is not None:
            await self.tick()

    async def _drain(self) -> None:
        for node in sorted(self.cluster.serving_nodes()):
            await _drain_queue(self.cluster, node)

    def _owners(self, shard: int) -> list[str]:
        owners = [n for g in range(self.new_map.replica_groups)
                  for n in self.new_map.owners(g, shard)]
        down = [n for n in owners if n not in _readable(self.cluster, owners)]
        if down:
            raise CopyIncomplete(f"shadow owner {down[0]} of shard {shard} is not readable")
        return owners

    async def _digests(self, node: str, index: str, body: dict[str, Any]) -> dict[str, int]:
        return {document_id(d, self.pk): document_digest(_strip(d))
                for d in await fetch_all(self.cluster, node, index, body, self.page_size)}

    async def _source_digests(self) -> dict[str, tuple[int, int]]:
        """id -> (digest without `_miroir_shard`, its shard under the shadow's S)."""
        found: dict[str, tuple[int, int]] = {}
        for shard in range(self.old_map.shards):
            await self._tick()
            node = source_of(self.cluster, self.old_map, shard)
            for doc_id, digest in (await self._digests(
                    node, self.old, {"filter": f"{SHARD_FIELD} = {shard}"})).items():
                found[doc_id] = (digest, shard_for_key(doc_id, self.new_map.shards))
        return found

    async def _source_documents(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The old index's current version of `ids` (absent: it has none), by id."""
        by_old_shard: dict[int, list[str]] = {}
        for doc_id in ids:
            by_old_shard.setdefault(shard_for_key(doc_id, self.old_map.shards), []).append(doc_id)
        found: dict[str, dict[str, Any]] = {}
        for old_shard, wanted in sorted(by_old_shard.items()):
            reader = source_of(self.cluster, self.old_map, old_shard)
            for start in range(0, len(wanted), self.page_size):
                for d in await fetch_all(self.cluster, reader, self.old,
                                         {"ids": wanted[start:start + self.page_size]},
                                         self.page_size):
                    found[document_id(d, self.pk)] = _strip(d)
        return found

    async def _recheck(self, suspects: dict[tuple[str, int], list[str]]) -> bool:
        """Read the suspects again on both sides and repair what still differs; True when
        nothing needed repair."""
        clean = True
        for (node, shard), ids in sorted(suspects.items()):
            await self._tick()
            now = await self._source_documents(ids)
            held = {}
            for start in range(0, len(ids), self.page_size):
                held.update(await self._digests(node, self.shadow,
                                                {"ids": ids[start:start + self.page_size]}))
            verdict = reconcile({i: document_digest(d) for i, d in now.items()}, held,
                                held.keys())
            if verdict.clean:
                continue
            clean = False
            if verdict.recopy:
                await write_to(self.cluster, node, self.shadow, self.pk,
                               [{**now[str(i)], SHARD_FIELD: shard} for i in verdict.recopy])
                self.recopied += len(verdict.recopy)
            if verdict.delete:
                await _node_write(self.cluster, node, "POST",
                                  f"/indexes/{self.shadow}/documents/delete-batch",
                                  [str(i) for i in verdict.delete])
        return clean


async def create_shadow(cluster: Cluster, old: str, shadow: str, pk: str | None,
                        readers: list[str]) -> None:
    """The shadow on every node with `old`'s primary key and settings, and its settings
    committed (reads of it need a committed version). The settings are `old`'s committed ones:
    a node's copy may have been edited behind Miroir's back or hold a change being applied or
    rolled back, and what is committed for the shadow becomes the index's after the flip (the
    reconciler repairs every node to it). Only an index without committed settings is read
    from a serving node."""
    committed = await cluster.store.get_committed_settings(old)
    settings = None if committed is None else dict(committed.settings)
    for reader in readers if settings is None else ():
        settings = await read_node_settings(cluster, reader, old)
        if settings is not None:
            break
    if settings is None:
        raise CopyIncomplete(f"no serving node answered the settings of {old}")
    nodes = sorted(cluster.all_nodes())
    for node in nodes:
        present = await cluster.call(node, "GET", f"/indexes/{shadow}")
        if not (isinstance(present, NodeResponse) and present.ok):
            await _node_write(cluster, node, "POST", "/indexes", {"uid": shadow, "primaryKey": pk})
        await _node_write(cluster, node, "PATCH", f"/indexes/{shadow}/settings",
                          protect_settings_patch(settings))
    await commit_settings(cluster, shadow, nodes)


async def commit_settings(cluster: Cluster, index: str, nodes: list[str],
                          patched: dict[str, Any] | None = None) -> None:
    """Commit what the nodes now hold as `index`'s settings (`patched`: the keys just written,
    which win over the settings committed before: else the commit would repair the nodes back
    to those)."""
    version = await cluster.store.allocate_settings_version(index)
    committed, lagging = await settings_sync.commit(cluster, index, version, nodes,
                                                    succeeded=True, patched=patched or {})
    if committed is None or lagging:
        raise CopyIncomplete(f"the settings of {index} are not the same on every node")
    await cluster.catalog.changed(index, same_primary_key=True)


async def settings_differ(cluster: Cluster, old: str, shadow: str) -> list[str]:
    """The nodes whose shadow settings differ from the old index's (normalized digests), after
    copying the old index's settings onto them (so the next check can pass). The old index's
    settings are its committed ones when it has some: a node whose copy of the old index was
    edited behind Miroir's back is the reconciler's to repair, and copying each node's own view
    would commit that edit as the shadow's, then the others' on the next pass, and so on (the
    state machine's seed 25433 cycled copying -> verifying until faults were repaired)."""
    differ = []
    nodes = sorted(cluster.serving_nodes())
    sent: dict[str, Any] = {}
    committed = await cluster.store.get_committed_settings(old)
    for node in nodes:
        want = dict(committed.settings) if committed is not None else \
            await read_node_settings(cluster, node, old)
        held = await read_node_settings(cluster, node, shadow)
        if want is None or held is None:
            raise CopyIncomplete(f"{node} did not answer the settings of {old} or {shadow}")
        if settings_digest(want) != settings_digest(held):
            differ.append(node)
            sent = protect_settings_patch(want)
            await _node_write(cluster, node, "PATCH", f"/indexes/{shadow}/settings", sent)
    if differ:
        # Committed as the shadow's settings: the settings sync and the reconciler hold every
        # node to the committed ones (and would undo this otherwise).
        await commit_settings(cluster, shadow, sorted(cluster.all_nodes()), sent)
    return differ


async def delete_everywhere(cluster: Cluster, index: str) -> None:
    """DELETE the node-side index on every node that holds it, waited for; a failed node
    makes it CopyIncomplete (retried)."""
    for node in sorted(cluster.all_nodes()):
        if cluster.state_of(node) is NodeState.REMOVED:
            continue
        present = await cluster.call(node, "GET", f"/indexes/{index}")
        if isinstance(present, NodeResponse) and present.status == 404:
            continue
        if not (isinstance(present, NodeResponse) and present.ok):
            raise CopyIncomplete(f"{node} did not say whether it holds {index}")
        await _node_write(cluster, node, "DELETE", f"/indexes/{index}", None)
    await cluster.store.delete_settings_versions(index)
    await cluster.catalog.changed(index)
