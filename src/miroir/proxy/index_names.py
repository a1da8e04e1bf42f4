"""Client index uids in, node-side index names below, client uids out again.

Theory of operation. A handler resolves the uid of the index a request names once
(`node_index`, from `cluster.layouts`: no store read per request) and hands the node-side name
to the cluster. The pairs a request resolved are remembered in a context variable, so whatever
goes back to the client -- a Miroir error, a node's refusal passed through, an index object --
speaks of the client's uid (`client_text`, `client_uid`). Nothing is remembered for an
index whose two names are equal (the default), so a request without aliases pays one dict
lookup. Each request starts with an empty memory (`forget`, from the app's request hook and the
search lane).

Must never: let a node-side name reach a client, or read the store itself.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

from miroir.cluster import stats
from miroir.cluster.runtime import Cluster
from miroir.core.errors import MeiliError
from miroir.proxy.state import cluster

_QUOTED = re.compile(r"`([^`]*)`")
# node-side name -> client uid, for the indexes this request resolved to another name.
_RESOLVED: ContextVar[dict[str, str] | None] = ContextVar("miroir_resolved_indexes",
                                                          default=None)


def forget() -> None:
    _RESOLVED.set(None)


async def node_index(cluster: Cluster, uid: str) -> str:
    """The node-side index of client `uid` (remembered for the answer's wording). A uid that
    names nothing yet gets a fresh name none of the nodes' indexes has."""

    async def existing() -> list[str]:
        try:
            return await stats.all_index_uids(cluster)
        except stats.StatsUnavailable:
            raise MeiliError("miroir_node_unavailable",
                             "No node could list its indexes.") from None

    name = await cluster.layouts.node_index(uid, existing)
    if name != uid:
        remember(name, uid)
    return name


def remember(name: str, uid: str) -> None:
    resolved = _RESOLVED.get()
    if resolved is None:
        resolved = {}
        _RESOLVED.set(resolved)
    resolved[name] = uid


def resolving() -> bool:
    """Whether this request resolved an index to another node-side name."""
    return bool(_RESOLVED.get())


def client_text(text: str) -> str:
    """`text` with every node-side name this request resolved, in Meilisearch's backquotes,
    put as its client uid."""
    resolved = _RESOLVED.get()
    if not resolved:
        return text
    # One pass, so a swapped pair (a -> b, b -> a) is not turned back by the second name.
    return _QUOTED.sub(lambda m: f"`{resolved.get(m.group(1), m.group(1))}`", text)


def client_uid(name: str) -> str:
    resolved = _RESOLVED.get()
    return name if not resolved else resolved.get(name, name)


async def node_name(uid: str) -> str:
    """`node_index` on this app's cluster: what a handler calls."""
    return await node_index(cluster(), uid)
