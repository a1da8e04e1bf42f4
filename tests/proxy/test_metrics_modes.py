"""Metrics in one process and across worker processes export the same families.

Several workers (`PROMETHEUS_MULTIPROC_DIR` set) keep every value in shared files that the
exporter merges. Two workers are simulated in this process by giving prometheus_client's
file-backed values two process ids; tests/cli/test_serve_process.py does the same with real
`miroir serve --workers 2` processes.
"""

from __future__ import annotations

import types

import pytest
import trio
import trio.testing
from prometheus_client import values
from prometheus_client.parser import text_string_to_metric_families

from miroir.core.node_state import NodeState
from miroir.proxy.app import counting_in_flight
from miroir.proxy.metrics import MULTIPROCESS_ENV, LightHistogram, Metrics
from miroir.transport.base import NodeResponse, NodeTimeout


def families(metrics: Metrics) -> dict[str, list]:
    """Metric families by name, without the `_created` timestamps one process adds (the text
    parser reads them as families of their own; the multiprocess exporter never has them)."""
    text = metrics.render()[0].decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)
            if not family.name.endswith("_created")}


def exercise(metrics: Metrics) -> None:
    """Move every metric once, as one answered search and one failed node call would."""
    metrics.observe_request("POST", "/indexes/<uid>/search", 200, 0.004)
    metrics.observe_node_call("n1", 0.002, NodeResponse("n1", 200, (), b"{}"))
    metrics.observe_node_call("n2", 0.5, NodeTimeout("n2", "late"))
    metrics.observe_node_state("n1", NodeState.ACTIVE)
    metrics.observe_node_state("n2", NodeState.FAILED)
    metrics.shard_coverage.set(1.0)
    metrics.degraded_shards_total.inc(2)
    metrics.scatter_fan_out_size.observe(3)
    metrics.tasks_total.labels("documentAdditionOrUpdate").inc()
    metrics.observe_shed("n1")
    metrics.observe_queue_depth("n1", 3)
    metrics.observe_hedge("sent")
    metrics.observe_write_retry("adopted")
    metrics.observe_reconcile("pass", "", 1)
    metrics.observe_reconcile("differences", "documents", 2)
    metrics.observe_reconcile("repairs", "settings", 1)


@pytest.fixture
def worker_metrics(tmp_path, monkeypatch):
    """A factory of `Metrics` as worker process `pid` of a multiprocess deployment would build."""
    monkeypatch.setenv(MULTIPROCESS_ENV, str(tmp_path))

    def build(pid: int) -> Metrics:
        monkeypatch.setattr(values, "ValueClass",
                            values.MultiProcessValue(process_identifier=lambda: pid))
        return Metrics()

    return build


def test_one_process_keeps_the_light_types():
    metrics = Metrics(multiprocess=False)
    assert not metrics.multiprocess
    assert isinstance(metrics.request_duration_seconds, LightHistogram)
    assert isinstance(metrics.node_request_duration_seconds, LightHistogram)


def test_two_workers_export_every_family_one_process_exports_merged(worker_metrics):
    single = Metrics(multiprocess=False)
    exercise(single)
    expected = families(single)
    assert len(expected) == 27  # 17, the topology epoch, five rebalance and four reshard gauges

    first, second = worker_metrics(1001), worker_metrics(1002)
    assert first.multiprocess and second.multiprocess
    exercise(first)
    exercise(second)
    merged = families(second)  # any worker renders every worker's samples
    assert merged.keys() == expected.keys()
    for name, samples in merged.items():
        assert samples, f"{name} has no sample across workers"

    def value(family: str, sample: str, **labels: str) -> float:
        return next(s.value for s in merged[family] if s.name == sample
                    and all(s.labels.get(k) == v for k, v in labels.items()))

    duration = "miroir_request_duration_seconds"
    assert value(duration, f"{duration}_count") == 2
    assert value(duration, f"{duration}_sum") == pytest.approx(0.008)
    assert value(duration, f"{duration}_bucket", le="0.005") == 2
    assert value("miroir_requests", "miroir_requests_total", status="200") == 2
    assert value("miroir_node_errors", "miroir_node_errors_total", node="n2",
                 kind="timeout") == 2
    assert value("miroir_node_healthy", "miroir_node_healthy", node="n2") == 0


async def test_requests_in_flight_are_summed_over_workers(worker_metrics):
    first, second = worker_metrics(2001), worker_metrics(2002)
    release = trio.Event()
    seen: list[float] = []

    async def slow_app(scope, receive, send):
        await release.wait()

    def in_flight() -> float:
        return families(first)["miroir_requests_in_flight"][0].value

    async with trio.open_nursery() as nursery:
        for metrics in (first, second, second):
            app = counting_in_flight(slow_app, types.SimpleNamespace(metrics=metrics))
            nursery.start_soon(app, {"type": "http"}, None, None)
        await trio.testing.wait_all_tasks_blocked()
        seen.append(in_flight())
        release.set()
    seen.append(in_flight())
    assert seen == [3, 0]
