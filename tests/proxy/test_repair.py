"""A node that comes back empty is re-provisioned, backfilled and serves reads again; tasks whose
node part was on it finish; deletes made during a backfill are not resurrected."""

from __future__ import annotations

from typing import Any

import trio

from miroir.cluster.repair import RepairWorker
from miroir.core.node_state import NodeEvent, NodeState
from miroir.core.placement import shard_for_key
from miroir.devnode.app import DevnodeApp
from tests.proxy.harness import Harness, running_proxy

SETTINGS = {"filterableAttributes": ["genre"], "sortableAttributes": ["year"],
            "searchableAttributes": ["title"]}


def movie(i: int) -> dict[str, Any]:
    return {"id": i, "title": f"movie {i}", "genre": ["drama", "comedy"][i % 2], "year": 1990 + i}


def wipe(h: Harness, node: str) -> DevnodeApp:
    """The node restarts with its state lost: a fresh devnode under the same id."""
    fresh = DevnodeApp()
    h.nodes[node] = fresh
    h.transport.apps[node] = fresh
    h.nursery.start_soon(fresh.run_task_worker)
    return fresh


async def wait_state(h: Harness, node: str, *states: NodeState) -> None:
    with trio.fail_after(20):
        while h.cluster.state_of(node) not in states:
            await trio.sleep(0.01)


async def write(h: Harness, method: str, path: str, body: Any = None) -> dict[str, Any]:
    status, answer, _ = await h.send(method, path, body)
    assert status == 202, answer
    task = await h.wait_task(answer["taskUid"])
    assert task["status"] == "succeeded", task
    return task


async def node_documents(app: DevnodeApp, uid: str) -> dict[int, dict[str, Any]]:
    """Every document a devnode holds, asked over its own HTTP API (no Miroir in between)."""
    from tests.proxy.harness import AsgiTransport

    response = await AsgiTransport({"x": app}).request(
        "x", "POST", f"/indexes/{uid}/documents/fetch",
        body=b'{"limit": 100000}', headers=[("content-type", "application/json")],
        deadline=trio.current_time() + 5,
    )
    assert response.status == 200, response.body
    return {doc["id"]: doc for doc in response.json()["results"]}


def owned_by(h: Harness, node: str, ids: range | list[int]) -> set[int]:
    shards = set(h.cluster.shard_map.shards_of(node))
    return {i for i in ids if shard_for_key(str(i), h.cluster.topology.shards) in shards}


async def test_a_wiped_node_is_reprovisioned_backfilled_and_serves_every_document():
    async with running_proxy(nodes=4, replica_groups=2, shards=8, health_interval_ms=10,
                             task_poll_interval_s=0.02) as h:
        await write(h, "POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        await write(h, "PATCH", "/indexes/movies/settings", SETTINGS)
        await write(h, "POST", "/indexes/movies/documents", [movie(i) for i in range(60)])
        await wait_state(h, "n0", NodeState.HEALTHY)

        seen: list[NodeState] = []
        h.cluster.state_observers.append(lambda node, state: node == "n0" and seen.append(state))
        h.transport.down.add("n0")
        await wait_state(h, "n0", NodeState.FAILED)
        fresh = wipe(h, "n0")
        # Writes while the node is away: it misses them.
        await write(h, "POST", "/indexes/movies/documents", [movie(i) for i in range(60, 80)])
        await write(h, "POST", "/indexes/movies/documents/delete-batch", list(range(0, 10)))
        h.transport.down.discard("n0")
        # failed -> healthy -> joining happens in one call, so no read sees it healthy and empty;
        # caught_up makes it active, and the next probe healthy.
        await wait_state(h, "n0", NodeState.ACTIVE, NodeState.HEALTHY)
        assert NodeState.JOINING in seen[seen.index(NodeState.FAILED):]
        assert seen.index(NodeState.ACTIVE) > seen.index(NodeState.JOINING)

        settings = (await h.send("GET", "/indexes/movies/settings"))[1]
        on_node = await node_documents(fresh, "movies")
        expected = owned_by(h, "n0", range(10, 80))
        assert expected and set(on_node) == expected
        assert all(on_node[i]["title"] == f"movie {i}" for i in expected)
        # The node got the cluster's settings, with `_miroir_shard` filterable.
        node_settings = (await h.transport.request(
            "n0", "GET", "/indexes/movies/settings", deadline=trio.current_time() + 5)).json()
        assert node_settings["sortableAttributes"] == settings["sortableAttributes"]
        assert "_miroir_shard" in node_settings["filterableAttributes"]

        # Group 1 goes away: every read now comes from group 0, the repaired node included.
        h.transport.down.update({"n1", "n3"})
        await wait_state(h, "n1", NodeState.FAILED)
        await wait_state(h, "n3", NodeState.FAILED)
        status, body, _ = await h.send("POST", "/indexes/movies/search",
                                       {"q": "", "limit": 100, "filter": "genre = drama"})
        assert status == 200, body
        assert sorted(hit["id"] for hit in body["hits"]) == [
            i for i in range(10, 80) if i % 2 == 0
        ]


async def test_a_document_deleted_during_the_backfill_is_not_resurrected():
    async with running_proxy(nodes=2, replica_groups=2, shards=4) as h:
        await write(h, "POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        await write(h, "POST", "/indexes/movies/documents", [movie(i) for i in range(30)])
        victim = min(owned_by(h, "n0", range(30)))
        real_request = h.transport.request
        deleted = False

        async def delete_after_the_copy_fetch(node_id, method, path, **kwargs):
            nonlocal deleted
            answer = await real_request(node_id, method, path, **kwargs)
            if node_id == "n1" and path.endswith("/documents/fetch") and not deleted:
                deleted = True  # the client's delete lands on both replicas mid-backfill
                for node in ("n0", "n1"):
                    sent = await real_request(node, "DELETE",
                                              f"/indexes/movies/documents/{victim}",
                                              deadline=trio.current_time() + 5)
                    assert sent.status == 202
                await trio.sleep(0.05)  # both devnodes apply it before the copy is written
            return answer

        wipe(h, "n0")
        h.transport.request = delete_after_the_copy_fetch
        worker = RepairWorker(h.cluster, page_size=7)
        h.cluster.apply_node_event("n0", NodeEvent.REJOIN)
        assert await worker.repair_node("n0")
        assert deleted
        assert h.cluster.state_of("n0") is NodeState.ACTIVE
        on_node = await node_documents(h.nodes["n0"], "movies")
        assert victim not in on_node
        assert set(on_node) == owned_by(h, "n0", range(30)) - {victim}


async def test_a_shard_without_a_readable_replica_keeps_the_node_joining():
    # group 0 = n0, n2; group 1 = n1: n0's shards have their other copy on n1 alone.
    async with running_proxy(nodes=3, replica_groups=2, shards=4) as h:
        await write(h, "POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        await write(h, "POST", "/indexes/movies/documents", [movie(i) for i in range(10)])
        wipe(h, "n0")
        h.transport.down.add("n1")  # the other copy is on a failed node: it may come back
        h.cluster.apply_node_event("n1", NodeEvent.MARKED_UNHEALTHY)
        worker = RepairWorker(h.cluster)
        h.cluster.apply_node_event("n0", NodeEvent.REJOIN)
        assert not await worker.repair_node("n0")
        assert h.cluster.state_of("n0") is NodeState.JOINING
        assert worker.waiting["n0"] == {"movies": list(h.cluster.shard_map.shards_of("n0"))}
        # Provisioned all the same (the index is back, with no documents yet).
        assert (await node_documents(h.nodes["n0"], "movies")) == {}
        topology = (await h.send("GET", "/_miroir/topology"))[1]
        assert {n["id"]: n["state"] for n in topology["nodes"]}["n0"] == "joining"
        assert topology["fullyCovered"] is False
        # n1 comes back with its data: the next attempt copies from it.
        h.transport.down.discard("n1")
        h.cluster.apply_node_event("n1", NodeEvent.MARKED_HEALTHY)  # the worker: n1 rejoins
        assert h.cluster.state_of("n1") is NodeState.JOINING
        assert await worker.repair_node("n1")  # intact: its own copy of n0's shards stands
        assert await worker.repair_node("n0")
        assert set(await node_documents(h.nodes["n0"], "movies")) == owned_by(h, "n0", range(10))


async def test_when_every_copy_of_a_shard_was_wiped_the_node_catches_up_and_says_so():
    async with running_proxy(nodes=3, replica_groups=2, shards=4) as h:
        await write(h, "POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        await write(h, "POST", "/indexes/movies/documents", [movie(i) for i in range(10)])
        wipe(h, "n0")
        wipe(h, "n1")  # n0's shards have their only other copy on n1
        worker = RepairWorker(h.cluster)
        h.cluster.apply_node_event("n0", NodeEvent.REJOIN)
        h.cluster.apply_node_event("n1", NodeEvent.REJOIN)
        # Waiting could never bring the data back and would refuse the writes that can.
        assert await worker.repair_node("n0")
        assert worker.lost["n0"] == {"movies": list(h.cluster.shard_map.shards_of("n0"))}
        assert await worker.repair_node("n1")
        status, body, _ = await h.send("POST", "/indexes/movies/documents", [movie(1)])
        assert status == 202 and (await h.wait_task(body["taskUid"]))["status"] == "succeeded"


async def test_two_returning_replicas_that_kept_their_data_do_not_wait_for_each_other():
    async with running_proxy(nodes=3, replica_groups=2, shards=4) as h:
        await write(h, "POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        await write(h, "POST", "/indexes/movies/documents", [movie(i) for i in range(10)])
        worker = RepairWorker(h.cluster)
        h.cluster.apply_node_event("n0", NodeEvent.REJOIN)
        h.cluster.apply_node_event("n1", NodeEvent.REJOIN)
        assert await worker.repair_node("n1")
        assert await worker.repair_node("n0")
        assert {h.cluster.state_of(n) for n in ("n0", "n1")} == {NodeState.ACTIVE}
        assert set(await node_documents(h.nodes["n0"], "movies")) == owned_by(h, "n0", range(10))


async def test_a_write_whose_node_part_was_wiped_finishes():
    # RG=2: every shard has a copy in the other group, so the client's write stands.
    async with running_proxy(nodes=2, replica_groups=2, shards=4, task_poll_interval_s=0.02) as h:
        await write(h, "POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        h.pause_node_workers()
        h.nursery.start_soon(h.nodes["n1"].run_task_worker)
        status, answer, _ = await h.send("POST", "/indexes/movies/documents",
                                         [movie(i) for i in range(10)])
        assert status == 202
        wipe(h, "n0")  # n0's part was still enqueued: its task uid is gone with it
        task = await h.wait_task(answer["taskUid"])
        assert task["status"] == "succeeded", task
        stored = await h.store.get_task(answer["taskUid"])
        assert stored.node_tasks["n0"].error["code"] == "miroir_node_task_lost"


async def test_a_write_whose_only_copy_was_wiped_fails_with_node_task_lost():
    async with running_proxy(nodes=1, shards=4, task_poll_interval_s=0.02) as h:
        await write(h, "POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        h.pause_node_workers()
        status, answer, _ = await h.send("POST", "/indexes/movies/documents", [movie(1)])
        assert status == 202
        wipe(h, "n0")
        task = await h.wait_task(answer["taskUid"])
        assert task["status"] == "failed"
        assert task["error"]["code"] == "miroir_node_task_lost"
        assert task["error"]["type"] == "system"


async def test_a_node_uid_reused_for_another_index_after_a_wipe_is_a_lost_part():
    async with running_proxy(nodes=2, replica_groups=2, shards=4, task_poll_interval_s=0.02) as h:
        await write(h, "POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        h.pause_node_workers()
        h.nursery.start_soon(h.nodes["n1"].run_task_worker)
        status, answer, _ = await h.send("POST", "/indexes/movies/documents", [movie(1)])
        assert status == 202
        stored = await h.store.get_task(answer["taskUid"])
        fresh = wipe(h, "n0")
        for i in range(stored.node_tasks["n0"].task_uid + 1):  # the old uid now names these
            fresh.engine.create_index(f"other{i}")
        task = await h.wait_task(answer["taskUid"])
        assert task["status"] == "succeeded", task
        stored = await h.store.get_task(answer["taskUid"])
        assert stored.node_tasks["n0"].error["code"] == "miroir_node_task_lost"


async def test_a_node_back_from_failed_drops_an_index_deleted_meanwhile_and_gets_missed_writes():
    async with running_proxy(nodes=2, replica_groups=2, shards=4) as h:
        await write(h, "POST", "/indexes", {"uid": "old", "primaryKey": "id"})
        await write(h, "POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        worker = RepairWorker(h.cluster)
        h.transport.down.add("n0")  # kept its disk, but misses what follows
        h.cluster.apply_node_event("n0", NodeEvent.MARKED_UNHEALTHY)
        await write(h, "DELETE", "/indexes/old")
        status, body, _ = await h.send("POST", "/indexes/movies/documents",
                                       [movie(i) for i in range(12)])
        assert status == 202  # RG=2: group 1 holds every shard
        await h.wait_task(body["taskUid"])
        h.transport.down.discard("n0")
        h.cluster.apply_node_event("n0", NodeEvent.MARKED_HEALTHY)  # the worker: rejoin
        assert await worker.repair_node("n0")
        listed = (await h.transport.request("n0", "GET", "/indexes",
                                            deadline=trio.current_time() + 5)).json()
        assert [index["uid"] for index in listed["results"]] == ["movies"]
        assert set(await node_documents(h.nodes["n0"], "movies")) == set(range(12))


async def test_a_wiped_node_gets_its_documents_back_with_their_vectors():
    embedders = {"default": {"source": "userProvided", "dimensions": 2}}
    async with running_proxy(nodes=2, replica_groups=2, shards=4, health_interval_ms=10,
                             task_poll_interval_s=0.02) as h:
        await write(h, "POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        await write(h, "PATCH", "/indexes/movies/settings", {"embedders": embedders})
        docs = [{**movie(i), "_vectors": {"default": [i / 10, 1 - i / 10]}} for i in range(20)]
        await write(h, "POST", "/indexes/movies/documents", docs)
        await wait_state(h, "n0", NodeState.HEALTHY)
        h.transport.down.add("n0")
        await wait_state(h, "n0", NodeState.FAILED)
        fresh = wipe(h, "n0")
        h.transport.down.discard("n0")
        await wait_state(h, "n0", NodeState.ACTIVE, NodeState.HEALTHY)
        index = fresh.engine.get_index("movies")
        assert index.settings["embedders"] == embedders
        assert {index.document_ids[i]: e for i, e in index.embeddings["default"].items()} == {
            str(i): [[i / 10, 1 - i / 10]] for i in range(20)}


async def test_a_settings_change_during_provisioning_is_not_undone_by_the_repair():
    # The race behind the simulator's seed 5 on 3n-rf2 (docs/search.md): the repair read the
    # committed settings, a client's change then reached every node (the returning one too) and
    # committed, and only then did the repair's PATCH of the older settings land on the
    # returning node. That node was recorded at the new version while holding the old
    # settings, so searches it answered refused a filter the cluster accepts.
    async with running_proxy(nodes=2, replica_groups=2, shards=4,
                             task_poll_interval_s=0.02) as h:
        await write(h, "POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        await write(h, "POST", "/indexes/movies/documents", [movie(i) for i in range(10)])
        real_request = h.transport.request
        changed = False

        async def change_before_the_repair_patch(node_id, method, path, **kwargs):
            nonlocal changed
            if (node_id, method, path) == ("n0", "PATCH", "/indexes/movies/settings") \
                    and not changed:
                changed = True  # the client's change overtakes the repair's stale PATCH
                await write(h, "PATCH", "/indexes/movies/settings", SETTINGS)
            return await real_request(node_id, method, path, **kwargs)

        wipe(h, "n0")
        h.transport.request = change_before_the_repair_patch
        worker = RepairWorker(h.cluster)
        h.cluster.apply_node_event("n0", NodeEvent.REJOIN)
        assert await worker.repair_node("n0")
        h.transport.request = real_request
        assert changed
        committed = await h.store.get_committed_settings("movies")
        versions = await h.store.get_settings_versions("movies")
        held = (await h.transport.request(
            "n0", "GET", "/indexes/movies/settings", deadline=trio.current_time() + 5)).json()
        # n0 is recorded at the committed version (readable for the index) and holds it.
        assert versions["n0"] == committed.version
        assert held == committed.settings
        assert "genre" in held["filterableAttributes"]
        # And a search that n0 answers alone (n1 down) takes the new filter.
        h.transport.down.add("n1")
        h.cluster.apply_node_event("n1", NodeEvent.MARKED_UNHEALTHY)
        status, body, _ = await h.send("POST", "/indexes/movies/search",
                                       {"q": "", "filter": "genre = drama"})
        assert status == 200, body
