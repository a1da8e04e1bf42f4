"""Index layouts: which node-side index holds a client's index, and its shard count.

Theory of operation. Clients name an index by its uid; the nodes hold it under a node-side
index name. Without a record the two are equal and the index has the fleet's shard count (the
topology's S), so data written before layouts existed keeps working with no migration. A
`Layouts` value is every explicit mapping the cluster holds, as one versioned store record
(`LAYOUTS_RECORD`): an alias, a swap, a rename and (later) a reshard are each one
compare-and-set of that record, so no process ever sees half of a swap.

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
RECORD_FORMAT = 1


class LayoutRecordError(ValueError):
    """A stored layouts record that cannot be read (names the field)."""


@attrs.frozen
class IndexLayout:
    """One explicit mapping: the node-side index (None: none yet) and its shard count (None:
    the topology's)."""

    node_index: str | None
    shards: int | None = None


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
    """Every explicit layout, by client uid; and the write mirrors, by node-side index."""

    entries: Mapping[str, IndexLayout] = attrs.field(factory=dict)
    mirrors: Mapping[str, Mirror] = attrs.field(factory=dict)
    # SHIM of branch shardmaps' interface (node-side index -> S), replaced by theirs on merge.
    node_shards: Mapping[str, int] = attrs.field(factory=dict)

    def shards_of(self, node_index: str, default: int) -> int:
        return self.node_shards.get(node_index, default)

    def with_node_shards(self, node_index: str, shards: int | None) -> Layouts:
        rest = {k: v for k, v in self.node_shards.items() if k != node_index}
        return attrs.evolve(self, node_shards=rest if shards is None
                            else {**rest, node_index: shards})

    # ---- resolution

    def node_index(self, uid: str) -> str | None:
        """The node-side index holding `uid`'s data, or None when it names none."""
        entry = self.entries.get(uid)
        if entry is not None:
            return entry.node_index
        return None if uid in self._claimed() else uid

    def shards(self, uid: str, default: int) -> int:
        """`uid`'s shard count: its entry's, or `default` (the topology's S)."""
        entry = self.entries.get(uid)
        return default if entry is None or entry.shards is None else entry.shards

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
        """Each pair's uids exchange their node-side indexes and shard counts. The pairs must
        name each uid once and both uids of a pair must resolve (the caller checked)."""
        entries = dict(self.entries)
        for a, b in pairs:
            layout_a = IndexLayout(self.node_index(a), self.entries.get(a, IndexLayout(a)).shards)
            layout_b = IndexLayout(self.node_index(b), self.entries.get(b, IndexLayout(b)).shards)
            entries[a], entries[b] = layout_b, layout_a
        return attrs.evolve(self, entries=entries)._normalized()

    def renamed(self, old: str, new: str) -> Layouts:
        """`new` takes `old`'s node-side index and shard count; `old` names nothing anymore."""
        entries = dict(self.entries)
        taken = self.entries.get(old, IndexLayout(old)).shards
        entries[new] = IndexLayout(self.node_index(old), taken)
        entries[old] = IndexLayout(None)
        return attrs.evolve(self, entries=entries)._normalized()

    def with_alias(self, alias: str, node_index: str, shards: int | None = None) -> Layouts:
        """`alias` resolves to `node_index`; the uid that resolved to it before names nothing."""
        entries = dict(self.entries)
        holder = self.client_uid(node_index)
        if holder is not None and holder != alias:
            entries[holder] = IndexLayout(None)
        entries[alias] = IndexLayout(node_index, shards)
        return attrs.evolve(self, entries=entries)._normalized()

    def without_alias(self, alias: str) -> Layouts:
        """Forget `alias`'s entry: it names its own node-side index again, if nobody claims it."""
        return attrs.evolve(
            self, entries={u: e for u, e in self.entries.items() if u != alias})._normalized()

    def with_fresh_node_index(
        self, uid: str, existing: Iterable[str] = ()
    ) -> tuple[Layouts, str]:
        """Give `uid` (resolving to None) a node-side name `<uid>--<n>`, the smallest n that
        no entry names and no index in `existing` (the node-side indexes the nodes hold) has.
        The client uid spelled like that name gets an empty entry, so it does not resolve to
        the same node index by default."""
        taken = self._claimed() | frozenset(self.entries) | frozenset(existing)
        n = 1
        while f"{uid}--{n}" in taken:
            n += 1
        name = f"{uid}--{n}"
        shards = self.entries.get(uid, IndexLayout(None)).shards
        entries = {**self.entries, uid: IndexLayout(name, shards), name: IndexLayout(None)}
        return attrs.evolve(self, entries=entries)._normalized(), name

    def _normalized(self) -> Layouts:
        """Drop entries that say what the default says (uid -> itself, S unset): since no
        other entry may claim a uid's own name while it holds it, the default says the same."""
        return attrs.evolve(self, entries={
            uid: entry for uid, entry in sorted(self.entries.items())
            if not (entry.node_index == uid and entry.shards is None)
        }, mirrors=dict(sorted(self.mirrors.items())))

    # ---- write mirrors (a reshard's; `miroir.cluster.reshard`)

    def mirror_of(self, node_index: str) -> Mirror | None:
        """Where writes to `node_index` are mirrored (None: nowhere)."""
        return self.mirrors.get(node_index)

    def with_mirror(self, source: str, target: str, *, required: bool = False) -> Layouts:
        """Writes to `source` also go to `target` (replacing `source`'s mirror, if any)."""
        return attrs.evolve(self, mirrors={**self.mirrors, source: Mirror(target, required)}
                            )._normalized()

    def without_mirror(self, source: str) -> Layouts:
        return attrs.evolve(self, mirrors={k: v for k, v in self.mirrors.items()
                                           if k != source})._normalized()

    def with_reserved(self, node_index: str) -> Layouts:
        """`node_index` (a shadow, named by no uid) stays an orphan: the client uid spelled
        like it resolves to nothing, so no client index is ever created under that name."""
        if node_index in self.entries:
            return self
        return attrs.evolve(self, entries={**self.entries, node_index: IndexLayout(None)}
                            )._normalized()

    def without_reserved(self, node_index: str) -> Layouts:
        """Forget `with_reserved` (the shadow was deleted or became the uid's own)."""
        entry = self.entries.get(node_index)
        if entry is None or entry.node_index is not None:
            return self
        return self.without_alias(node_index)

    def flipped(self, uid: str, to: str, *, mirror_back: bool) -> Layouts:
        """The reshard's flip (and its rollback): `uid` resolves to `to`, whose shard count is
        its own; the index it resolved to before is `to`'s required mirror when `mirror_back`
        (the grace period), and no mirror of `from` to `to` remains."""
        before = self.node_index(uid)
        layouts = self.with_alias(uid, to)
        if before is not None:
            layouts = layouts.without_mirror(before)
            if mirror_back:
                layouts = layouts.with_mirror(to, before, required=True)
        return layouts


# ---- the record


def encode_layouts(layouts: Layouts) -> dict[str, Any]:
    value: dict[str, Any] = {
        "format": RECORD_FORMAT,
        "layouts": {
            uid: {"nodeIndex": e.node_index, "shards": e.shards}
            for uid, e in layouts.entries.items()
        },
    }
    if layouts.node_shards:
        value["nodeShards"] = dict(layouts.node_shards)
    if layouts.mirrors:  # absent when empty: a record without them reads as before
        value["mirrors"] = {
            source: {"nodeIndex": m.node_index, "required": m.required}
            for source, m in layouts.mirrors.items()
        }
    return value


def decode_layouts(value: Mapping[str, Any] | None) -> Layouts:
    """The layouts a record value holds (None: no record, no explicit layout)."""
    if value is None:
        return Layouts()
    found = value.get("format")
    if isinstance(found, bool) or found != RECORD_FORMAT:
        raise LayoutRecordError(f"format: expected {RECORD_FORMAT}, got {found!r}")
    raw = value.get("layouts")
    if not isinstance(raw, Mapping):
        raise LayoutRecordError("layouts: expected an object")
    entries = {}
    for uid, entry in raw.items():
        if not isinstance(entry, Mapping):
            raise LayoutRecordError(f"layouts.{uid}: expected an object")
        node_index, shards = entry.get("nodeIndex"), entry.get("shards")
        if node_index is not None and not isinstance(node_index, str):
            raise LayoutRecordError(f"layouts.{uid}.nodeIndex: expected a string or null")
        if shards is not None and (not isinstance(shards, int) or isinstance(shards, bool)
                                   or shards < 1):
            raise LayoutRecordError(f"layouts.{uid}.shards: expected a positive integer or null")
        entries[uid] = IndexLayout(node_index, shards)
    return Layouts(entries, _decode_mirrors(value.get("mirrors", {})),
                   dict(value.get("nodeShards", {})))


def _decode_mirrors(raw: Any) -> dict[str, Mirror]:
    if not isinstance(raw, Mapping):
        raise LayoutRecordError("mirrors: expected an object")
    mirrors = {}
    for source, mirror in raw.items():
        if not isinstance(mirror, Mapping) or not isinstance(mirror.get("nodeIndex"), str) \
                or not isinstance(mirror.get("required", False), bool):
            raise LayoutRecordError(f"mirrors.{source}: expected {{nodeIndex, required}}")
        mirrors[source] = Mirror(mirror["nodeIndex"], mirror.get("required", False))
    return mirrors
