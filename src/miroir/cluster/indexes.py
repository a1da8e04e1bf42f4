"""An index's facts, from the catalog or from a serving node: existence, primary key, settings.

Owns the lookups that fill `cluster.catalog` (see `miroir.cluster.catalog` for when an entry is
trusted): `index_exists` and `primary_key` (GET /indexes/{uid}), `index_settings`
(GET /indexes/{uid}/settings). A lookup asks the serving nodes as a hedged race under one node
timeout in all, so an operation that needs one (a search: settings; a write after the index
changed: its primary key) spends at most one node timeout on it whatever the nodes do (two
when the first answer is a 404: the index is missing only when no serving node has it). Each
takes the catalog entry before asking a
node and files what it learns there, so an answer that straddles a change of the index is
dropped with the entry's old version. It must never render HTTP and never invalidate the
catalog itself (a change is `IndexCatalog.changed`, called by the code that made it).
"""

from __future__ import annotations

from typing import Any

import trio

from miroir.cluster.runtime import Cluster, NodeRejected
from miroir.core.errors import MeiliError
from miroir.transport.base import NodeResponse, NodeResult, is_node_failure

# A lookup asks the next serving node after this share of the node timeout in silence.
HEDGE_SHARE = 0.25


async def _ask_serving_nodes(cluster: Cluster, path: str) -> NodeResult | None:
    """GET `path` from the first serving node that answers, within one node timeout in all."""
    timeout_s = cluster.settings.node_timeout_ms / 1000
    return await cluster.first_success(
        cluster.serving_nodes(), "GET", path,
        stagger_s=timeout_s * HEDGE_SHARE, deadline=trio.current_time() + timeout_s,
    )


async def _held_by_any_serving_node(
    cluster: Cluster, path: str, not_found: NodeResult
) -> NodeResult:
    """After one serving node answered 404 for `path`: the first serving node (in their order)
    that has it, asked all at once within one node timeout; `not_found` when none does.

    One node's 404 is not the cluster's: a node that lost its state unnoticed (wiped and
    restarted between two health probes; the repair sweep takes a few seconds to see it)
    answers 404 for an index every other node holds. Believed, it made a write or a settings
    change "create" the index, which the other nodes refused with `index_already_exists`, and
    the client's write failed (seed 306 of tests/properties/test_sim_reshard.py)."""
    nodes = cluster.serving_nodes()
    if len(nodes) < 2:
        return not_found
    answers = await cluster.fan_out(nodes, "GET", path)
    for node in nodes:
        answer = answers.get(node)
        if isinstance(answer, NodeResponse) and answer.ok:
            return answer
    return not_found


async def _read_index(cluster: Cluster, uid: str) -> NodeResult | None:
    """GET /indexes/{uid} from a serving node (any serving node that has it, when the first
    to answer says 404); the primary key it shows is filed in the catalog."""
    entry = await cluster.catalog.entry(uid)
    result = await _ask_serving_nodes(cluster, f"/indexes/{uid}")
    if isinstance(result, NodeResponse) and result.status == 404:
        result = await _held_by_any_serving_node(cluster, f"/indexes/{uid}", result)
    if isinstance(result, NodeResponse) and result.ok:
        key = result.json().get("primaryKey")
        if isinstance(key, str):
            entry.primary_key = key
    return result


async def index_exists(cluster: Cluster, uid: str) -> dict[str, Any] | None:
    """The index object from a serving node, None when the index does not exist.

    Raises NodeRejected for any other refusal and `miroir_node_unavailable` when no node
    answered.
    """
    result = await _read_index(cluster, uid)
    if isinstance(result, NodeResponse):
        if result.ok:
            return result.json()
        if result.status == 404:
            return None
        if result.status < 500:
            raise NodeRejected(result)
    raise MeiliError("miroir_node_unavailable", f"No node could answer for index `{uid}`.")


async def known_primary_key(cluster: Cluster, uid: str) -> str | None:
    """The primary key if the catalog knows it; None otherwise (no node is asked)."""
    return (await cluster.catalog.entry(uid)).primary_key


async def primary_key(cluster: Cluster, uid: str) -> str | None:
    """The index's primary key; None while it has none.

    Raises `NodeRejected` with the node's answer when the index does not exist."""
    known = await known_primary_key(cluster, uid)
    if known is not None:
        return known
    result = await _read_index(cluster, uid)
    if not isinstance(result, NodeResponse) or is_node_failure(result):
        raise MeiliError("miroir_node_unavailable", "No node could be reached for the index.")
    if not result.ok:
        raise NodeRejected(result)
    key = result.json().get("primaryKey")
    return key if isinstance(key, str) else None


async def index_settings(cluster: Cluster, uid: str) -> dict[str, Any]:
    """The index's settings as one node reports them (kept in the catalog).

    Raises `NodeRejected` with the node's answer when it refuses (e.g. `index_not_found`), and
    `miroir_node_unavailable` when no serving node answers.
    """
    entry = await cluster.catalog.entry(uid)
    if entry.settings is not None:
        return entry.settings
    result = await _ask_serving_nodes(cluster, f"/indexes/{uid}/settings")
    if not isinstance(result, NodeResponse) or is_node_failure(result):
        raise MeiliError("miroir_node_unavailable", "No node could be reached for the index settings.")
    if not result.ok:
        raise NodeRejected(result)
    entry.settings = settings = result.json()
    return settings

