"""Quorum write: fan one logical write out to its RG x RF targets and count acks as they arrive.

Owns the glue between `scatter` and `miroir.core.quorum.WriteTally`: every node answer is
classified on arrival (a 2xx is an acknowledgement; 4xx, 5xx and transport failures are not) and
fed to the tally. It must never decide what the client sees (the route renders the verdict), never
decide itself whether a write is retried (a `RetryPlan`, `miroir.cluster.write_retry`, does:
a failed node result it wants is counted only once the plan resolved it, so an attempt's
failure and its retry are never both counted), and never cancel a write that is still within
its deadline.

When it returns, and why
------------------------
`quorum_write` returns when every target has answered or reached its deadline, even if the
verdict was decided earlier (quorum met everywhere after the first acks, or a shard already lost).
Three reasons:

1. A node that accepted the write enqueued a task; Miroir records every node's task uid so the
   client's task can be aggregated later. An answer we stopped waiting for is a task we cannot
   account for.
2. Cancelling an in-flight write does not unsend it: the node may still apply it. Returning early
   would save latency only by forgetting what happened, and the degraded-group report
   (`X-Miroir-Degraded`) would be a guess.
3. The wait is bounded anyway: by the node deadline, which the caller chooses.

Callers that want to act on the verdict early (say, to log a lost shard) can watch `on_verdict`,
which runs after every answer with the verdict so far; decided pairs never change (see
`miroir.core.quorum`). `on_result` sees every node's result as it arrives (counted or not): the
cluster runtime feeds metrics and health from it. What counts as an acknowledgement is
`is_acknowledgement` unless the caller passes a stricter `acknowledged` (the runtime requires
the node's task uid, without which the write could not be followed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import attrs
import trio

from miroir.cluster.scatter import NodeCall, ResultObserver, scatter
from miroir.core.quorum import Pair, QuorumVerdict, WriteTally
from miroir.transport.base import NodeResult, Outcome, Transport, classify

if TYPE_CHECKING:
    from miroir.cluster.write_retry import RetryPlan


def is_acknowledgement(result: NodeResult) -> bool:
    """A node acknowledged the write: it answered 2xx (Meilisearch answers 202 Accepted)."""
    return classify(result) is Outcome.OK


@attrs.frozen
class QuorumWriteResult:
    """The final verdict and every node's result (answers carry the node task uids).

    `acknowledged` is the rule the write was counted with."""

    verdict: QuorumVerdict
    results: Mapping[str, NodeResult]
    acknowledged: Callable[[NodeResult], bool] = attrs.field(
        default=is_acknowledgement, eq=False, repr=False
    )

    def acked_nodes(self) -> list[str]:
        return sorted(n for n, r in self.results.items() if self.acknowledged(r))


async def quorum_write(
    transport: Transport,
    calls: Mapping[str, NodeCall],
    targets: Mapping[Pair, Iterable[str]],
    *,
    replication_factor: int,
    deadline: float,
    on_verdict: Callable[[QuorumVerdict], None] | None = None,
    on_result: ResultObserver | None = None,
    acknowledged: Callable[[NodeResult], bool] = is_acknowledgement,
    retry: RetryPlan | None = None,
    on_met: Callable[[Pair], None] | None = None,
) -> QuorumWriteResult:
    """Send `calls` (one per node: its batch of the write) and count quorum per (shard, group).

    `targets[(shard, group)]` lists the nodes whose acknowledgement counts for that pair; every
    one of them needs a call. `calls` may include nodes that count for nothing (a joining node
    that receives writes early): they are sent and reported, but not counted. With `retry`,
    `calls` are its tagged calls (`RetryPlan.calls`), and a failed result it `wants` is counted
    as `RetryPlan.resolve` settles it, within the plan's deadline. `on_met` is told each pair
    as it meets quorum, in that order (the last-quorum record, `miroir.core.replica_vote`).
    """
    tally = WriteTally(targets, replication_factor)
    counted = tally.nodes
    missing = counted - calls.keys()
    if missing:
        raise ValueError(f"quorum targets without a call: {sorted(missing)}")

    def observe(node_id: str, result: NodeResult) -> None:
        if on_result is not None:
            on_result(node_id, result)

    def tally_one(node_id: str, result: NodeResult) -> None:
        if node_id in counted:
            met = tally.record(node_id, acknowledged(result))
            if on_met is not None:
                for pair in met:
                    on_met(pair)
            if on_verdict is not None:
                on_verdict(tally.verdict())

    def count(node_id: str, result: NodeResult) -> None:
        observe(node_id, result)
        tally_one(node_id, result)

    if retry is None:
        results = await scatter(transport, calls, deadline=deadline, on_result=count)
        return QuorumWriteResult(tally.finish(), results, acknowledged)

    to_send, known = retry.start()
    final: dict[str, NodeResult] = dict(known)
    for node_id, result in known.items():
        tally_one(node_id, result)

    async def resolved(node_id: str, first: NodeResult) -> None:
        result = await retry.resolve(node_id, first, observe)
        final[node_id] = result
        tally_one(node_id, result)

    async with trio.open_nursery() as nursery:

        def arrived(node_id: str, result: NodeResult) -> None:
            observe(node_id, result)
            final[node_id] = result
            if retry.wants(node_id, result):
                nursery.start_soon(resolved, node_id, result)
            else:
                retry.acknowledged(node_id, result)
                tally_one(node_id, result)

        await scatter(transport, to_send, deadline=deadline, on_result=arrived)
    return QuorumWriteResult(tally.finish(), final, acknowledged)
