"""Node states: the transition table and what each state is allowed to do.

Theory of operation. A node's state is changed only by events, and every legal change is a row
of `TRANSITIONS` below; an event a state has no row for is a bug in the caller and raises
`IllegalTransition` naming the node, the state and the event. Nothing else mutates a state.

Health events come from `HealthCounter`, which turns signals into events with the configured
thresholds. Signals come from probes (GET /health) and, passively, from every real request's
outcome: the node answered (`ANSWERED`: a probe's 2xx, a request's 2xx or 4xx), gave no answer
in time (`TIMED_OUT`), or could not serve (`DOWN`: refused, reset, 5xx). The rule, with
hysteresis so that a busy node is not mistaken for a dead one:
- a failure is `DOWN`, a request's `TIMED_OUT`, or a probe's `TIMED_OUT` when no real request
  succeeded since the previous probe (a slow probe while requests succeed is a busy node);
- one failure makes a node `degraded`; `unhealthy_threshold` consecutive failures, with no
  success in between, make it `failed`;
- any success (a probe, or a real request answered) ends the streak; a probe's success or a
  served request heals a degraded node; a failed node needs `recovery_threshold` consecutive
  successful probes (requests do not reach it, and a stray late answer is no proof of health).
Operator events (`caught_up`, `drain`, `remove`) come from topology changes.

The one tricky case: a node that comes back from `failed` missed every write made while it was
failed, and may have come back empty (a replaced disk). `rejoin` sends it from any in-service
state (or `failed`) back to `joining`: it takes writes again but serves no reads until the
repair worker (`miroir.cluster.repair`) has re-provisioned its indexes, copied its shards from
healthy replicas and sent `caught_up`.

Placement does not look at states: a failed node keeps its shards (rendezvous moves shards only
when membership changes); the eligibility rules below decide who is written to, read from and
counted toward quorum.
"""

from __future__ import annotations

import enum

import attrs


class NodeState(enum.Enum):
    JOINING = "joining"  # added, still being filled: takes writes, serves no reads
    ACTIVE = "active"  # in service, not yet confirmed by a health probe
    HEALTHY = "healthy"  # in service, last probes succeeded
    DEGRADED = "degraded"  # in service, recent failures below the unhealthy threshold
    DRAINING = "draining"  # leaving: still takes writes so nothing is lost, serves no reads
    FAILED = "failed"  # unhealthy threshold reached: skipped for reads and writes
    REMOVED = "removed"  # gone from the topology; terminal


class NodeEvent(enum.Enum):
    CAUGHT_UP = "caught_up"
    PROBE_OK = "probe_ok"
    PROBE_FAILED = "probe_failed"
    MARKED_HEALTHY = "marked_healthy"
    MARKED_UNHEALTHY = "marked_unhealthy"
    DRAIN = "drain"
    REMOVE = "remove"
    REJOIN = "rejoin"


S, E = NodeState, NodeEvent
_IN_SERVICE_HEALTH = {
    E.PROBE_OK: S.HEALTHY,
    E.MARKED_HEALTHY: S.HEALTHY,
    E.PROBE_FAILED: S.DEGRADED,
    E.MARKED_UNHEALTHY: S.FAILED,
    E.DRAIN: S.DRAINING,
    E.REMOVE: S.REMOVED,
    E.REJOIN: S.JOINING,
}
TRANSITIONS: dict[NodeState, dict[NodeEvent, NodeState]] = {
    S.JOINING: {
        E.CAUGHT_UP: S.ACTIVE,
        E.REJOIN: S.JOINING,  # a repair started again (the node failed and came back mid-repair)
        E.PROBE_OK: S.JOINING,
        E.PROBE_FAILED: S.JOINING,
        E.MARKED_HEALTHY: S.JOINING,
        E.MARKED_UNHEALTHY: S.FAILED,
        E.REMOVE: S.REMOVED,
    },
    S.ACTIVE: dict(_IN_SERVICE_HEALTH),
    S.HEALTHY: dict(_IN_SERVICE_HEALTH),
    S.DEGRADED: dict(_IN_SERVICE_HEALTH),
    S.DRAINING: {
        E.PROBE_OK: S.DRAINING,
        E.PROBE_FAILED: S.DRAINING,
        E.MARKED_HEALTHY: S.DRAINING,
        E.MARKED_UNHEALTHY: S.FAILED,
        E.REMOVE: S.REMOVED,
    },
    S.FAILED: {
        E.PROBE_OK: S.FAILED,  # one success is not enough; HealthCounter emits MARKED_HEALTHY
        E.PROBE_FAILED: S.FAILED,
        E.MARKED_HEALTHY: S.HEALTHY,
        E.MARKED_UNHEALTHY: S.FAILED,
        E.DRAIN: S.DRAINING,
        E.REMOVE: S.REMOVED,
        E.REJOIN: S.JOINING,
    },
    S.REMOVED: {},
}
del S, E


@attrs.frozen
class Eligibility:
    takes_writes: bool
    serves_reads: bool
    counts_toward_quorum: bool


ELIGIBILITY: dict[NodeState, Eligibility] = {
    NodeState.JOINING: Eligibility(takes_writes=True, serves_reads=False, counts_toward_quorum=False),
    NodeState.ACTIVE: Eligibility(takes_writes=True, serves_reads=True, counts_toward_quorum=True),
    NodeState.HEALTHY: Eligibility(takes_writes=True, serves_reads=True, counts_toward_quorum=True),
    NodeState.DEGRADED: Eligibility(takes_writes=True, serves_reads=True, counts_toward_quorum=True),
    NodeState.DRAINING: Eligibility(takes_writes=True, serves_reads=False, counts_toward_quorum=True),
    NodeState.FAILED: Eligibility(takes_writes=False, serves_reads=False, counts_toward_quorum=False),
    NodeState.REMOVED: Eligibility(takes_writes=False, serves_reads=False, counts_toward_quorum=False),
}


class IllegalTransition(ValueError):
    def __init__(self, node_id: str, state: NodeState, event: NodeEvent) -> None:
        super().__init__(
            f"node {node_id!r} in state {state.value!r} cannot take event {event.value!r}"
        )
        self.node_id, self.state, self.event = node_id, state, event


def next_state(node_id: str, state: NodeState, event: NodeEvent) -> NodeState:
    """The state after `event`, or IllegalTransition."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise IllegalTransition(node_id, state, event) from None


class Signal(enum.Enum):
    """What one probe or one real request says about a node (see the module docstring)."""

    ANSWERED = "answered"
    TIMED_OUT = "timed_out"
    DOWN = "down"


@attrs.define
class HealthCounter:
    """Turns one node's signals into state events, with thresholds and hysteresis.

    `record(state, signal, probe=...)` returns the event to apply, or None when the signal
    changes nothing (a served request on a healthy node, a slow probe of a busy node). A bool
    is taken as a probe's verdict (True: ANSWERED, False: DOWN)."""

    unhealthy_threshold: int
    recovery_threshold: int
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    served_since_probe: bool = False

    def record(
        self, state: NodeState, signal: Signal | bool, *, probe: bool = True
    ) -> NodeEvent | None:
        if signal is True or signal is Signal.ANSWERED:
            return self._probe_answered(state) if probe else self._request_served(state)
        if probe:
            served, self.served_since_probe = self.served_since_probe, False
            if signal is Signal.TIMED_OUT and served:
                return None  # busy, not failing: requests were served since the last probe
        return self._failure()

    def _probe_answered(self, state: NodeState) -> NodeEvent:
        self.served_since_probe = False
        self.consecutive_failures = 0
        self.consecutive_successes += 1
        if state is NodeState.FAILED and self.consecutive_successes >= self.recovery_threshold:
            return NodeEvent.MARKED_HEALTHY
        return NodeEvent.PROBE_OK

    def _request_served(self, state: NodeState) -> NodeEvent | None:
        if state is NodeState.FAILED:
            return None  # a late answer from before it failed; only probes bring it back
        self.served_since_probe = True
        self.consecutive_failures = 0
        return NodeEvent.PROBE_OK if state is NodeState.DEGRADED else None

    def _failure(self) -> NodeEvent:
        self.served_since_probe = False
        self.consecutive_successes = 0
        self.consecutive_failures += 1
        if self.consecutive_failures >= self.unhealthy_threshold:
            return NodeEvent.MARKED_UNHEALTHY
        return NodeEvent.PROBE_FAILED
