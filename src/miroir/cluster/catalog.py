"""The index catalog: what one proxy process knows about each index, and when it stops trusting it.

Owns `IndexCatalog` (one per `Cluster`, as `cluster.catalog`) and its `IndexEntry`s. Per index
uid, an entry holds what the request paths need and must not ask a node for on every request:

- `primary_key`: documents are routed by it; the documents listing is ordered by it;
- `settings`: the index's settings as one node reports them (the search plan and merge);
- `unsortable`: the nodes refused to sort a documents listing by the primary key, so the
  listing takes its exhaustive path (`cluster.read_documents`).

Entries are keyed by node-side index name (what the nodes hold: the primary key and settings
belong to the data). The mapping from a client's uid to it is `cluster.layouts`, one record for
every index, so a swap of several indexes is one write; it is re-read at most once a second.

Theory of operation. The store keeps one version per index (`Store.bump_index_version`). The
process that changes an index -- creates, deletes or renames it, sets its primary key or its
settings -- calls `changed` once the change is made (and, for a change the nodes apply after the
client was answered, again when its task finishes): that bumps the version and drops this
process's entry. `changed` is the only way an entry is invalidated.

Every entry is stamped with the store's version it was started under. `entry(uid)` trusts an
entry for `check_interval_s` (1 s) after it last compared that stamp with the store; the first
lookup after that reads the store's version (one small read per index per interval, never one
per request, and one at a time: lookups meanwhile keep the entry) and starts a fresh, empty entry
if it moved. So a change made through any process reaches every process within about a second.
Fields are filled by whoever learns them (`cluster.indexes`, `cluster.read_documents`), on the
entry they got *before* asking a node: an answer that straddles a change is filed under the
older stamp, and is dropped with it at the next check.

When the store cannot be read, a fresh entry is started with an unknown version (never equal to
anything): the process then re-reads what it needs from the nodes once per interval, as a
time-to-live cache would, rather than failing reads because the store is away.

Must never: be written to by the proxy (it calls cluster functions), let an entry outlive a
version change it has seen, or read the store on every request.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import trio

from miroir.store.base import Store, StoreError

logger = logging.getLogger("miroir.catalog")

# How long an entry is used without comparing its version with the store's.
CHECK_INTERVAL_S = 1.0


@attrs.define(eq=False)
class IndexEntry:
    """What this process knows about one index, as of store version `version` (None: unknown)."""

    version: int | None
    checked_at: float  # trio time of the last comparison with the store
    primary_key: str | None = None
    settings: dict[str, Any] | None = None
    unsortable: bool = False
    # Nodes behind the index's committed settings version: not read from for this index
    # (`miroir.cluster.settings_sync.read_map`); None until looked up.
    lagging: frozenset[str] | None = None


class IndexCatalog:
    """Per index uid, one `IndexEntry` checked against the store's index version."""

    def __init__(self, store: Store, *, check_interval_s: float = CHECK_INTERVAL_S) -> None:
        self._store = store
        self.check_interval_s = check_interval_s
        self._entries: dict[str, IndexEntry] = {}
        # Counts this process's `changed` calls: a version read that overlapped one is read
        # again, since it may predate the bump.
        self._changes = 0

    async def entry(self, uid: str) -> IndexEntry:
        """The entry for `uid`: the cached one while it is fresh or still at the store's
        version, else a new empty one at the store's version."""
        now = trio.current_time()
        entry = self._entries.get(uid)
        if entry is not None and now - entry.checked_at < self.check_interval_s:
            return entry
        if entry is not None:
            entry.checked_at = now  # one check at a time; other lookups keep the entry meanwhile
        version = await self._store_version(uid)
        current = self._entries.get(uid)
        if version is not None and current is not None and current.version == version:
            current.checked_at = now
            return current  # unchanged (or another lookup started this version's entry)
        fresh = self._entries[uid] = IndexEntry(version, now)
        return fresh

    async def _store_version(self, uid: str) -> int | None:
        while True:
            changes = self._changes
            try:
                version = await self._store.get_index_version(uid)
            except StoreError as error:
                logger.warning("index catalog: cannot read the version of index %r (%s); "
                               "re-reading it from the nodes until the store answers", uid, error)
                return None
            if changes == self._changes:
                return version

    async def changed(
        self, uid: str, *, primary_key: str | None = None, same_primary_key: bool = False
    ) -> None:
        """Index `uid` was just changed by this process: bump its version in the store, so every
        process drops what it knows within `check_interval_s`, and drop this process's entry now.

        `primary_key`: the key the change left the index with, when the caller knows it (saves
        asking a node for it again). `same_primary_key`: the change cannot have touched the key
        (a settings update): the entry's key is carried to the new version, but only when no
        other change came in between (the bump is the entry's version plus one), so a key that
        cannot have changed is not looked up again, which would make the next write wait on a
        node (and fail if none answers).
        """
        before = self._entries.get(uid)
        self._changes += 1
        self._entries.pop(uid, None)
        version = await self._store.bump_index_version(uid)
        self._changes += 1
        self._entries.pop(uid, None)  # a lookup may have started one under the old version
        if (primary_key is None and same_primary_key and before is not None
                and before.version is not None and version == before.version + 1):
            primary_key = before.primary_key
        if primary_key is not None:
            self._entries[uid] = IndexEntry(version, trio.current_time(), primary_key)
