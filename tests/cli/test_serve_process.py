"""`miroir serve --workers 2` and the bare hypercorn factory command, as real processes."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

import httpx
import meilisearch
import pytest
from prometheus_client.parser import text_string_to_metric_families

from miroir.cli.dev import (
    build_config,
    free_port,
    miroir_command,
    plan_nodes,
    spawn,
    start_nodes,
    stop_all,
    stop_process,
    wait_for_health,
    write_config,
)

pytestmark = pytest.mark.acceptance

MASTER_KEY = "serve-master-key-0123456789"
NODE_KEY = "serve-node-key-0123456789"
ADMIN_KEY = "serve-admin-key"
NODE_TIMEOUT_MS = 2000


@pytest.fixture
def two_nodes(tmp_path):
    nodes = start_nodes(plan_nodes(2, 1, 1), master_key=NODE_KEY, workdir=tmp_path)
    yield nodes
    stop_all(nodes)


def write_cluster_config(tmp_path, nodes, port, metrics_port):
    config = build_config(
        nodes, shards=8, rf=1, groups=1, node_master_key=NODE_KEY, master_key=MASTER_KEY,
        admin_key=ADMIN_KEY, port=port, metrics_port=metrics_port,
        task_store_path=str(tmp_path / "tasks.sqlite3"),
        sections={"scatter": {"node_timeout_ms": NODE_TIMEOUT_MS}},
    )
    return write_config(config, tmp_path / "miroir.yaml")


def write_and_read_back(url: str) -> None:
    client = meilisearch.Client(url, MASTER_KEY, timeout=30)
    index = client.index("things")
    # Several requests, so that with two workers both are likely to serve some of them.
    for batch in range(4):
        docs = [{"id": batch * 10 + i} for i in range(10)]
        assert client.wait_for_task(index.add_documents(docs).task_uid).status == "succeeded"
    for doc_id in (0, 17, 39):
        assert dict(index.get_document(doc_id)) == {"id": doc_id}


def metric_families(text: str) -> dict[str, list]:
    """Families by name with their samples, leaving out the `_created` timestamps that only a
    single process exports (the parser reads them as families of their own)."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)
            if not family.name.endswith("_created")}


def single_process_families() -> set[str]:
    """What the exporter of one process has: every family Miroir registers."""
    from miroir.proxy.metrics import Metrics

    return set(metric_families(Metrics(multiprocess=False).render()[0].decode()))


def total(families: dict[str, list], sample_name: str) -> float:
    return sum(sample.value for samples in families.values() for sample in samples
               if sample.name == sample_name)


def in_flight_while_a_node_hangs(url: str, metrics_url: str, node) -> float:
    """Stop a node (SIGSTOP: it accepts connections and never answers), write, and read
    `miroir_requests_in_flight` while the write waits for that node's deadline. (A write: its
    node timeout is also counted in `miroir_node_errors_total`. A search whose only replica
    hangs is cut off by the read's own deadline before that node's result is observed.)"""
    answered: list[int] = []

    def write() -> None:
        answered.append(httpx.post(
            f"{url}/indexes/things/documents", json=[{"id": 100 + i} for i in range(10)],
            headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30,
        ).status_code)

    node.process.send_signal(signal.SIGSTOP)
    try:
        writing = threading.Thread(target=write)
        writing.start()
        seen = 0.0
        while writing.is_alive() and seen < 1:
            families = metric_families(httpx.get(metrics_url, timeout=10).text)
            seen = total(families, "miroir_requests_in_flight")
            time.sleep(0.05)
        writing.join(30)
    finally:
        node.process.send_signal(signal.SIGCONT)
    # The stopped node's shards missed quorum: degraded (202) or, none acknowledged, 503.
    assert answered and answered[0] in (202, 503)
    return seen


def test_serve_with_two_workers_shares_one_task_store_and_aggregates_metrics(tmp_path, two_nodes):
    port, metrics_port = free_port(), free_port()
    path = write_cluster_config(tmp_path, two_nodes, port, metrics_port)
    proxy = spawn(miroir_command("serve", "--config", str(path), "--workers", "2"),
                  tmp_path / "serve.log")
    try:
        url = f"http://127.0.0.1:{port}"
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        wait_for_health(url, 30, proxy)
        write_and_read_back(url)
        assert in_flight_while_a_node_hangs(url, metrics_url, two_nodes[1]) >= 1

        exported = metric_families(httpx.get(metrics_url, timeout=10).text)
        # Families that exist only once their event happened (a shed read, a queued read, a
        # hedge) have no sample here; tests/proxy/test_metrics_modes.py covers them merged.
        event_only = {"miroir_shed_requests", "miroir_node_queue_depth", "miroir_hedged_requests"}
        missing = {name for name in single_process_families() - event_only
                   if not exported.get(name)}
        assert not missing, f"families without a sample across the workers: {missing}"
        # Every answered request was both counted and timed, whichever worker answered it.
        answered = total(exported, "miroir_requests_total")
        assert answered >= 12
        assert total(exported, "miroir_request_duration_seconds_count") == answered
        assert total(exported, "miroir_requests_in_flight") == 0
        assert total(exported, "miroir_node_errors_total") >= 1  # the stopped node's deadline
        assert total(exported, "miroir_degraded_shards_total") >= 1
        # The proxy's own metrics route shows the same merged families, from either worker.
        route = httpx.get(f"{url}/_miroir/metrics", timeout=10,
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert route.status_code == 200
        assert set(metric_families(route.text)) == set(exported)

        proxy.send_signal(signal.SIGTERM)
        assert proxy.wait(20) == 0
    finally:
        stop_process(proxy)
        print((tmp_path / "serve.log").read_text()[-3000:])


def test_the_app_factory_runs_under_plain_hypercorn(tmp_path, two_nodes):
    port = free_port()
    path = write_cluster_config(tmp_path, two_nodes, port, metrics_port=0)
    argv = [sys.executable, "-m", "hypercorn", "--worker-class", "trio",
            "--bind", f"127.0.0.1:{port}", "miroir.proxy:create_app()"]
    proxy = spawn(argv, tmp_path / "hypercorn.log", env={**os.environ, "MIROIR_CONFIG": str(path)})
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, 30, proxy)
        write_and_read_back(url)
    finally:
        stop_process(proxy)
