"""Index layouts in the store, as one process follows and changes them.

Owns `LayoutCache` (one per `Cluster`, as `cluster.layouts`): this process's copy of the
layouts record (`miroir.core.index_layout`), and the only way it changes.

Theory of operation. Everything below the proxy's handlers speaks node-side index names: the
proxy resolves a client uid once per request (`node_index`), and the cluster's paths, the
index catalog (keyed by node-side name: the primary key and settings belong to the data), the
settings versions, repair, reconcile and the rebalancer all work on what the nodes hold. What
goes back to a client is turned into client uids again (`client_uid`, `client_text`).

The record is read at most once per `check_interval_s` (1 s), never once per request: a change
made by any process reaches every process within about a second. A change is a compare-and-set
of the whole record (`change`), retried on a lost race, so a swap of several indexes is one
write and no process ever sees half of it; this process sees its own change at once. When the
store cannot be read, the last copy read is kept (a process that never read one fails the
request: routing by a guess could write into another index's data).

Must never: read the store on every request, or let a client see a node-side name.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable

import trio

from miroir.core.index_layout import LAYOUTS_RECORD, Layouts, decode_layouts, encode_layouts
from miroir.store.base import Store, StoreError

logger = logging.getLogger("miroir.layouts")

CHECK_INTERVAL_S = 1.0


class LayoutCache:
    """This process's copy of the layouts record, re-read at most once per interval."""

    def __init__(self, store: Store, *, check_interval_s: float = CHECK_INTERVAL_S) -> None:
        self._store = store
        self.check_interval_s = check_interval_s
        self._layouts: Layouts | None = None
        self._version = 0
        self._read_at = float("-inf")
        self._reading = False

    @property
    def version(self) -> int:
        """The version of the record this copy is (0: none stored); what this process announces
        it routes by (`topology_sync.announce`), so a reshard knows every process mirrors."""
        return self._version

    def cached(self) -> Layouts:
        """The last copy read (no layout before the first read): for rendering, never routing."""
        return self._layouts if self._layouts is not None else Layouts()

    async def current(self) -> Layouts:
        """The layouts, re-read when the copy is older than the interval (one read at a time:
        lookups meanwhile use the copy)."""
        now = trio.current_time()
        if self._layouts is not None and (now - self._read_at < self.check_interval_s
                                          or self._reading):
            return self._layouts
        self._reading = True
        try:
            record = await self._store.get_record(LAYOUTS_RECORD)
            layouts = decode_layouts(None if record is None else record.value)
        except (StoreError, ValueError) as error:
            if self._layouts is None:
                raise StoreError(f"the index layouts cannot be read: {error}") from error
            logger.warning("index layouts: cannot read the record (%s); keeping the copy read "
                           "%.1f s ago", error, now - self._read_at)
            self._read_at = now
            return self._layouts
        finally:
            self._reading = False
        self._adopt(layouts, 0 if record is None else record.version, now)
        return layouts

    def _adopt(self, layouts: Layouts, version: int, now: float) -> None:
        if version >= self._version or self._layouts is None:
            self._layouts, self._version = layouts, version
        self._read_at = now

    async def refresh(self) -> Layouts:
        """Read the record now, whatever the copy's age (before a change's checks)."""
        self._read_at = float("-inf")
        return await self.current()

    async def node_index(
        self, uid: str, existing: Callable[[], Awaitable[Iterable[str]]] | None = None
    ) -> str:
        """The node-side index holding client `uid`. A uid that names no data yet (its index
        was renamed away or its node index aliased to another uid) gets a fresh name, stored
        before it is used; `existing` lists the node-side indexes the nodes hold, so the fresh
        name is none of them."""
        found = (await self.current()).node_index(uid)
        if found is not None:
            return found
        taken = frozenset(await existing()) if existing is not None else frozenset()
        layouts = await self.change(lambda now: now if now.node_index(uid) is not None
                                    else now.with_fresh_node_index(uid, taken)[0])
        name = layouts.node_index(uid)
        assert name is not None  # with_fresh_node_index just gave it one
        return name

    def client_uid(self, node_index: str) -> str | None:
        """The client uid `node_index` belongs to, from the copy (None: no uid reaches it)."""
        return self.cached().client_uid(node_index)

    def client_text(self, text: str, node_index: str, uid: str) -> str:
        """`text` (a node's message) with the node-side name in backquotes put as the
        client's uid, the way Meilisearch quotes an index uid."""
        if node_index == uid:
            return text
        return text.replace(f"`{node_index}`", f"`{uid}`")

    async def change(self, change: Callable[[Layouts], Layouts]) -> Layouts:
        """Replace the record by `change(current)` with a compare-and-set, again on a lost race
        (`change` must be pure; it may raise to change nothing). Returns what was stored."""
        while True:
            record = await self._store.get_record(LAYOUTS_RECORD)
            version = 0 if record is None else record.version
            before = decode_layouts(None if record is None else record.value)
            after = change(before)
            if after == before:
                self._adopt(before, version, trio.current_time())
                return before
            stored = await self._store.put_record_if(LAYOUTS_RECORD, version,
                                                     encode_layouts(after))
            if stored is not None:
                self._adopt(after, stored.version, trio.current_time())
                logger.info("index layouts: version %d stored", stored.version)
                return after
