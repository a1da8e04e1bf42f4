"""The health checker: probes every node on a fixed interval and reports each result to the cluster.

Owns the probing loop only: which nodes to probe (whatever `cluster.node_ids()` says at the start
of a round), how (GET /health through `cluster.transport`, every node at once through
`miroir.cluster.scatter`, so one task drives the round when the transport offers `request_many`;
one shared deadline of `timeout_ms`), and when (rounds start every `interval_ms`, at a fixed rate, so
a slow round does not push the schedule back; a round longer than the interval starts the next one
at once). It must never decide a node's state itself: every verdict goes to
`cluster.record_node_result(node_id, ok, now_ms)`, which feeds the core's `HealthCounter` and the
transition table in `miroir.core.node_state` (thresholds live there and in the config, not here).
It never raises for a node failure and never retries a probe: the next round is the retry.

A probe is healthy iff the node answered 2xx by the deadline. A 5xx, a 4xx (whatever answers 4xx
on /health is not a Meilisearch we can use) or a transport failure is `Signal.DOWN`; no answer by
the deadline is `Signal.TIMED_OUT`, which the core counts as a failure only when no real request
to that node succeeded since the previous probe (a busy node answers its probe late; see
`miroir.core.node_state`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

import trio

from miroir.cluster.scatter import NodeCall, scatter
from miroir.core.node_state import Signal
from miroir.transport.base import NodeResponse, NodeResult, NodeTimeout, Transport

HEALTH_PATH = "/health"


class HealthCheckedCluster(Protocol):
    """What the checker needs of `miroir.cluster.runtime.Cluster`."""

    transport: Transport

    def node_ids(self) -> Iterable[str]: ...

    def now_ms(self) -> int: ...

    def record_node_result(self, node_id: str, ok: bool | Signal, now_ms: int) -> object: ...


class HealthSettings(Protocol):
    """The fields of `miroir.config.HealthConfig` the checker reads."""

    interval_ms: int
    timeout_ms: int


class HealthChecker:
    """Probe every node every `health_config.interval_ms`; see the module docstring."""

    def __init__(self, cluster: HealthCheckedCluster, health_config: HealthSettings) -> None:
        self._cluster = cluster
        self._interval = health_config.interval_ms / 1000
        self._timeout = health_config.timeout_ms / 1000
        self.rounds = 0

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Probe forever, one round every interval (the first one at once). Cancel to stop."""
        task_status.started()
        while True:
            round_started = trio.current_time()
            await self.probe_once()
            await trio.sleep_until(round_started + self._interval)

    async def probe_once(self) -> dict[str, bool]:
        """One round: probe every node concurrently, then record every verdict. Returns them."""
        node_ids = list(dict.fromkeys(self._cluster.node_ids()))
        deadline = trio.current_time() + self._timeout
        # scatter keeps every probe within the deadline (a cancel scope per call, or the
        # transport's own request_many, which is held to it) and turns a transport failure into
        # that node's result.
        results = await scatter(self._cluster.transport, dict.fromkeys(node_ids, _PROBE),
                                deadline=deadline)
        signals = {node_id: probe_signal(results[node_id]) for node_id in node_ids}
        verdicts = {node_id: signal is Signal.ANSWERED for node_id, signal in signals.items()}
        # The cluster's clock stamps the verdicts: one clock for "last seen" and task records.
        now_ms = self._cluster.now_ms()
        for node_id in node_ids:
            self._cluster.record_node_result(node_id, signals[node_id], now_ms)
        self.rounds += 1
        return verdicts


_PROBE = NodeCall("GET", HEALTH_PATH)


def probe_signal(result: NodeResult) -> Signal:
    """A probe's verdict: 2xx answered, no answer by the deadline timed out, anything else down."""
    if isinstance(result, NodeResponse):
        return Signal.ANSWERED if 200 <= result.status < 300 else Signal.DOWN
    return Signal.TIMED_OUT if isinstance(result, NodeTimeout) else Signal.DOWN
