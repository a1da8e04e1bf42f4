"""Online rebalance with real processes (issue #16's acceptance run): `miroir serve` (two
hypercorn workers, each following the stored topology and each running an engine that competes
for the lease) over three devnodes with 20,000 documents; one more `miroir devnode` added through the admin API while a
writer keeps writing and a reader keeps searching; then a node drained and removed the same way.
After each: every document readable with its last acknowledged version and found by search,
each shard only on its rendezvous owners, no 5xx seen by the clients."""

from __future__ import annotations

import pytest

from miroir.core.placement import assign_shard_in_group

from .conftest import ADMIN_KEY, MASTER_KEY
from .rebalance_run import (
    Traffic,
    admin,
    all_documents,
    documents_on,
    fill,
    start_extra_node,
    stop_extra_nodes,
    wait_rebalance,
)

pytestmark = pytest.mark.acceptance

SHARDS = 64
DOCUMENTS = 20_000
ENGINE = {"rebalance": {"enabled": True, "max_docs_per_second": 20_000, "grace_ms": 500},
          "server": {"workers": 2}}


def check_placement(cluster, addresses: dict[str, str], members: list[str]) -> None:
    key = cluster.config.node_master_key
    for node_id, address in addresses.items():
        held = {d["_miroir_shard"] for d in documents_on(address, key)}
        owned = {s for s in range(SHARDS) if node_id in assign_shard_in_group(s, members, 1)}
        assert held <= owned, f"{node_id} holds shards {sorted(held - owned)} it does not own"


def test_add_then_drain_and_remove_a_node_online(launch, tmp_path):
    cluster = launch(nodes=3, shards=SHARDS, sections=ENGINE)
    expected = fill(cluster, MASTER_KEY, DOCUMENTS)
    extra = start_extra_node(cluster, "node-4", tmp_path)
    try:
        addresses = {n.node_id: n.address for n in cluster.nodes}
        traffic = Traffic(cluster, MASTER_KEY, expected)
        traffic.start()
        with admin(cluster, ADMIN_KEY) as http:
            plan = http.post("/_miroir/nodes?dryRun=true",
                             json={"id": "node-4", "address": extra.address, "group": 0}).json()
            answer = http.post("/_miroir/nodes",
                               json={"id": "node-4", "address": extra.address, "group": 0})
            assert answer.status_code == 200, answer.text
        status = wait_rebalance(cluster, ADMIN_KEY)
        traffic.finish()
        assert status["state"] == "done", status["errors"]
        moved = plan["plan"]["shardReplicasCopied"]
        assert status["shardsTotal"] == moved == len(plan["plan"]["moves"])
        # the fraction moved, against S*RF/(N+1); rendezvous gives it on average, not exactly
        print(f"shards moved {moved} of {SHARDS}, S*RF/(N+1) = {SHARDS / 4}")
        assert traffic.server_errors == []
        assert traffic.writes > 0 and traffic.searches > 0
        assert all_documents(cluster, MASTER_KEY) == expected
        addresses["node-4"] = extra.address
        check_placement(cluster, addresses, sorted(addresses))

        # drain node-2 and remove it, the same way
        traffic.start()
        with admin(cluster, ADMIN_KEY) as http:
            answer = http.post("/_miroir/nodes/node-2/drain")
            assert answer.status_code == 200, answer.text
        status = wait_rebalance(cluster, ADMIN_KEY)
        traffic.finish()
        assert status["state"] == "done", status["errors"]
        with admin(cluster, ADMIN_KEY) as http:
            assert http.delete("/_miroir/nodes/node-2").status_code == 200
            listed = http.get("/_miroir/nodes").json()
        assert "node-2" not in {n["id"] for n in listed["nodes"]}
        assert traffic.server_errors == []
        assert all_documents(cluster, MASTER_KEY) == expected
        del addresses["node-2"]
        check_placement(cluster, addresses, sorted(addresses))
    finally:
        stop_extra_nodes([extra])
