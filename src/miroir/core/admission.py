"""Admission to a node: a concurrency limit, a bounded FIFO queue, and when to shed.

Theory of operation. A proxy process lets at most `max_in_flight` read calls run on one node
at once; a slow node is not made faster by piling more work on it, only slower for everyone.
Further calls wait in arrival order (FIFO: nobody overtakes). A request that would wait longer
than it can afford is refused at once instead (`miroir_overloaded`, 503, with `Retry-After`),
so the client learns in a millisecond what it would otherwise learn at its deadline, and the
node never sees the work.

How long a newcomer would wait is estimated from what is known when it arrives: the waiters
ahead of it leave the queue `max_in_flight` at a time, each round taking about one service
time (an exponentially weighted moving average of the node's recent call durations), so it
waits `(waiting // max_in_flight + 1)` rounds. It can afford to wait while the wait plus its own
service still fits before its deadline, and never longer than `queue_timeout_s`. The estimate
can be wrong both ways; the caller also bounds the real wait by the same patience, so a
request never waits past it.

Extra calls a process makes on its own (hedged reads, node-write retries) are admitted by a
`TokenBudget`: each ordinary call earns `ratio` of a token, each extra call spends one, at most
`burst` are kept, so extra load stays a bounded fraction of the ordinary load.

Pure: no clock, no trio. Times are passed in, in seconds.
"""

from __future__ import annotations

import enum
import math

import attrs


class Verdict(enum.Enum):
    GO = "go"  # a slot is free and nobody waits: call now
    WAIT = "wait"  # queue, in order, for at most `patience_s`
    SHED = "shed"  # the expected wait is more than the request can afford: refuse now


@attrs.frozen
class Admission:
    verdict: Verdict
    expected_wait_s: float = 0.0
    patience_s: float = 0.0  # the longest a WAIT may really wait

    @property
    def retry_after_s(self) -> int:
        """Whole seconds for `Retry-After`: when the queue ahead should have drained."""
        return max(1, math.ceil(self.expected_wait_s))


def admit(
    *,
    in_flight: int,
    waiting: int,
    max_in_flight: int,
    service_time_s: float,
    time_left_s: float,
    queue_timeout_s: float,
) -> Admission:
    """Whether a new call to a node with `in_flight` calls running and `waiting` queued may go
    now, must wait (and for how long at most), or is shed. `max_in_flight <= 0` is no limit."""
    if max_in_flight <= 0 or (in_flight < max_in_flight and waiting == 0):
        return Admission(Verdict.GO)
    expected = (waiting // max_in_flight + 1) * service_time_s
    patience = min(queue_timeout_s, time_left_s - service_time_s)
    if expected > patience or patience <= 0:
        return Admission(Verdict.SHED, expected)
    return Admission(Verdict.WAIT, expected, patience)


def ewma(previous: float | None, sample: float, weight: float = 0.2) -> float:
    """The moving average after one more sample (`weight` is the new sample's share)."""
    if previous is None:
        return sample
    return previous + weight * (sample - previous)


@attrs.define
class TokenBudget:
    """Tokens for extra calls: `ratio` per ordinary call earned, one per extra call spent, at
    most `burst` kept."""

    ratio: float
    burst: float
    tokens: float = 0.0

    def earn(self, calls: int = 1) -> None:
        self.tokens = min(self.burst, self.tokens + self.ratio * calls)

    def try_spend(self, calls: int = 1) -> bool:
        """Spend one token per extra call, all `calls` or none."""
        if self.tokens < calls:
            return False
        self.tokens -= calls
        return True
