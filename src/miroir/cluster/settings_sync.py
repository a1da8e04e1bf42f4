"""Settings versions: every node of an index on one version of its settings, or not read from.

Owns the settings half of issue #19's "replicas that agree": the commit of a settings change,
which nodes lag behind the committed version, the read path's view of that (`read_map`), and
the repair of one node's settings (the reconciler calls it).

Theory of operation. Every settings change takes a new version (`Store.allocate_settings_version`)
and ends with a *commit*, whether the change succeeded or was rolled back:

1. apply (`broadcast.update_settings`, node by node; on failure, restore the changed nodes);
2. read back every node's settings at once (`commit`). The reference is what Miroir intends:
   after a change, the settings committed before with each patched key as sent when some node
   was read back holding exactly that, else as most nodes read back hold it (their own
   rendering of the patch; `intended_settings`); after a rollback, the settings committed
   before. An index's creation commits its first version (what more than half of the nodes
   hold; no such majority: nothing is committed). Settings are compared through
   `settings_digest` (canonical JSON, keys sorted), so key order never counts as a difference;
3. record the version for every node that holds exactly the reference
   (`Store.record_settings_version`), store the reference as the index's committed settings
   (`Store.commit_settings`), write the reference at once to every node that answered with
   something else (edited behind Miroir's back, missed the rollback), recording each once read
   back, and tell the catalog (`changed`), so every process re-reads.

A node that did not answer the read back or its repair keeps its older version: it *lags*. `read_map` gives the read path the shard map without the index's lagging nodes
(`ShardMap.without_readers`), so a search never mixes answers from nodes on different settings
versions; the node still takes writes. The reconciler (`miroir.cluster.reconcile`) repairs a
lagging node by writing the committed settings to it (`repair_node_settings`), reading them
back, and recording the version, after which the catalog is told and reads return to it. It
also compares every node's digest with the committed one each round, so an edit made behind
Miroir's back is repaired even though the node's recorded version never went down.

Before an index's first settings change through this code there is no committed version, and
no node lags (the index's settings are those its creation gave every node).

Known window: while a change is being applied, nodes already changed and nodes not yet changed
both serve reads (as before this module); the guarantee holds from the commit on.

Must never: record a version for a node that was not read back holding the committed settings,
or lower a committed version.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson
import trio

from miroir.cluster.runtime import Cluster, task_uid_of
from miroir.core.topology import ShardMap
from miroir.store.base import CommittedSettings, StoreError
from miroir.transport.base import NodeResponse

logger = logging.getLogger("miroir.settings")


def settings_lease(uid: str) -> str:
    """The store lease a settings change (and an index creation) holds while it runs: the
    reconciler leaves the index's settings alone meanwhile."""
    return f"settings:{uid}"


def settings_digest(settings: Mapping[str, Any]) -> str:
    """SHA-256 of the settings as canonical JSON (keys sorted): equal settings, equal digests."""
    return hashlib.sha256(orjson.dumps(settings, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def read_node_settings(cluster: Cluster, node: str, uid: str) -> dict[str, Any] | None:
    """The node's settings of `uid`, or None when it did not answer them."""
    result = await cluster.call(node, "GET", f"/indexes/{uid}/settings")
    if isinstance(result, NodeResponse) and result.ok:
        settings = result.json()
        return settings if isinstance(settings, dict) else None
    return None


async def read_all_settings(
    cluster: Cluster, nodes: Sequence[str], uid: str
) -> dict[str, dict[str, Any] | None]:
    """Every node's settings of `uid` at once (one node timeout in all); None where a node did
    not answer them."""
    results = await cluster.fan_out(nodes, "GET", f"/indexes/{uid}/settings")
    held: dict[str, dict[str, Any] | None] = {}
    for node in nodes:
        result = results.get(node)
        settings = result.json() if isinstance(result, NodeResponse) and result.ok else None
        held[node] = settings if isinstance(settings, dict) else None
    return held


def majority_version(versions: Sequence[str]) -> tuple[str, bool]:
    """The version most holders hold (`versions` in preference order) and whether it was a
    tie, broken by that order."""
    counts = Counter(versions)
    best = max(counts.values())
    leaders = [v for v in versions if counts[v] == best]
    return leaders[0], len(set(leaders)) > 1


def strict_majority(held: Mapping[str, Mapping[str, Any] | None],
                    nodes: Sequence[str]) -> Mapping[str, Any] | None:
    """The settings more than half of `nodes` were read back holding, if any."""
    answered = [(n, held[n]) for n in nodes if held[n] is not None]
    if not answered:
        return None
    digests = [settings_digest(s) for _, s in answered]  # type: ignore[arg-type]
    leader, _ = majority_version(digests)
    if 2 * digests.count(leader) <= len(nodes):
        return None
    return answered[digests.index(leader)][1]


def intended_settings(
    previous: Mapping[str, Any], held: Mapping[str, Mapping[str, Any] | None],
    nodes: Sequence[str], patched: Mapping[str, Any] | Iterable[str],
) -> dict[str, Any]:
    """What a change of the `patched` keys should have left: the committed `previous` settings,
    with each patched key as the nodes render the patch. When some node was read back holding
    exactly the value sent, that is it; otherwise (every node renders it its own way) the
    value most nodes hold. The value sent wins even over a majority: a node edited behind
    Miroir's back after it applied the change must not outvote the change, and with a node
    that did not answer, one edited node ties with one right one (seed 69's class of I9)."""
    intended = dict(previous)
    answered = [s for n in nodes if (s := held[n]) is not None]
    sent = patched if isinstance(patched, Mapping) else {}
    for key in patched:
        values = [orjson.dumps(s.get(key), option=orjson.OPT_SORT_KEYS) for s in answered]
        if not values:
            continue
        if key in sent:
            wanted = orjson.dumps(sent[key], option=orjson.OPT_SORT_KEYS)
            if wanted in values:
                intended[key] = orjson.loads(wanted)
                continue
        leader, _ = majority_version(values)  # type: ignore[arg-type]
        intended[key] = orjson.loads(leader)
    return intended


async def commit(
    cluster: Cluster, uid: str, version: int, nodes: Sequence[str], *, succeeded: bool,
    patched: Mapping[str, Any] | Iterable[str] = (),
) -> tuple[CommittedSettings | None, list[str]]:
    """Phase two of a settings change (module docstring): read every node back, record
    `version` for those holding the reference, repair the others at once (they are recorded
    when read back holding it), commit the reference. The reference is, after a change of the
    `patched` keys every node applied, the settings committed before with those keys as most
    nodes now hold them; after a rollback, the settings committed before. Without committed
    settings, it is what more than half the nodes hold. Returns the commit (None, with nothing
    recorded, when there is no reference: the change failed) and the nodes that still lag."""
    store = cluster.store
    held = await read_all_settings(cluster, nodes, uid)
    previous = await store.get_committed_settings(uid)
    reference: Mapping[str, Any] | None
    if previous is None:
        reference = strict_majority(held, nodes)
    elif succeeded:
        reference = intended_settings(previous.settings, held, nodes, patched)
    else:
        reference = previous.settings
    if reference is None:
        return None, list(nodes)
    digest = settings_digest(reference)
    current = [n for n in nodes if held[n] is not None and settings_digest(held[n]) == digest]
    for node in current:
        await store.record_settings_version(uid, node, version)
    committed = await store.commit_settings(uid, version, dict(reference))
    if committed.version == version:
        # A node that answered but holds something else (edited behind Miroir's back, or a
        # rollback missed it) is given the reference now, all of them at once.
        async with trio.open_nursery() as nursery:
            for node in nodes:
                if node not in current and held[node] is not None:
                    nursery.start_soon(_repair_into, cluster, uid, node, committed, current)
    lagging = [n for n in nodes if n not in current]
    if lagging:
        logger.warning("index %s settings version %d: nodes %s lag behind (not readable for it "
                       "until repaired)", uid, version, lagging)
    return committed, lagging


async def lagging_nodes(cluster: Cluster, uid: str) -> tuple[CommittedSettings | None,
                                                              frozenset[str]]:
    """The index's committed settings and the nodes whose recorded version is behind them."""
    store = cluster.store
    committed = await store.get_committed_settings(uid)
    if committed is None:
        return None, frozenset()
    versions = await store.get_settings_versions(uid)
    return committed, frozenset(
        n for n in cluster.all_nodes() if versions.get(n, 0) < committed.version)


async def read_map(cluster: Cluster, uids: Iterable[str]) -> ShardMap:
    """The shard map a read of these indexes uses: theirs (`cluster.shard_map_for`: they must
    share one shard count; a multi-search groups its queries by it first), without every node
    that lags behind the committed settings of one of them. Known per catalog entry (re-read
    when the index changes), so a read costs no store round trip."""
    wanted = set(uids)
    unreadable: set[str] = set()
    for uid in wanted:
        entry = await cluster.catalog.entry(uid)
        if entry.lagging is None:
            try:
                committed, lagging = await lagging_nodes(cluster, uid)
            except StoreError as error:
                logger.warning("settings versions of %r unreadable (%s); reading every node",
                               uid, error)
                committed, lagging = None, frozenset()
            entry.lagging = lagging
            if committed is not None and entry.settings is None:
                entry.settings = committed.settings
        unreadable |= entry.lagging
    shard_map = cluster.shard_map_for(next(iter(wanted))) if wanted else cluster.shard_map
    return shard_map.without_readers(unreadable) if unreadable else shard_map


async def _repair_into(cluster: Cluster, uid: str, node: str, committed: CommittedSettings,
                       current: list[str]) -> None:
    if await repair_node_settings(cluster, uid, node, committed):
        current.append(node)


async def repair_node_settings(cluster: Cluster, uid: str, node: str,
                               committed: CommittedSettings) -> bool:
    """Write the committed settings to `node`, wait for its task, read them back; record the
    version when they match. Returns whether the node now holds them."""
    # The committed settings were read back from a node: `_miroir_shard` is filterable in them.
    result = await cluster.call(node, "PATCH", f"/indexes/{uid}/settings", committed.settings)
    node_uid = task_uid_of(result)
    if node_uid is None:
        return False
    view = (await cluster.wait_for_node_tasks({node: node_uid})).get(node)
    if (view or {}).get("status") != "succeeded":
        return False
    held = await read_node_settings(cluster, node, uid)
    if held is None or settings_digest(held) != settings_digest(committed.settings):
        return False
    await cluster.store.record_settings_version(uid, node, committed.version)
    return True
