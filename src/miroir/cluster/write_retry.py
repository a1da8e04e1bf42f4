"""Node-write retries: a failed or timed-out node write is sent again, never twice applied.

Owns the I/O half of `miroir.core.write_retry` (read its docstring first: the tag, the order
rule, the budget). `Cluster.quorum_write` calls `WriteRetries.plan` for a document write, which
tags every node's call and returns a `RetryPlan`; `miroir.cluster.quorum_write` hands each
failed node result to the plan (`wants`, then `resolve`) and counts what `resolve` returns.
Writes without quorum (a delete by filter or all, sent to every node; one node's settings
step) go through `Cluster.fan_out(retry_as=...)` / `Cluster.write_node`, which use `send_all`.
A settings route takes no `customMetadata` on Meilisearch: such a write (`RetryAs.by_details`)
is not tagged, and its lookup adopts the node's newest task of the type only if that task's
`details` are the body sent.

Theory of operation, per failed node write (inside the client write's deadline,
`write_deadline_s` from its start, which is longer than one node timeout so a timed-out attempt
can be followed by another):

1. A 4xx is the node's verdict, and a refused connection means the node is down (the health
   checker's business): both kept. A failure that may have reached the node (a timeout, a
   reset, a 502/504) is first looked up: the node's most recent tasks of the index
   (`GET /tasks?indexUids=..&types=..&limit=LOOKUP_LIMIT`) are searched for the write's tag
   (`customMetadata`). Found: that task is *adopted* (the node answered after all; counted as
   an acknowledgement with the found task uid). The lookup itself failing: no resend (a
   duplicate could follow); the pair stays missed, as without retries.
2. Otherwise the write is resent (the same body, path and tag) when `core.write_retry.may_retry`
   allows it (attempts, the deadline, `retry_on_timeout`, and: no later write of the same
   shards was sent to this node by this process) and the budget has a token. Each attempt's
   deadline is its start plus the node timeout, capped by the write's deadline.
3. An acknowledgement (first attempt, resend, adoption) of a write carrying the client's
   `Idempotency-Key` is kept in the retry cache; a later write with the same key (the client's
   retry after a 503, whose key was given back) adopts the cached node task instead of sending
   again, under the same order rule.

Every attempt is observed like any node call (metrics, health). Outcomes are told to
`observers` (the metrics hook): `sent` (a resend), `acked` (a resend acknowledged), `adopted`
(a lost answer's task found), `cached` (adopted from the cache before sending),
`lookup_failed`, and `skipped_<reason>` (`attempts`, `deadline`, `timeout`, `order`,
`budget`).

Known window: a request still in flight in the network after its attempt timed out and after
the lookup (longer than a node timeout on the wire) could still be enqueued after a resend;
the reconciler then finds the same documents twice written, which changes nothing.

Must never: resend a write that is not the last one this process sent to those shards of
that node, resend after a failed lookup, or count an attempt's failure and its retry both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote

import attrs
import orjson
import trio

from miroir.cluster.scatter import NodeCall, call_node, scatter
from miroir.core.write_retry import (
    WHOLE_INDEX,
    Failure,
    RetryBudget,
    RetryCache,
    RetryPolicy,
    WriteOrder,
    may_retry,
    tag_of,
    write_key,
)
from miroir.transport.base import FailureKind, NodeResponse, NodeResult, NodeTimeout, Transport

# The client's `Idempotency-Key` of the write running in this context (set by
# `miroir.cluster.idempotency.reserving`): a write's node keys are derived from it.
_CLIENT_KEY: ContextVar[str | None] = ContextVar("miroir_client_idempotency_key", default=None)
LOOKUP_LIMIT = 100
BACKOFF_S = 0.01
_AMBIGUOUS_STATUSES = (502, 504)


@contextlib.contextmanager
def client_key(key: str) -> Iterator[None]:
    """Within this block, writes are the client's attempts at the request keyed `key`."""
    token = _CLIENT_KEY.set(key)
    try:
        yield
    finally:
        _CLIENT_KEY.reset(token)


def current_client_key() -> str | None:
    return _CLIENT_KEY.get()


def failure_of(result: NodeResult) -> Failure | None:
    """None for a 2xx carrying a task uid; else what the failure says about the node."""
    if isinstance(result, NodeResponse):
        if result.ok:
            return None if _task_uid(result) is not None else Failure.FINAL
        if result.status in _AMBIGUOUS_STATUSES:
            return Failure.AMBIGUOUS
        return Failure.NOT_APPLIED if result.status >= 500 else Failure.FINAL
    if result.kind in (FailureKind.TIMEOUT, FailureKind.RESET, FailureKind.PROTOCOL):
        return Failure.AMBIGUOUS
    # Refused: the node is down, not flaky. Resending at once only feeds its health counter
    # more failures (three make it `failed` at once); the health checker owns that node.
    return Failure.FINAL


def _task_uid(result: NodeResponse) -> int | None:
    try:
        uid = result.json().get("taskUid")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return uid if isinstance(uid, int) else None


def adopted_response(node: str, uid: int) -> NodeResponse:
    """What an adopted node task counts as: the 202 the node's lost answer would have been."""
    return NodeResponse(node, 202, (("content-type", "application/json"),),
                        orjson.dumps({"taskUid": uid, "status": "enqueued"}))


@attrs.frozen
class RetryAs:
    """What a node write tells its retries: the index, the node task type (for the lookup),
    each node's shards (for the order rule; `WHOLE_INDEX` for a write of every document, a
    delete by filter or a delete-all), and the write's own identity (its Miroir task uid, or
    a settings version: unique across proxy processes, the key of a write without a client
    `Idempotency-Key`).

    `by_details`: the route takes no `customMetadata` on Meilisearch (settings), so the write
    is not tagged and a lost answer's task is looked up as the node's newest task of the type
    whose `details` are the body sent. `deadline_s` overrides the write's deadline (a settings
    step keeps its one node timeout: its callers' bounds count one per step)."""

    index_uid: str
    task_type: str
    shards: Mapping[str, frozenset[int]] | None
    nonce: int
    by_details: bool = False
    deadline_s: float | None = None

    def shards_of(self, node: str) -> frozenset[int] | None:
        return WHOLE_INDEX if self.shards is None else self.shards.get(node, frozenset())


@attrs.frozen
class WriteRetrySettings:
    max_retries: int = 2  # per node and write; 0 turns retries off
    budget_ratio: float = 0.2
    write_deadline_ms: int = 0  # 0: twice the node timeout
    retry_on_timeout: bool = True
    cache_entries: int = 10_000
    cache_age_s: float = 300.0


class WriteRetries:
    """One process's retry state: the cache, the write order, the budget, the observers."""

    def __init__(self, settings: WriteRetrySettings, node_timeout_ms: int) -> None:
        self.settings = settings
        self.policy = RetryPolicy(max_retries=settings.max_retries,
                                  retry_timeouts=settings.retry_on_timeout)
        self.budget = RetryBudget(ratio=settings.budget_ratio)
        self.cache = RetryCache(settings.cache_entries, settings.cache_age_s)
        self.order = WriteOrder()
        self.node_timeout_s = node_timeout_ms / 1000
        self.write_deadline_s = (settings.write_deadline_ms / 1000 if settings.write_deadline_ms
                                 else 2 * self.node_timeout_s)
        self.observers: list[Callable[[str], None]] = []

    def tell(self, outcome: str) -> None:
        for observer in self.observers:
            observer(outcome)

    def plan(self, transport: Transport, write: RetryAs, calls: Mapping[str, NodeCall],
             headers: tuple[tuple[str, str], ...]) -> RetryPlan:
        """Tag every call with its write key and register the write in the order."""
        index_uid = write.index_uid
        client_key = current_client_key()
        nonce = client_key if client_key is not None else f"write:{write.nonce}"
        seq = self.order.next_write()
        tagged: dict[str, NodeCall] = {}
        keys: dict[str, str] = {}
        for node, call in calls.items():
            route = f"{call.method} {call.path}"
            key = keys[node] = write_key(node, index_uid, route, call.body or b"", nonce)
            if write.by_details:
                tagged[node] = call
                continue
            separator = "&" if "?" in call.path else "?"
            tagged[node] = attrs.evolve(
                call, path=f"{call.path}{separator}customMetadata={quote(tag_of(key))}")
        return RetryPlan(self, transport, write, seq, tagged, keys, client_key is not None,
                         headers)


@attrs.define(eq=False)
class RetryPlan:
    """One write's calls (tagged) and what a failed node's retry needs."""

    retries: WriteRetries
    transport: Transport
    write: RetryAs
    seq: int
    calls: dict[str, NodeCall]
    keys: dict[str, str]
    keyed_by_client: bool
    headers: tuple[tuple[str, str], ...]
    deadline: float = attrs.field(init=False, default=0.0)

    @property
    def index_uid(self) -> str:
        return self.write.index_uid

    def start(self) -> tuple[dict[str, NodeCall], dict[str, NodeResult]]:
        """The calls to send now, and the results known without sending (a cached task of a
        client's earlier attempt at this write). Starts the write's deadline."""
        retries = self.retries
        now = trio.current_time()
        window = self.write.deadline_s
        self.deadline = now + (retries.write_deadline_s if window is None else window)
        to_send: dict[str, NodeCall] = {}
        known: dict[str, NodeResult] = {}
        for node, call in self.calls.items():
            shards = self.write.shards_of(node)
            cached = retries.cache.get(self.keys[node], now) if self.keyed_by_client else None
            if cached is not None and retries.order.is_last(
                    self.index_uid, node, shards, cached.seq):
                known[node] = adopted_response(node, cached.node_task_uid)
                retries.tell("cached")
                continue
            retries.order.sent(self.index_uid, node, shards, self.seq)
            to_send[node] = attrs.evolve(
                call, deadline=min(now + retries.node_timeout_s, self.deadline))
        retries.budget.earn(len(to_send))
        return to_send, known

    def acknowledged(self, node: str, result: NodeResult) -> None:
        """Keep a client-keyed write's node task for the client's retries."""
        if self.keyed_by_client and isinstance(result, NodeResponse) and result.ok:
            uid = _task_uid(result)
            if uid is not None:
                self.retries.cache.put(self.keys[node], uid, self.seq, trio.current_time())

    def wants(self, node: str, result: NodeResult) -> bool:
        """Whether `resolve` may change this result (a failure not final)."""
        failure = failure_of(result)
        return failure is not None and failure is not Failure.FINAL and node in self.calls

    async def resolve(self, node: str, result: NodeResult,
                      observe: Callable[[str, NodeResult], None]) -> NodeResult:
        """The node's final result for this write (see the module docstring)."""
        retries = self.retries
        shards = self.write.shards_of(node)
        attempts = 0
        while True:
            failure = failure_of(result)
            if failure is None or failure is Failure.FINAL:
                return result
            if failure is Failure.AMBIGUOUS:
                found = await self._lookup(node, observe)
                if found is _LOOKUP_FAILED:
                    retries.tell("lookup_failed")
                    return result
                if found is not None:
                    retries.tell("adopted")
                    adopted = adopted_response(node, found)
                    self.acknowledged(node, adopted)
                    return adopted
            remaining = self.deadline - trio.current_time()
            reason = may_retry(retries.policy, failure, attempts, remaining - BACKOFF_S,
                               retries.order.is_last(self.index_uid, node, shards, self.seq),
                               isinstance(result, NodeTimeout))
            if reason is None and not retries.budget.try_spend():
                reason = "budget"
            if reason is not None:
                retries.tell(f"skipped_{reason}")
                return result
            await trio.sleep(BACKOFF_S)
            attempts += 1
            retries.tell("sent")
            started = trio.current_time()
            call = attrs.evolve(self.calls[node],
                                deadline=min(started + retries.node_timeout_s, self.deadline))
            result = await call_node(self.transport, node, call, self.deadline)
            observe(node, result)
            if failure_of(result) is None:
                retries.tell("acked")
                self.acknowledged(node, result)
                return result

    async def _lookup(self, node: str, observe: Callable[[str, NodeResult], None]) -> Any:
        """The uid of the node's task tagged with this write's key (`by_details`: its newest
        task of the type, if its details are the body sent), None if it has none, or
        `_LOOKUP_FAILED` when the node did not say."""
        tag = tag_of(self.keys[node])
        by_details = self.write.by_details
        path = (f"/tasks?indexUids={quote(self.index_uid)}&types={self.write.task_type}"
                f"&limit={1 if by_details else LOOKUP_LIMIT}")
        now = trio.current_time()
        call = NodeCall("GET", path, None, self.headers,
                        min(now + self.retries.node_timeout_s, self.deadline))
        if call.deadline <= now:
            return _LOOKUP_FAILED
        answer = await call_node(self.transport, node, call, self.deadline)
        observe(node, answer)
        if not (isinstance(answer, NodeResponse) and answer.ok):
            return _LOOKUP_FAILED
        try:
            tasks = answer.json().get("results", [])
        except (orjson.JSONDecodeError, AttributeError):
            return _LOOKUP_FAILED
        sent = _canonical(self.calls[node].body) if by_details else None
        for task in tasks:
            if not isinstance(task, dict):
                continue
            if (task.get("customMetadata") == tag if sent is None
                    else _canonical_value(task.get("details")) == sent):
                uid = task.get("uid")
                return uid if isinstance(uid, int) else _LOOKUP_FAILED
        return None


def _canonical(body: bytes | None) -> bytes | None:
    try:
        return _canonical_value(orjson.loads(body or b"null"))
    except orjson.JSONDecodeError:
        return None


def _canonical_value(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


async def send_all(plan: RetryPlan, deadline: float,
                   observe: Callable[[str, NodeResult], None]) -> dict[str, NodeResult]:
    """Send a plan's calls at once (no quorum: a broadcast, or one node's write) and return each
    node's final result, every failure the plan wants resolved (resent or adopted) first."""
    to_send, known = plan.start()
    final: dict[str, NodeResult] = dict(known)

    async def resolved(node: str, first: NodeResult) -> None:
        final[node] = await plan.resolve(node, first, observe)

    async with trio.open_nursery() as nursery:

        def arrived(node: str, result: NodeResult) -> None:
            observe(node, result)
            final[node] = result
            if plan.wants(node, result):
                nursery.start_soon(resolved, node, result)
            else:
                plan.acknowledged(node, result)

        await scatter(plan.transport, to_send, deadline=deadline, on_result=arrived)
    return final


_LOOKUP_FAILED = object()
