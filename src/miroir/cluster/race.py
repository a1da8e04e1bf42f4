"""First-success race: ask one replica, fall over (or hedge) to the next, cancel the losers.

Owns the primitive behind group fallback and hedged reads. Two naive extremes: ask replicas one
after another (a hung replica costs the whole deadline before the next is tried), or ask them all
at once (every read costs RF times the work). The race sits between, like trio's happy eyeballs
(`open_tcp_stream`): start the first candidate; start the next one as soon as the previous
attempt *fails*, or, if `stagger` is set, also when it has been silent for `stagger` seconds; the
first acceptable answer wins and the nursery's cancel scope cancels every attempt still running.
It must never choose the candidates or their order (the policy lives with the caller, computed in
`miroir.core`), and never raise an exception group: every failure is kept and returned.

By default an answer is acceptable unless it says the node is failing (5xx): a 4xx is the node's
correct answer to a bad request, and asking another replica would only repeat it.

What a caller can hang off it (the cluster runtime does, for headers, deadlines and health):
`call` may be a function, called as each attempt *starts*, so each attempt can carry its own
`NodeCall.deadline` counted from its own start; `on_result` sees every attempt that ended with a
result (the winner and every failure, not the cancelled losers), as it arrives. As in `scatter`,
an exception that is not a transport failure (a bug, in the transport or in `on_result`) stops
the race and is raised as itself, not inside an exception group.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import attrs
import trio

from miroir.cluster.scatter import NodeCall, ResultObserver, call_node
from miroir.transport.base import NodeResponse, NodeResult, Transport, is_node_failure


@attrs.frozen
class RaceResult:
    """`winner`/`response` are None when no candidate gave an acceptable answer in time.

    `failures` holds every finished attempt that lost by failing (in the order they failed);
    `started` the candidates that were tried, in start order. Started candidates that neither
    won nor failed were cancelled when the winner answered."""

    winner: str | None
    response: NodeResponse | None
    failures: dict[str, NodeResult]
    started: list[str]

    @property
    def cancelled(self) -> list[str]:
        return [n for n in self.started if n != self.winner and n not in self.failures]


def _served(result: NodeResponse) -> bool:
    return not is_node_failure(result)


async def first_success(
    transport: Transport,
    candidates: Sequence[str],
    call: NodeCall | Callable[[str], NodeCall],
    *,
    deadline: float,
    stagger: float | None = None,
    accept: Callable[[NodeResponse], bool] = _served,
    on_result: ResultObserver | None = None,
) -> RaceResult:
    """Race `candidates` in order for one acceptable answer to `call`.

    `call` is one request for every candidate, or a function building each candidate's own
    (called when that attempt starts). `stagger=None` is pure failover; a number also starts the
    next candidate after that many seconds of silence (a hedged read). No candidate starts at or
    after `deadline`, and every attempt ends by it (or by its own `NodeCall.deadline`, if
    earlier). `on_result(node_id, result)` runs for every attempt that ends with a result.
    """
    build = call if callable(call) else (lambda _node: call)
    winner: tuple[str, NodeResponse] | None = None
    failures: dict[str, NodeResult] = {}
    started: list[str] = []
    patience = math.inf if stagger is None else stagger
    bug: BaseException | None = None

    async def attempt(node_id: str, failed: trio.Event) -> None:
        nonlocal winner, bug
        try:
            result = await call_node(transport, node_id, build(node_id), deadline)
            if on_result is not None:
                on_result(node_id, result)
            won = isinstance(result, NodeResponse) and accept(result)
        except Exception as error:  # noqa: BLE001 - a bug: stop the race and raise it alone
            if bug is None:
                bug = error
            nursery.cancel_scope.cancel()
            return
        if won:
            if winner is None:
                winner = (node_id, result)
            nursery.cancel_scope.cancel()
        else:
            failures[node_id] = result
            failed.set()

    # No cancel scope of our own at `deadline`: each attempt's own scope (in `call_node`) ends it
    # with a NodeTimeout that is kept in `failures`, where an outer scope expiring at the same
    # instant would swallow it as a bare cancellation.
    async with trio.open_nursery() as nursery:
        for node_id in candidates:
            if trio.current_time() >= deadline:
                break
            failed = trio.Event()
            started.append(node_id)
            nursery.start_soon(attempt, node_id, failed)
            with trio.move_on_after(patience):
                await failed.wait()
    if bug is not None:
        raise bug
    if winner is None:
        return RaceResult(None, None, failures, started)
    return RaceResult(winner[0], winner[1], failures, started)
