"""Scatter: call a set of nodes at once and collect one result per node.

Owns the shape every fan-out in Miroir takes: one nursery, one task per node, each call inside
its own cancel scope whose deadline is the earlier of its own and the scatter's. When the
transport offers `request_many` (`HttpTransport` does), the same contract is kept by one task
that sends every request before reading any answer (`scatter_many`): no nursery, no task per node. Transport failures
(and timeouts) become per-node results, so a caller always gets a dict keyed by node and never an
exception group. It must never decide what a result *means* (that is `classify` and the callers'
business), never retry, and never let a call run past its deadline.

Cancelling the caller cancels every node call (they live in the caller's nursery). A bug, an
exception that is not a `TransportError`, is not turned into a result: the remaining calls are
cancelled and that one exception is raised as itself, not wrapped in a group.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import attrs
import trio

from miroir.transport.base import (
    ManyTransport,
    NodeResult,
    NodeTimeout,
    Transport,
    TransportError,
)


@attrs.frozen
class NodeCall:
    """One request to one node. `deadline` (absolute trio time) may only shorten the scatter's."""

    method: str
    path: str
    body: bytes | None = None
    headers: Sequence[tuple[str, str]] = ()
    deadline: float | None = None


ResultObserver = Callable[[str, NodeResult], None]


async def call_node(
    transport: Transport, node_id: str, call: NodeCall, deadline: float
) -> NodeResult:
    """One node call that returns its failure instead of raising it.

    The cancel scope enforces the deadline even against a transport that ignores it; a call cut
    off that way is reported exactly like a transport timeout.
    """
    if call.deadline is not None:
        deadline = min(deadline, call.deadline)
    with trio.move_on_at(deadline):
        try:
            return await transport.request(
                node_id,
                call.method,
                call.path,
                body=call.body,
                headers=call.headers,
                deadline=deadline,
            )
        except TransportError as error:
            return error
    return NodeTimeout(node_id, f"{call.method} {call.path}: deadline passed")


async def scatter(
    transport: Transport,
    calls: Mapping[str, NodeCall],
    *,
    deadline: float,
    on_result: ResultObserver | None = None,
) -> dict[str, NodeResult]:
    """Send every call at once; return {node_id: NodeResponse | TransportError} for all of them.

    Returns when every call has a result; no call outlives `deadline` (or its own, if earlier).
    `on_result(node_id, result)` runs as each result arrives, in arrival order; quorum counting
    hangs off it. It must not raise (an exception there is treated as a bug, see module doc).
    """
    if getattr(transport, "request_many", None) is not None:  # cheaper than isinstance(Protocol)
        return await scatter_many(transport, calls, deadline=deadline, on_result=on_result)  # type: ignore[arg-type]
    results: dict[str, NodeResult] = {}
    bug: BaseException | None = None

    async def one(node_id: str, call: NodeCall) -> None:
        nonlocal bug
        try:
            result = await call_node(transport, node_id, call, deadline)
            results[node_id] = result
            if on_result is not None:
                on_result(node_id, result)
        except Exception as error:  # noqa: BLE001 - a bug: stop the scatter and raise it alone
            if bug is None:
                bug = error
            nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        for node_id, call in calls.items():
            nursery.start_soon(one, node_id, call)
    if bug is not None:
        raise bug
    return results


async def scatter_many(
    transport: ManyTransport,
    calls: Mapping[str, NodeCall],
    *,
    deadline: float,
    on_result: ResultObserver | None = None,
) -> dict[str, NodeResult]:
    """`scatter` through a transport's `request_many`: the same contract, driven by one task.

    The transport enforces each call's deadline itself (`HttpTransport` does, per exchange, and
    tests/transport holds it to that), so no extra cancel scope is entered here: on the hot
    path each scope costs as much as a node's bookkeeping. A call the transport left without a
    result (it cannot happen with `HttpTransport`) is reported as a timeout all the same.
    """
    results: dict[str, NodeResult] = {}

    def arrived(node_id: str, result: NodeResult) -> None:
        results[node_id] = result
        if on_result is not None:
            on_result(node_id, result)

    await transport.request_many(calls, deadline=deadline, on_result=arrived)
    if len(results) < len(calls):
        for node_id, call in calls.items():
            if node_id not in results:
                arrived(node_id, NodeTimeout(node_id, f"{call.method} {call.path}: no result"))
    return results
