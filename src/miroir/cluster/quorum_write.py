"""Quorum write: fan one logical write out to its RG x RF targets and count acks as they arrive.

Owns the glue between `scatter` and `miroir.core.quorum.WriteTally`: every node answer is
classified on arrival (a 2xx is an acknowledgement; 4xx, 5xx and transport failures are not) and
fed to the tally. It must never decide what the client sees (the route renders the verdict), never
retry a write, and never cancel a write that is still within its deadline.

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
`miroir.core.quorum`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import attrs

from miroir.cluster.scatter import NodeCall, scatter
from miroir.core.quorum import Pair, QuorumVerdict, WriteTally
from miroir.transport.base import NodeResult, Outcome, Transport, classify


@attrs.frozen
class QuorumWriteResult:
    """The final verdict and every node's result (answers carry the node task uids)."""

    verdict: QuorumVerdict
    results: Mapping[str, NodeResult]

    def acked_nodes(self) -> list[str]:
        return sorted(n for n, r in self.results.items() if classify(r) is Outcome.OK)


def is_acknowledgement(result: NodeResult) -> bool:
    """A node acknowledged the write: it answered 2xx (Meilisearch answers 202 Accepted)."""
    return classify(result) is Outcome.OK


async def quorum_write(
    transport: Transport,
    calls: Mapping[str, NodeCall],
    targets: Mapping[Pair, Iterable[str]],
    *,
    replication_factor: int,
    deadline: float,
    on_verdict: Callable[[QuorumVerdict], None] | None = None,
) -> QuorumWriteResult:
    """Send `calls` (one per node: its batch of the write) and count quorum per (shard, group).

    `targets[(shard, group)]` lists the nodes whose acknowledgement counts for that pair; every
    one of them needs a call. `calls` may include nodes that count for nothing (a joining node
    that receives writes early): they are sent and reported, but not counted.
    """
    tally = WriteTally(targets, replication_factor)
    counted = tally.nodes
    missing = counted - calls.keys()
    if missing:
        raise ValueError(f"quorum targets without a call: {sorted(missing)}")

    def count(node_id: str, result: NodeResult) -> None:
        if node_id in counted:
            tally.record(node_id, is_acknowledgement(result))
            if on_verdict is not None:
                on_verdict(tally.verdict())

    results = await scatter(transport, calls, deadline=deadline, on_result=count)
    return QuorumWriteResult(tally.finish(), results)
