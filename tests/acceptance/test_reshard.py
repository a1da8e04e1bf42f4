"""Online resharding with real processes (issue #17's acceptance run): `miroir serve` (two
hypercorn workers) over three devnodes; an index of DOCUMENTS documents on 8 shards resharded to
32 through the admin API while a writer keeps updating documents and adding new ones and a
reader keeps searching. Afterwards every document (those the writer added during the reshard
too) is read back with its last acknowledged version and counted by search, every node holds
the index only under its new node-side name with `_miroir_shard` following 32 shards (read on
the nodes directly), and neither client saw a 5xx.

It runs the issue's size, 20,000 documents, by default: the whole test takes 30-40 s on two
shared cores (docs/operations.md, "Reshard an index", records runs: time, documents, 5xx);
`MIROIR_RESHARD_DOCUMENTS=N` changes it.
"""

from __future__ import annotations

import os
import time

import httpx
import pytest

from miroir.core.placement import assign_shard_in_group, shard_for_key

from .conftest import ADMIN_KEY, MASTER_KEY
from .rebalance_run import INDEX, Traffic, admin, all_documents, documents_on, fill

pytestmark = pytest.mark.acceptance

FROM_SHARDS, TO_SHARDS = 8, 32
DOCUMENTS = int(os.environ.get("MIROIR_RESHARD_DOCUMENTS", "20000"))
RESHARD_PATIENCE_S = 600.0
# The copy's rate limit is the rebalancer's (`rebalance.max_docs_per_second`); a one-second grace.
ENGINE = {"rebalance": {"max_docs_per_second": 50_000}, "resharding": {"grace_seconds": 1},
          "server": {"workers": 2}}


def wait_reshard(cluster, reshard_id: str) -> tuple[dict, list[str]]:
    """The finished record, and each state seen on the way."""
    give_up = time.monotonic() + RESHARD_PATIENCE_S
    seen: list[str] = []
    with admin(cluster, ADMIN_KEY) as http:
        while time.monotonic() < give_up:
            status = http.get(f"/_miroir/reshards/{reshard_id}").json()
            if not seen or seen[-1] != status["state"]:
                seen.append(status["state"])
            if status["state"] in ("done", "failed", "rolledBack"):
                return status, seen
            time.sleep(0.1)
    raise TimeoutError(f"reshard {reshard_id} did not finish: {seen}")


def test_reshard_8_to_32_while_writing_and_searching(launch):
    cluster = launch(nodes=3, shards=FROM_SHARDS, sections=ENGINE)
    expected = fill(cluster, MASTER_KEY, DOCUMENTS)
    traffic = Traffic(cluster, MASTER_KEY, expected, new_per_batch=10)
    traffic.start()
    time.sleep(0.5)  # the writer is running before the reshard starts
    started = time.monotonic()
    with admin(cluster, ADMIN_KEY) as http:
        answer = http.post(f"/_miroir/indexes/{INDEX}/reshard",
                           json={"shards": TO_SHARDS, "force": True})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert (body["index"], body["fromShards"], body["toShards"]) == (INDEX, FROM_SHARDS,
                                                                     TO_SHARDS)
    status, states = wait_reshard(cluster, body["reshardId"])
    elapsed = time.monotonic() - started
    time.sleep(0.5)  # a few writes after the flip too
    traffic.finish()
    added = len(expected) - DOCUMENTS
    print(f"\nreshard {FROM_SHARDS}->{TO_SHARDS} of {DOCUMENTS} documents: {elapsed:.1f} s "
          f"(states {states}), {traffic.writes} write batches ({added} documents added), "
          f"{traffic.searches} searches, {len(traffic.server_errors)} 5xx")
    assert status["state"] == "done", (states, status["errors"])
    assert status["documentsCopied"] >= DOCUMENTS
    # Progress stays within its total although the writer grew the index during the copy.
    assert status["documentsCopied"] <= status["documentsTotal"]
    assert traffic.server_errors == []
    assert traffic.writes > 0 and traffic.searches > 0 and added > 0
    assert all_documents(cluster, MASTER_KEY) == expected
    with httpx.Client(base_url=cluster.url, timeout=60,
                      headers={"Authorization": f"Bearer {MASTER_KEY}"}) as http:
        stats = http.get(f"/indexes/{INDEX}/stats").json()
        assert stats["numberOfDocuments"] == len(expected)
        for i in (0, DOCUMENTS - 1, max(expected)):  # an old one, the last filled, a new one
            hits = http.post(f"/indexes/{INDEX}/search",
                             json={"q": f"doc {i}", "limit": 1000}).json()
            assert i in {h["id"] for h in hits["hits"]}, i
    check_nodes(cluster, expected)


def check_nodes(cluster, expected: dict[int, int]) -> None:
    """On every node directly: the index lives under its new node-side name only, each
    document's `_miroir_shard` follows 32 shards, each node holds only the shards it owns, and
    every document is held by its owner."""
    with admin(cluster, ADMIN_KEY) as http:
        layout = http.get(f"/_miroir/aliases/{INDEX}").json()
    node_index = layout["index"]
    assert node_index != INDEX and layout["shards"] == TO_SHARDS, layout
    key = cluster.config.node_master_key
    members = sorted(n.node_id for n in cluster.nodes)
    held_ids: set[int] = set()
    for node in cluster.nodes:
        with httpx.Client(base_url=node.address, timeout=30,
                          headers={"Authorization": f"Bearer {key}"}) as http:
            assert http.get(f"/indexes/{INDEX}").status_code == 404, \
                f"{node.node_id} still holds the old layout"
        documents = documents_on(node.address, key, node_index)
        wrong = [d["id"] for d in documents
                 if d["_miroir_shard"] != shard_for_key(str(d["id"]), TO_SHARDS)]
        assert not wrong, f"{node.node_id}: _miroir_shard of {wrong[:10]} not by 32 shards"
        owned = {s for s in range(TO_SHARDS)
                 if node.node_id in assign_shard_in_group(s, members, 1)}
        held = {d["_miroir_shard"] for d in documents}
        assert held <= owned, f"{node.node_id} holds shards {sorted(held - owned)}"
        held_ids.update(d["id"] for d in documents)
    assert held_ids == set(expected)
