"""Replication with a node killed for real (SIGKILL), seen through the SDK and raw HTTP.

- RG=2, RF=2 (three nodes per group): writes keep succeeding with one node dead, and
  `X-Miroir-Degraded` names exactly the (group, shard) pairs whose owners include the dead node;
  a write that touches none of them carries no header. Every document stays readable by id.
- RG=1, RF=2: a shard whose only group lost quorum answers 503 `miroir_no_quorum`; the health
  checker marks the node failed, and healthy again once it is back.
"""

from __future__ import annotations

import time

import httpx
import pytest
from meilisearch.errors import MeilisearchApiError

from miroir.core.placement import shard_for_key

from .conftest import ADMIN_KEY, MASTER_KEY, node_sdk, owners, sdk, wait

pytestmark = pytest.mark.acceptance

DEGRADED = "X-Miroir-Degraded"
STATE_PATIENCE_SECONDS = 15.0


def ids_by_shard(shards: int, count: int = 400) -> dict[int, list[str]]:
    by_shard: dict[int, list[str]] = {s: [] for s in range(shards)}
    for i in range(count):
        key = f"k{i}"
        by_shard[shard_for_key(key, shards)].append(key)
    return by_shard


def post_documents(cluster, index_uid: str, documents: list[dict]) -> httpx.Response:
    """Raw HTTP for the write whose headers we inspect (the SDK does not expose them)."""
    return httpx.post(
        f"{cluster.url}/indexes/{index_uid}/documents",
        json=documents,
        headers={"Authorization": f"Bearer {MASTER_KEY}"},
        timeout=30,
    )


def degraded_pairs(response: httpx.Response) -> set[tuple[int, int]] | None:
    header = response.headers.get(DEGRADED)
    if header is None:
        return None
    return {tuple(map(int, item.split("/"))) for item in header.split(",")}


def node_state(cluster, node_id: str) -> str:
    topology = sdk(cluster, ADMIN_KEY).http.get("_miroir/topology")
    return next(n["state"] for n in topology["nodes"] if n["id"] == node_id)


def wait_for_state(cluster, node_id: str, wanted: str) -> None:
    give_up = time.monotonic() + STATE_PATIENCE_SECONDS
    while (state := node_state(cluster, node_id)) != wanted:
        assert time.monotonic() < give_up, f"{node_id} stayed {state!r}, expected {wanted!r}"
        time.sleep(0.05)


def assert_placement(cluster, index_uid: str, ids: set[str]) -> None:
    """Behind Miroir's back: each document is on exactly its RF owners in every group."""
    config = cluster.config
    copies: dict[tuple[int, str], int] = {}
    for node in config.nodes:
        stored = node_sdk(cluster, node.id).index(index_uid).get_documents({"limit": 10_000})
        for doc in stored.results:
            shard = shard_for_key(doc.id, config.shards)
            assert node.id in owners(cluster, node.replica_group, shard), (doc.id, node.id)
            key = (node.replica_group, doc.id)
            copies[key] = copies.get(key, 0) + 1
    expected = {(g, i): config.replication_factor for g in range(config.replica_groups) for i in ids}
    assert copies == expected


def test_rf2_over_two_groups_survives_a_dead_node_and_flags_exactly_the_degraded_shards(launch):
    shards = 16
    cluster = launch(nodes=6, groups=2, rf=2, shards=shards)
    client = sdk(cluster)
    assert wait(client, client.create_index("items", {"primaryKey": "id"})).status == "succeeded"
    keys = ids_by_shard(shards)

    before = [{"id": k, "phase": "before"} for s in range(shards) for k in keys[s][:3]]
    answer = post_documents(cluster, "items", before)
    assert answer.status_code == 202
    assert degraded_pairs(answer) is None, "a healthy cluster reported a degraded write"
    assert wait(client, answer.json()["taskUid"]).status == "succeeded"
    assert_placement(cluster, "items", {d["id"] for d in before})
    # Four copies of every document in the cluster, but the index counts each one once.
    assert client.index("items").get_stats().number_of_documents == len(before)

    dead = "node-1"
    assert cluster.node(dead).replica_group == 0
    cluster.node(dead).kill()
    hit = {s for s in range(shards) if dead in owners(cluster, 0, s)}
    missed = set(range(shards)) - hit
    assert hit and missed, "the placement should give node-1 some shards but not all"

    during = [{"id": k, "phase": "during"} for s in range(shards) for k in keys[s][3:5]]
    answer = post_documents(cluster, "items", during)
    assert answer.status_code == 202
    assert degraded_pairs(answer) == {(0, s) for s in hit}
    assert wait(client, answer.json()["taskUid"]).status == "succeeded"

    untouched = [{"id": keys[s][5], "phase": "untouched"} for s in sorted(missed)]
    answer = post_documents(cluster, "items", untouched)
    assert answer.status_code == 202
    assert degraded_pairs(answer) is None, "a write to shards away from the dead node was flagged"
    assert wait(client, answer.json()["taskUid"]).status == "succeeded"

    # Through the SDK, everything ever acknowledged is still there.
    index = client.index("items")
    for doc in before + during + untouched:
        assert dict(index.get_document(doc["id"])) == doc
    wait_for_state(cluster, dead, "failed")


def test_rf2_in_one_group_answers_no_quorum_and_recovers_when_the_node_returns(launch):
    shards = 16
    cluster = launch(nodes=3, groups=1, rf=2, shards=shards)
    client = sdk(cluster)
    assert wait(client, client.create_index("items", {"primaryKey": "id"})).status == "succeeded"
    keys = ids_by_shard(shards)
    dead = cluster.node("node-1")
    on_dead = next(s for s in range(shards) if "node-1" in owners(cluster, 0, s))
    elsewhere = next(s for s in range(shards) if "node-1" not in owners(cluster, 0, s))
    wait_for_state(cluster, "node-1", "healthy")

    dead.kill()
    with pytest.raises(MeilisearchApiError) as caught:
        client.index("items").add_documents([{"id": keys[on_dead][0]}])
    error = caught.value
    assert (error.code, error.status_code, error.type) == ("miroir_no_quorum", 503, "system")
    assert error.link == "https://docs.meilisearch.com/errors#miroir_no_quorum"

    fine = client.index("items").add_documents([{"id": keys[elsewhere][0]}])
    assert wait(client, fine).status == "succeeded"
    wait_for_state(cluster, "node-1", "failed")

    # Bring the node back on the same address: the health checker heals it.
    dead.restart()
    wait_for_state(cluster, "node-1", "healthy")
    answer = post_documents(cluster, "items", [{"id": keys[on_dead][1]}])
    assert answer.status_code == 202
    assert degraded_pairs(answer) is None
    assert wait(client, answer.json()["taskUid"]).status == "succeeded"
