"""Index layouts: which node-side index holds a client's index, and each node-side index's
shard count.

Theory of operation. Clients name an index by its uid; the nodes hold it under a node-side
index name. Without a record the two are equal and the index has the fleet's shard count (the
topology's S), so data written before layouts existed keeps working with no migration. A
`Layouts` value is every explicit mapping the cluster holds, as one versioned store record
(`LAYOUTS_RECORD`): an alias, a swap, a rename and a reshard are each one compare-and-set of
that record, so no process ever sees half of a swap.

Shard counts (`node_shards`) belong to the node-side index, not to the client's entry: the
count says how the data on the nodes was hashed (`_miroir_shard = hash(id) mod S`), and the data
is the node-side index. So a swap, rename or alias moves a uid's S with its node index and needs
no shard handling; a node-side index without an entry has the topology's S. The entry is set by
the reshard engine (before it creates the shadow index) and dropped with the index
(`with_node_shards(name, None)`, on DELETE /indexes/{uid}); a fresh node-side name is never one
that still has an entry, so a new index cannot inherit a deleted one's S.

Resolution (`node_index`) is a pure function of the value:
- a uid with an entry resolves to the entry's node index (None: the uid names no data: its
  index was renamed away or its node index given to another alias);
- a uid without an entry resolves to itself, unless another entry claims that name, in which
  case it too resolves to None.

So a node-side index belongs to at most one client uid (`client_uid` inverts `node_index`);
every operation here keeps that law, and drops entries equal to the default, so the record
only holds what differs from it. A uid resolving to None gets a fresh node-side name
(`with_fresh_node_index`) the first time a request needs one.

Must never: do I/O, read a clock, or know about nodes (whether a node-side index exists is the
cluster's question, asked before these functions are called).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

LAYOUTS_RECORD = "index-layouts"
# Format 1: entries only (each with a `"shards": null` left over from before shard counts
# moved to the node-side index). Format 2 adds `nodeShards`; it is written only when some
# node-side index has a shard count of its own, so a process that predates shard counts
# refuses such a record (and keeps its last copy) instead of routing an index by the wrong S.
RECORD_FORMAT = 2
READABLE_FORMATS = (1, 2)


class LayoutRecordError(ValueError):
    """A stored layouts record that cannot be read (names the field)."""


@attrs.frozen
class IndexLayout:
    """One explicit mapping: the node-side index (None: none yet)."""

    node_index: str | None


@attrs.frozen
class Mirror:
    """A node-side index that every write to another one is also sent to, routed by its own
    shard count: a reshard's shadow before the flip, the old index during the grace period
    after it (`miroir.cluster.reshard`). `required`: the write is acknowledged only if the
    mirror's owners reached quorum too (else a mirror's failure is only counted)."""

    node_index: str
    required: bool = False


@attrs.frozen
class Layouts:
    """Every explicit layout, by client uid; and the shard count of every node-side index
    whose count is not the topology's."""

    entries: Mapping[str, IndexLayout] = attrs.field(factory=dict)
    node_shards: Mapping[str, int] = attrs.field(factory=dict)
    # Write mirrors by source node-side index (a reshard's; `cluster.reshard_mirror`).
    mirrors: Mapping[str, Mirror] = attrs.field(factory=dict)

    # ---- resolution

    def node_index(self, uid: str) -> str | None:
        """The node-side index holding `uid`'s data, or None when it names none."""
        entry = self.entries.get(uid)
        if entry is not None:
            return entry.node_index
        return None if uid in self._claimed() else uid

    def shards_of(self, node_index: str, default: int) -> int:
        """The shard count of the node-side index `node_index`: its own, or `default` (the
        topology's S)."""
        return self.node_shards.get(node_index, default)

    def client_uid(self, node_index: str) -> str | None:
        """The client uid whose data `node_index` holds (None: an orphan no uid reaches)."""
        for uid, entry in self.entries.items():
            if entry.node_index == node_index:
                return uid
        return None if node_index in self.entries else node_index

    def _claimed(self) -> frozenset[str]:
        return frozenset(e.node_index for e in self.entries.values() if e.node_index is not None)

    # ---- changes (each returns a new, normalized value)

    def swapped(self, pairs: Iterable[tuple[str, str]]) -> Layouts:
        """Each pair's uids exchange their node-side indexes (and so their shard counts). The
        pairs must name each uid once and both uids of a pair must resolve (the caller
        checked)."""
        entries = dict(self.entries)
        for a, b in pairs:
            entries[a], entries[b] = IndexLayout(self.node_index(b)), IndexLayout(self.node_index(a))
        return self._with_entries(entries)

    def renamed(self, old: str, new: str) -> Layouts:
        """`new` takes `old`'s node-side index (and shard count); `old` names nothing anymore."""
        entries = dict(self.entries)
        entries[new] = IndexLayout(self.node_index(old))
        entries[old] = IndexLayout(None)
        return self._with_entries(entries)

    def with_alias(self, alias: str, node_index: str) -> Layouts:
        """`alias` resolves to `node_index`; the uid that resolved to it before names nothing."""
        entries = dict(self.entries)
        holder = self.client_uid(node_index)
        if holder is not None and holder != alias:
            entries[holder] = IndexLayout(None)
        entries[alias] = IndexLayout(node_index)
        return self._with_entries(entries)

    def without_alias(self, alias: str) -> Layouts:
        """Forget `alias`'s entry: it names its own node-side index again, if nobody claims it."""
        return self._with_entries({u: e for u, e in self.entries.items() if u != alias})

    def with_node_shards(self, node_index: str, shards: int | None) -> Layouts:
        """The node-side index `node_index` has `shards` shards (None: the topology's S again,
        e.g. once the index is deleted). Every uid reaching it has that count."""
        if shards is not None and (isinstance(shards, bool) or shards < 1):
            raise ValueError(f"a shard count is a positive integer, not {shards!r}")
        counts = {n: s for n, s in self.node_shards.items() if n != node_index}
        if shards is not None:
            counts[node_index] = shards
        return attrs.evolve(self, node_shards=dict(sorted(counts.items())))

    def with_fresh_node_index(
        self, uid: str, existing: Iterable[str] = ()
    ) -> tuple[Layouts, str]:
        """Give `uid` (resolving to None) a node-side name `<uid>--<n>`, the smallest n that
        no entry names and no index in `existing` (the node-side indexes the nodes hold) has.
        The client uid spelled like that name gets an empty entry, so it does not resolve to
        the same node index by default."""
        taken = (self._claimed() | frozenset(self.entries) | frozenset(self.node_shards)
                 | frozenset(existing))
        n = 1
        while f"{uid}--{n}" in taken:
            n += 1
        name = f"{uid}--{n}"
        entries = {**self.entries, uid: IndexLayout(name), name: IndexLayout(None)}
        return self._with_entries(entries), name

    def _with_entries(self, entries: Mapping[str, IndexLayout]) -> Layouts:
        """These entries (shard counts unchanged), without those that say what the default
        says (uid -> itself): since no other entry may claim a uid's own name while it holds
        it, the default says the same."""
        return attrs.evolve(self, entries={
            uid: entry for uid, entry in sorted(entries.items()) if entry.node_index != uid
        })

    # ---- write mirrors (a reshard's; `miroir.cluster.reshard`)

    def mirror_of(self, node_index: str) -> Mirror | None:
        """Where writes to `node_index` are mirrored (None: nowhere). A mirror links two
        indexes both ways: a write that reaches the mirror's target (sent by a request that
        resolved its uid before the flip, or before a rollback) goes to the source too, so no
        write lands on one side only whichever layout its request resolved by."""
        found = self.mirrors.get(node_index)
        if found is not None:
            return found
        for source, mirror in self.mirrors.items():
            if mirror.node_index == node_index:
                return Mirror(source, mirror.required)
        return None

    def with_mirror(self, source: str, target: str, *, required: bool = False) -> Layouts:
        """Writes to `source` also go to `target` (replacing `source`'s mirror, if any)."""
        return attrs.evolve(self, mirrors=dict(sorted(
            {**self.mirrors, source: Mirror(target, required)}.items())))

    def without_mirror(self, source: str) -> Layouts:
        return attrs.evolve(self, mirrors={k: v for k, v in self.mirrors.items() if k != source})

    def with_reserved(self, node_index: str) -> Layouts:
        """`node_index` (a shadow, named by no uid) stays an orphan: the client uid spelled
        like it resolves to nothing, so no client index is ever created under that name."""
        if node_index in self.entries:
            return self
        return self._with_entries({**self.entries, node_index: IndexLayout(None)})

    def without_reserved(self, node_index: str) -> Layouts:
        """Forget `with_reserved` (the shadow was deleted)."""
        entry = self.entries.get(node_index)
        if entry is None or entry.node_index is not None:
            return self
        return self.without_alias(node_index)

    def flipped(self, uid: str, to: str, *, mirror_back: bool) -> Layouts:
        """The reshard's flip (and its rollback): `uid` resolves to `to` (whose shard count is
        its own); the index it resolved to before becomes `to`'s required mirror when
        `mirror_back` (the grace period), and that index's own mirror is dropped."""
        before = self.node_index(uid)
        layouts = self.with_alias(uid, to)
        if before is not None:
            layouts = layouts.without_mirror(before)
            if mirror_back:
                layouts = layouts.with_mirror(to, before, required=True)
        return layouts


# ---- the record


def encode_layouts(layouts: Layouts) -> dict[str, Any]:
    """The record value: format 1 (what processes before shard counts read) while no node-side
    index has a count of its own, format 2 with `nodeShards` once one has."""
    value: dict[str, Any] = {
        # Mirrors too need format 2: a process that would not mirror must refuse the record.
        "format": RECORD_FORMAT if layouts.node_shards or layouts.mirrors else 1,
        "layouts": {uid: {"nodeIndex": e.node_index} for uid, e in layouts.entries.items()},
    }
    if layouts.node_shards:
        value["nodeShards"] = dict(layouts.node_shards)
    if layouts.mirrors:
        value["mirrors"] = {source: {"nodeIndex": m.node_index, "required": m.required}
                            for source, m in layouts.mirrors.items()}
    return value


def decode_layouts(value: Mapping[str, Any] | None) -> Layouts:
    """The layouts a record value holds (None: no record, no explicit layout)."""
    if value is None:
        return Layouts()
    found = value.get("format")
    if isinstance(found, bool) or found not in READABLE_FORMATS:
        raise LayoutRecordError(f"format: expected one of {READABLE_FORMATS}, got {found!r}")
    raw = value.get("layouts")
    if not isinstance(raw, Mapping):
        raise LayoutRecordError("layouts: expected an object")
    raw_counts = value.get("nodeShards", {})
    if not isinstance(raw_counts, Mapping):
        raise LayoutRecordError("nodeShards: expected an object")
    node_shards = {}
    for node_index, shards in raw_counts.items():
        if not _positive(shards):
            raise LayoutRecordError(f"nodeShards.{node_index}: expected a positive integer")
        node_shards[node_index] = shards
    entries = {}
    for uid, entry in raw.items():
        if not isinstance(entry, Mapping):
            raise LayoutRecordError(f"layouts.{uid}: expected an object")
        node_index, shards = entry.get("nodeIndex"), entry.get("shards")
        if node_index is not None and not isinstance(node_index, str):
            raise LayoutRecordError(f"layouts.{uid}.nodeIndex: expected a string or null")
        # A format-1 entry's own "shards" (always null in practice: nothing ever set it) is
        # read as its node index's count, so no record written before loses a count.
        if shards is not None:
            if not _positive(shards):
                raise LayoutRecordError(
                    f"layouts.{uid}.shards: expected a positive integer or null")
            if node_index is not None:
                node_shards.setdefault(node_index, shards)
        entries[uid] = IndexLayout(node_index)
    return Layouts(entries, dict(sorted(node_shards.items())),
                   _decode_mirrors(value.get("mirrors", {})))


def _decode_mirrors(raw: Any) -> dict[str, Mirror]:
    if not isinstance(raw, Mapping):
        raise LayoutRecordError("mirrors: expected an object")
    mirrors = {}
    for source, mirror in raw.items():
        if not isinstance(mirror, Mapping) or not isinstance(mirror.get("nodeIndex"), str) \
                or not isinstance(mirror.get("required", False), bool):
            raise LayoutRecordError(f"mirrors.{source}: expected {{nodeIndex, required}}")
        mirrors[source] = Mirror(mirror["nodeIndex"], mirror.get("required", False))
    return dict(sorted(mirrors.items()))


def _positive(shards: Any) -> bool:
    return isinstance(shards, int) and not isinstance(shards, bool) and shards >= 1
