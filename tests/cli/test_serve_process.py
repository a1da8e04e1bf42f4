"""`miroir serve --workers 2` and the bare hypercorn factory command, as real processes."""

from __future__ import annotations

import os
import signal
import sys

import httpx
import meilisearch
import pytest

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


@pytest.fixture
def two_nodes(tmp_path):
    nodes = start_nodes(plan_nodes(2, 1, 1), master_key=NODE_KEY, workdir=tmp_path)
    yield nodes
    stop_all(nodes)


def write_cluster_config(tmp_path, nodes, port, metrics_port):
    config = build_config(
        nodes, shards=8, rf=1, groups=1, node_master_key=NODE_KEY, master_key=MASTER_KEY,
        admin_key="serve-admin-key", port=port, metrics_port=metrics_port,
        task_store_path=str(tmp_path / "tasks.sqlite3"),
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


def test_serve_with_two_workers_shares_one_task_store_and_aggregates_metrics(tmp_path, two_nodes):
    port, metrics_port = free_port(), free_port()
    path = write_cluster_config(tmp_path, two_nodes, port, metrics_port)
    proxy = spawn(miroir_command("serve", "--config", str(path), "--workers", "2"),
                  tmp_path / "serve.log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_health(url, 30, proxy)
        write_and_read_back(url)
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert "miroir_requests_total" in metrics
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
