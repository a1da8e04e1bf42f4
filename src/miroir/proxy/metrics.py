"""Prometheus metrics: the one table of metric names, and the hooks that feed them.

Names follow the Rust reference of this design. Each app gets its own `CollectorRegistry`, so
two apps in one process (tests) never share counters. Must never put a key, a document id or a
query into a label: labels are bounded sets (method, route template, status, node, kind).

Two modes, the same metric families. In one process, the latency histograms are
`LightHistogram`s and the in-flight gauge reads a plain integer at scrape time: both live in
this process's memory and cost less than prometheus_client's locked types on the search hot
path (docs/benchmarks.md). With several worker processes (`miroir serve --workers N` sets
`PROMETHEUS_MULTIPROC_DIR` before the workers start), every value must live in that directory's
files, where prometheus_client's own types put them and where the exporter merges them: the
histograms are prometheus_client `Histogram`s, the in-flight gauge is moved up and down and
summed over the live workers, and the per-worker gauges keep the lowest value any live worker
holds (a node is "healthy" and a shard "covered" only when every worker sees it so).
`render` then shows every worker's samples merged, as the metrics port does.
"""

from __future__ import annotations

import math
import os
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.utils import floatToGoString

from miroir.core.node_state import ELIGIBILITY, NodeState
from miroir.core.reshard_plan import STATES as RESHARD_STATES
from miroir.transport.base import NodeResult, failure_kind

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
# Where prometheus_client keeps the values of several processes; it reads the variable when it
# is imported, so it must be set before a worker starts (`miroir serve` does).
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The directory prometheus_client shares values through, when in multiprocess mode."""
    return os.environ.get(MULTIPROCESS_ENV) or os.environ.get(MULTIPROCESS_ENV.lower())


class Metrics:
    """Every metric Miroir exports, registered on one private registry; see the module doc for
    the two modes (`multiprocess` defaults to whether `PROMETHEUS_MULTIPROC_DIR` is set)."""

    def __init__(self, *, multiprocess: bool | None = None) -> None:
        shared_dir = multiprocess_dir()
        self.multiprocess = multiprocess = (
            shared_dir is not None if multiprocess is None else multiprocess
        )
        self.registry = registry = CollectorRegistry()
        histogram: Any = Histogram if multiprocess else LightHistogram
        # What `render` shows: this registry, or every worker's files merged.
        self._exposed = registry
        if multiprocess and shared_dir is not None:
            self._exposed = CollectorRegistry()
            MultiProcessCollector(self._exposed, path=shared_dir)
        self.requests_total = Counter(
            "miroir_requests_total", "Client requests answered.",
            ("method", "route", "status"), registry=registry,
        )
        self.request_duration_seconds = histogram(
            "miroir_request_duration_seconds", "Time to answer a client request.",
            ("method", "route"), buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self.requests_in_flight = Gauge(
            "miroir_requests_in_flight", "Client requests being answered.", registry=registry,
            multiprocess_mode="livesum",
        )
        # One process: a plain count the ASGI wrapper moves, read by the gauge at scrape time
        # (no lock per move). Several: the wrapper moves the gauge itself (`proxy.app`).
        self.in_flight = 0
        if not multiprocess:
            self.requests_in_flight.set_function(lambda: self.in_flight)
        self.node_healthy = Gauge(
            "miroir_node_healthy", "1 when the node serves reads (healthy, active or degraded).",
            ("node",), registry=registry, multiprocess_mode="livemin",
        )
        self.node_request_duration_seconds = histogram(
            "miroir_node_request_duration_seconds", "Time of one request to one node.",
            ("node",), buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self.node_errors_total = Counter(
            "miroir_node_errors_total", "Node requests that failed, by failure kind.",
            ("node", "kind"), registry=registry,
        )
        self.shard_coverage = Gauge(
            "miroir_shard_coverage", "Fraction of shards with a readable owner in some group.",
            registry=registry, multiprocess_mode="livemin",
        )
        self.degraded_shards_total = Counter(
            "miroir_degraded_shards_total",
            "(group, shard) pairs that missed write quorum, summed over writes.", registry=registry,
        )
        self.scatter_fan_out_size = Histogram(
            "miroir_scatter_fan_out_size", "Nodes one client request was sent to.",
            buckets=(1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64), registry=registry,
        )
        self.node_queue_depth = Gauge(
            "miroir_node_queue_depth",
            "Reads waiting for a slot on the node (scatter.max_in_flight_per_node).",
            ("node",), registry=registry, multiprocess_mode="livesum",
        )
        self.shed_requests_total = Counter(
            "miroir_shed_requests_total",
            "Reads answered 503 miroir_overloaded, by the node whose queue was too long.",
            ("node",), registry=registry,
        )
        self.hedged_requests_total = Counter(
            "miroir_hedged_requests_total",
            "Hedged shard reads, one per hedged node call: sent, then exactly one outcome each: "
            "won (its answer was taken), lost (cancelled: another replica answered its shards "
            "first), dropped (it answered after the winner), failed (its node failed or "
            "refused).",
            ("outcome",), registry=registry,
        )
        self.node_write_retries_total = Counter(
            "miroir_node_write_retries_total",
            "Node-write retries of document writes: sent (a resend), acked (a resend "
            "acknowledged), adopted (a lost answer's task found on the node), cached (a client's "
            "retry with the same Idempotency-Key adopted a node task), lookup_failed, and "
            "skipped_attempts|deadline|timeout|order|budget (why a failure was not retried).",
            ("outcome",), registry=registry,
        )
        self.tasks_total = Counter(
            "miroir_tasks_total", "Miroir tasks created, by type.", ("type",), registry=registry
        )
        self.reconcile_passes_total = Counter(
            "miroir_reconcile_passes_total", "Anti-entropy passes finished.", registry=registry
        )
        self.reconcile_differences_total = Counter(
            "miroir_reconcile_differences_total",
            "Replica differences the reconciler found: lagging nodes (settings), differing "
            "documents (documents).", ("kind",), registry=registry,
        )
        self.reconcile_repairs_total = Counter(
            "miroir_reconcile_repairs_total",
            "Repairs the reconciler made: nodes (settings), documents written or deleted "
            "(documents).", ("kind",), registry=registry,
        )
        for kind in ("settings", "documents"):  # both kinds exported from the start, at 0
            self.reconcile_differences_total.labels(kind)
            self.reconcile_repairs_total.labels(kind)
        self.topology_epoch = Gauge(
            "miroir_topology_epoch", "The stored topology's epoch this process routes by "
            "(with several workers: the lowest, so a lagging worker shows).",
            registry=registry, multiprocess_mode="livemin",
        )
        # The rebalance, as the process running the engine sees it (its store record).
        self.rebalance_in_progress = Gauge(
            "miroir_rebalance_in_progress", "1 while a rebalance is waiting, copying or in grace.",
            registry=registry, multiprocess_mode="livemax",
        )
        self.rebalance_shards_total = Gauge(
            "miroir_rebalance_shards_total", "Shard replicas the current rebalance copies.",
            registry=registry, multiprocess_mode="livemax",
        )
        self.rebalance_shards_done = Gauge(
            "miroir_rebalance_shards_done", "Shard replicas copied and verified so far.",
            registry=registry, multiprocess_mode="livemax",
        )
        self.rebalance_documents_copied = Gauge(
            "miroir_rebalance_documents_copied",
            "Documents written to new owners by the current rebalance (re-copies included).",
            registry=registry, multiprocess_mode="livemax",
        )
        self.rebalance_errors = Gauge(
            "miroir_rebalance_errors", "Errors recorded by the current rebalance (last 10 kept).",
            registry=registry, multiprocess_mode="livemax",
        )
        # The reshard, as the process running its engine sees it (its store record).
        self.reshard_state = Gauge(
            "miroir_reshard_state", "1 for the current (or last) reshard's state, 0 for the "
            "others.", ["state"], registry=registry, multiprocess_mode="livemax",
        )
        for state in RESHARD_STATES:  # every state exported from the start, at 0
            self.reshard_state.labels(state)
        self.reshard_documents_copied = Gauge(
            "miroir_reshard_documents_copied",
            "Documents written into the shadow by the current reshard (re-copies included).",
            registry=registry, multiprocess_mode="livemax",
        )
        self.reshard_documents_total = Gauge(
            "miroir_reshard_documents_total", "Documents in the index being resharded.",
            registry=registry, multiprocess_mode="livemax",
        )
        self.reshard_errors = Gauge(
            "miroir_reshard_errors", "Errors recorded by the current reshard (last 10 kept).",
            registry=registry, multiprocess_mode="livemax",
        )
        # `labels(...)` takes a lock and builds a key on every call; the label sets are bounded
        # (see the module doc), so the children are looked up once and kept.
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._node_durations: dict[str, Any] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """One answered client request: counted by (method, route, status), timed by route."""
        children = self._request_children.get((method, route, status))
        if children is None:
            children = self._request_children[(method, route, status)] = (
                self.requests_total.labels(method, route, str(status)),
                self.request_duration_seconds.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def observe_reconcile(self, event: str, kind: str, count: int) -> None:
        """A reconciler event (`miroir.cluster.reconcile.ReconcileObserver`)."""
        if event == "pass":
            self.reconcile_passes_total.inc()
        elif event == "differences":
            self.reconcile_differences_total.labels(kind).inc(count)
        elif event == "repairs":
            self.reconcile_repairs_total.labels(kind).inc(count)

    def observe_node_call(self, node_id: str, seconds: float, result: NodeResult) -> None:
        durations = self._node_durations.get(node_id)
        if durations is None:
            durations = self._node_durations[node_id] = (
                self.node_request_duration_seconds.labels(node_id)
            )
        durations.observe(seconds)
        kind = failure_kind(result)
        if kind is not None:
            self.node_errors_total.labels(node_id, kind.value).inc()

    def observe_shed(self, node_id: str) -> None:
        self.shed_requests_total.labels(node_id).inc()

    def observe_hedge(self, outcome: str) -> None:
        self.hedged_requests_total.labels(outcome).inc()

    def observe_write_retry(self, outcome: str) -> None:
        self.node_write_retries_total.labels(outcome).inc()

    def observe_queue_depth(self, node_id: str, depth: int) -> None:
        self.node_queue_depth.labels(node_id).set(depth)

    def observe_node_state(self, node_id: str, state: NodeState) -> None:
        self.node_healthy.labels(node_id).set(1 if ELIGIBILITY[state].serves_reads else 0)

    def observe_epoch(self, epoch: int, _topology: object = None) -> None:
        self.topology_epoch.set(epoch)

    def observe_rebalance(self, record: dict[str, Any]) -> None:
        """The rebalance record after each engine step."""
        self.rebalance_in_progress.set(
            1 if record.get("state") in ("waiting", "copying", "grace") else 0)
        self.rebalance_shards_total.set(record.get("shardsTotal", 0))
        self.rebalance_shards_done.set(record.get("shardsDone", 0))
        self.rebalance_documents_copied.set(record.get("documentsCopied", 0))
        self.rebalance_errors.set(len(record.get("errors", ())))

    def observe_reshard(self, record: dict[str, Any]) -> None:
        """The reshard's entry after each engine step."""
        for state in RESHARD_STATES:
            self.reshard_state.labels(state).set(1 if record.get("state") == state else 0)
        self.reshard_documents_copied.set(record.get("documentsCopied", 0))
        self.reshard_documents_total.set(record.get("documentsTotal") or 0)
        self.reshard_errors.set(len(record.get("errors", ())))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self._exposed), CONTENT_TYPE_LATEST


class LightHistogram:
    """A labelled Prometheus histogram whose `observe` is one bisect and two additions.

    prometheus_client's `Histogram` takes two locks and walks the buckets in Python on every
    observation, about 2 % of a search's CPU over its four observations. Observations come from
    the one trio thread; a scrape from the exporter's thread may see the sum one observation
    ahead of the buckets, which Prometheus tolerates. The exposition is `Histogram`'s without
    the `_created` samples (tests/proxy/test_light_histogram.py).
    """

    def __init__(self, name: str, documentation: str, labelnames: Sequence[str], *,
                 buckets: Sequence[float], registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.upper_bounds = tuple(float(bound) for bound in buckets) + (math.inf,)
        self._children: dict[tuple[str, ...], _HistogramChild] = {}
        registry.register(self)

    def labels(self, *values: Any) -> _HistogramChild:
        key = tuple(str(value) for value in values)
        child = self._children.get(key)
        if child is None:
            if len(key) != len(self.labelnames):
                raise ValueError(f"{self.name}: expected labels {self.labelnames}")
            child = self._children[key] = _HistogramChild(self.upper_bounds)
        return child

    def describe(self) -> list[HistogramMetricFamily]:
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for key, child in list(self._children.items()):
            counts, total = list(child.counts), child.sum
            cumulative, buckets = 0, []
            for bound, count in zip(self.upper_bounds, counts, strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), cumulative))
            family.add_metric(list(key), buckets, total)
        yield family


class _HistogramChild:
    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.sum = 0.0

    def observe(self, amount: float) -> None:
        # `le` buckets: the first bound >= amount (bisect_left), +Inf last.
        self.counts[bisect_left(self.bounds, amount)] += 1
        self.sum += amount
