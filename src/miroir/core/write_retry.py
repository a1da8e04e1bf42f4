"""Retrying a node write: when it may be sent again, and how a retry avoids a duplicate.

Pure rules for `miroir.cluster.write_retry` (which does the I/O); time is passed in.

Theory of operation. A node write that failed (5xx, reset, refused) or timed out may be sent
again inside the same client write, so one transient failure does not cost the (group, shard)
its quorum. Three things can go wrong with a resend, and each has a rule here:

1. *A duplicate.* A write whose answer was lost (a timeout or a reset after the bytes left) may
   have been enqueued by the node. Every node write carries a tag (`write_key`: SHA-256 over
   node, index, route, body and the client's `Idempotency-Key`, or the write's own nonce
   without one) as the node task's `customMetadata`; before a resend after such an ambiguous
   failure, the caller looks the tag up in the node's recent tasks and *adopts* the task it
   finds. Tags known to name a node task are kept in `RetryCache` (bounded in size and age),
   so a client's retry of a write with the same `Idempotency-Key` (say after a 503) adopts the
   nodes' tasks instead of enqueueing them again.
2. *An older version over a newer one.* Meilisearch applies a node's tasks in enqueue order.
   A resend enqueues the write again, later: if another write of the same shard reached that
   node meanwhile, the resend would put the older documents back over the newer ones on this
   node only, and the replicas would disagree. `WriteOrder` remembers, per (index, node,
   shard), the last write this process sent there; a write may be resent to a node, or adopt
   a cached task, only while it is still the last one for every shard it carries. A delete by
   filter or a delete-all carries every shard (`WHOLE_INDEX`); a settings write carries the
   index's `SETTINGS_SLOT` (only another settings write can be undone by its resend). The
   order is this process's only: see docs/operations.md, "Node-write retries".
3. *Unbounded work.* `RetryBudget` earns `ratio` tokens per first attempt and spends one per
   retry (at most `burst` kept), so a sick fleet is not sent `1 + ratio` times its writes;
   `may_retry` also stops at `max_retries` per node and when the write's deadline leaves less
   than `min_remaining_s` for another attempt.

Must never: read a clock, or allow a resend that is not the last write to its shards.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from enum import Enum

import attrs

from miroir.core.admission import TokenBudget

TAG_PREFIX = "miroir-write:"


def write_key(node: str, index_uid: str, route: str, body: bytes, client_key: str) -> str:
    """The retry cache's key (and the node task's tag) for one node's part of one write.

    `client_key` is the client's `Idempotency-Key` when it sent one (a retry of the same
    request then has the same key), otherwise a nonce of this write (two writes with the same
    body are two writes)."""
    digest = hashlib.sha256()
    for part in (node.encode(), index_uid.encode(), route.encode(), client_key.encode()):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    digest.update(body)
    return digest.hexdigest()[:32]


def tag_of(key: str) -> str:
    """The `customMetadata` a node write carries: finds its node task after a lost answer."""
    return TAG_PREFIX + key


class Failure(Enum):
    """What a failed attempt says about the node's state."""

    NOT_APPLIED = "not_applied"  # refused, reset before sending, a 5xx: nothing was enqueued
    AMBIGUOUS = "ambiguous"  # timed out or reset after sending: it may have been enqueued
    FINAL = "final"  # a 4xx: the node refused the write itself; resending changes nothing


@attrs.define
class RetryBudget(TokenBudget):
    """Tokens for retries: `ratio` per first attempt, one per retry, at most `burst` kept.
    It starts full, so a quiet process's first failure is retried."""

    ratio: float = 0.2
    burst: float = 20.0
    tokens: float = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        if self.tokens is None:
            self.tokens = self.burst


# A settings write's "shard": settings writes of an index are ordered against each other only
# (a settings resend must not undo a later settings change; documents do not conflict with it).
SETTINGS_SLOT = -1
# The shards of a write that touches every document of the index on a node (delete by filter,
# delete all): ordered against every document write of the index on that node.
WHOLE_INDEX: None = None


@attrs.define
class WriteOrder:
    """Per (index, node, shard), the sequence number of the last write this process sent there.

    `sent` records a write's part for a node; `is_last` says whether no later write of any of
    those shards was sent to that node since (the condition for a resend or an adoption).
    `shards` is `WHOLE_INDEX` for a write of every document (it conflicts with every document
    shard, before and after it), or `{SETTINGS_SLOT}` for a settings write. One integer per
    (index, node, shard) ever written and two per (index, node): an index deleted and recreated
    keeps its slots, harmlessly (sequence numbers only grow)."""

    _last: dict[tuple[str, str, int], int] = attrs.field(factory=dict)
    # per (index, node): the last whole-index write, and the last document write of any shard
    _whole: dict[tuple[str, str], int] = attrs.field(factory=dict)
    _any_shard: dict[tuple[str, str], int] = attrs.field(factory=dict)
    _next: int = 0

    def next_write(self) -> int:
        self._next += 1
        return self._next

    def sent(self, index_uid: str, node: str, shards: Iterable[int] | None, seq: int) -> None:
        key = (index_uid, node)
        if shards is WHOLE_INDEX:
            _raise(self._whole, key, seq)
            _raise(self._any_shard, key, seq)
            return
        for shard in shards:
            _raise(self._last, (index_uid, node, shard), seq)
            if shard != SETTINGS_SLOT:
                _raise(self._any_shard, key, seq)

    def is_last(self, index_uid: str, node: str, shards: Iterable[int] | None, seq: int) -> bool:
        key = (index_uid, node)
        if shards is WHOLE_INDEX:
            return self._any_shard.get(key, 0) <= seq
        shards = list(shards)
        if any(shard != SETTINGS_SLOT for shard in shards) and self._whole.get(key, 0) > seq:
            return False
        return all(self._last.get((index_uid, node, shard), 0) <= seq for shard in shards)


def _raise(slots: dict, key: object, seq: int) -> None:
    if slots.get(key, 0) < seq:
        slots[key] = seq


@attrs.frozen
class CachedTask:
    node_task_uid: int
    seq: int  # the write that enqueued it (`WriteOrder`)
    at_s: float


@attrs.define
class RetryCache:
    """key -> the node task a write's part is known to have enqueued; at most `max_entries`
    (oldest dropped first), each for at most `max_age_s`."""

    max_entries: int = 10_000
    max_age_s: float = 300.0
    _entries: OrderedDict[str, CachedTask] = attrs.field(factory=OrderedDict)

    def put(self, key: str, node_task_uid: int, seq: int, now_s: float) -> None:
        self._entries.pop(key, None)
        self._entries[key] = CachedTask(node_task_uid, seq, now_s)
        self._expire(now_s)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def get(self, key: str, now_s: float) -> CachedTask | None:
        self._expire(now_s)
        return self._entries.get(key)

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now_s: float) -> None:
        while self._entries:
            oldest = next(iter(self._entries.values()))
            if now_s - oldest.at_s <= self.max_age_s:
                return
            self._entries.popitem(last=False)


@attrs.frozen
class RetryPolicy:
    max_retries: int = 2
    min_remaining_s: float = 0.01
    retry_timeouts: bool = True


def may_retry(policy: RetryPolicy, failure: Failure, retries_so_far: int, remaining_s: float,
              is_last: bool, timed_out: bool) -> str | None:
    """None when the attempt may be sent again now (the budget is the caller's last check);
    otherwise why not: `final`, `attempts`, `deadline`, `timeout` (retrying timeouts is off) or
    `order` (a later write of its shards reached the node: a resend would go over it)."""
    if failure is Failure.FINAL:
        return "final"
    if retries_so_far >= policy.max_retries:
        return "attempts"
    if timed_out and not policy.retry_timeouts:
        return "timeout"
    if remaining_s < policy.min_remaining_s:
        return "deadline"
    if not is_last:
        return "order"
    return None
