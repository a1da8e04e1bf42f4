"""Copying one shard replica to a new owner while clients keep writing: what to copy again.

Theory of operation. During a move, every client write and delete reaches the old owner (the
source) and the new owner (the target) alike (dual write), in each node's own queue order. So
client traffic alone never makes the two diverge; only the copy can, because it writes onto the
target a version it read from the source earlier: a client's newer write (or delete) may have
reached the target in between, and the copy then overwrites (or resurrects) it.

The engine therefore compares after the copy. It first waits until the source has processed
every task enqueued before the comparison starts (every acknowledged client write is in that
queue), then reads both sides' documents of the shard and calls `reconcile`:
- a document the source has and the target lacks or holds differently is copied again from the
  source (the source's version is the acknowledged one);
- a document the target has and the source lacks is deleted on the target only if the target got
  it from the copy (`copied`): one the copy never wrote came from a client write that has not
  reached the source's answers yet, and deleting it would lose an acknowledged write.
Rounds repeat until one finds nothing to do (`Reconcile.clean`); that comparison, with counts and
content digests equal, is the verification before cutover.

Must never: do I/O. Documents are compared by `document_digest`, a hash of their canonical JSON.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import attrs
import orjson
import xxhash


def document_digest(document: Mapping[str, Any]) -> int:
    """A content hash of a document, independent of key order."""
    return xxhash.xxh64_intdigest(orjson.dumps(document, option=orjson.OPT_SORT_KEYS))


@attrs.frozen
class Reconcile:
    """One comparison's verdict: ids to copy again from the source, ids to delete on the target."""

    recopy: tuple[Hashable, ...]
    delete: tuple[Hashable, ...]

    @property
    def clean(self) -> bool:
        return not self.recopy and not self.delete


def reconcile(
    source: Mapping[Hashable, int], target: Mapping[Hashable, int], copied: Iterable[Hashable]
) -> Reconcile:
    """Compare the shard's documents (id -> digest) on both sides; see the module docstring."""
    copied = set(copied)
    recopy = [i for i, digest in source.items() if target.get(i) != digest]
    delete = [i for i in target if i not in source and i in copied]
    return Reconcile(tuple(sorted(recopy, key=str)), tuple(sorted(delete, key=str)))


def content_digest(documents: Mapping[Hashable, int]) -> int:
    """One digest of a whole shard copy (id -> document digest), order-independent: what the
    verification compares and the progress report shows."""
    return xxhash.xxh64_intdigest(orjson.dumps(sorted((str(i), d) for i, d in documents.items())))
