"""Process fixtures for the acceptance tests: real nodes and a real `miroir serve`, on loopback.

Every process is a child started by `miroir.cli.dev` (own process group, dies with its parent)
and is stopped by the fixture's finalizer whatever the test did. With $MIROIR_MEILISEARCH_BIN
set, the nodes are that Meilisearch binary instead of devnodes; nothing else changes.

Clients are the official `meilisearch` SDK from PyPI, configured as a user would configure it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import meilisearch
import pytest

from miroir.cli.dev import LocalCluster, local_cluster
from miroir.core.placement import assign_shard_in_group

MASTER_KEY = "acceptance-master-key-0123456789"
ADMIN_KEY = "acceptance-admin-key-0123456789"
# Probe fast so a killed node is noticed within a second; generous node timeout for slow CI.
FAST_HEALTH = {"interval_ms": 150, "timeout_ms": 300, "unhealthy_threshold": 2,
               "recovery_threshold": 2}
TASK_TIMEOUT_MS = 30_000


def sdk(cluster: LocalCluster, api_key: str | None = MASTER_KEY) -> meilisearch.Client:
    """An SDK client for the proxy."""
    return meilisearch.Client(cluster.url, api_key, timeout=30)


def node_sdk(cluster: LocalCluster, node_id: str) -> meilisearch.Client:
    """An SDK client straight to one node, behind Miroir's back (with the node master key)."""
    return meilisearch.Client(cluster.node(node_id).address, cluster.config.node_master_key, timeout=30)


def owners(cluster: LocalCluster, group: int, shard: int) -> list[str]:
    """The nodes of `group` that own `shard`, by the spec's placement function."""
    config = cluster.config
    members = sorted(n.id for n in config.nodes if n.replica_group == group)
    return assign_shard_in_group(shard, members, config.replication_factor)


def wait(client: meilisearch.Client, task_info) -> object:
    """Wait for the task of a TaskInfo (or uid) and return the finished Task."""
    uid = task_info if isinstance(task_info, int) else task_info.task_uid
    return client.wait_for_task(uid, timeout_in_ms=TASK_TIMEOUT_MS, interval_in_ms=20)


@pytest.fixture
def launch(tmp_path_factory) -> Iterator:
    """launch(**local_cluster kwargs) -> LocalCluster; everything launched stops at teardown."""
    with contextlib.ExitStack() as stack:

        def _launch(**kwargs) -> LocalCluster:
            kwargs.setdefault("master_key", MASTER_KEY)
            kwargs.setdefault("admin_key", ADMIN_KEY)
            sections = {"health": FAST_HEALTH, **kwargs.pop("sections", {})}
            workdir = tmp_path_factory.mktemp("cluster")
            return stack.enter_context(local_cluster(workdir, sections=sections, **kwargs))

        yield _launch


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[LocalCluster]:
    """One shared cluster for tests that do not break it: 3 nodes, RG=1, RF=1, 16 shards."""
    sections = {"health": FAST_HEALTH, "server": {"max_body_bytes": 512 * 1024}}
    with local_cluster(
        tmp_path_factory.mktemp("shared"), nodes=3, groups=1, rf=1, shards=16,
        master_key=MASTER_KEY, admin_key=ADMIN_KEY, sections=sections,
    ) as running:
        yield running
