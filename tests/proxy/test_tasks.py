"""Tasks: Miroir uids from the store, aggregation over node tasks, list, cancel, delete, poller."""

import attrs
import orjson
import pytest
import trio

from miroir.cluster.services import Services
from miroir.config import config_from_dict
from miroir.devnode.app import DevnodeApp
from miroir.proxy import create_app
from miroir.store.memory import MemoryStore
from miroir.transport.fake import Answer, FakeTransport, Hang
from tests.proxy.harness import AsgiTransport, node_config, running_proxy


async def test_task_uids_come_from_the_store_and_the_list_is_meilisearch_shaped():
    async with running_proxy(nodes=3) as h:
        uids = []
        for uid in ("a", "b", "c"):
            body = (await h.send("POST", "/indexes", {"uid": uid}))[1]
            uids.append(body["taskUid"])
        assert uids == sorted(uids) and len(set(uids)) == 3
        stored = [await h.store.get_task(uid) for uid in uids]
        assert all(task is not None for task in stored)
        status, page, _ = await h.send("GET", "/tasks?limit=2")
        assert status == 200
        assert set(page) == {"results", "total", "limit", "from", "next"}
        assert [t["uid"] for t in page["results"]] == uids[::-1][:2]
        assert page["next"] == uids[0] and page["total"] == 3
        status, page, _ = await h.send("GET", "/tasks?indexUids=b")
        assert [t["indexUid"] for t in page["results"]] == ["b"]
        task = page["results"][0]
        assert list(task) == [
            "uid", "batchUid", "indexUid", "status", "type", "canceledBy", "details", "error",
            "duration", "enqueuedAt", "startedAt", "finishedAt",
        ]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/tasks/abc", 400, "invalid_task_uids"),
        ("/tasks/-1", 400, "invalid_task_uids"),
        ("/tasks/99999", 404, "task_not_found"),
        ("/tasks?limit=x", 400, "invalid_task_limit"),
        ("/tasks?statuses=done", 400, "invalid_task_statuses"),
        ("/tasks?what=1", 400, "bad_request"),
    ],
)
async def test_bad_task_queries(path, status, code):
    async with running_proxy(nodes=1) as h:
        got, body, _ = await h.send("GET", path)
        assert (got, body["code"]) == (status, code)


async def test_cancel_and_delete_need_a_filter():
    async with running_proxy(nodes=1) as h:
        for method, path in (("POST", "/tasks/cancel"), ("DELETE", "/tasks")):
            status, body, _ = await h.send(method, path)
            assert (status, body["code"]) == (400, "missing_task_filters")


async def test_the_poller_finishes_tasks_nobody_asks_about():
    async with running_proxy(nodes=2, task_poll_interval_s=0.01) as h:
        body = (await h.send("POST", "/indexes/m/documents", [{"id": 1}]))[1]
        with trio.fail_after(10):
            while not (await h.store.get_task(body["taskUid"])).is_finished:
                await trio.sleep(0.01)
        assert (await h.store.get_task(body["taskUid"])).status == "succeeded"


async def test_delete_tasks_removes_finished_tasks_from_the_store_and_the_nodes():
    async with running_proxy(nodes=2) as h:
        body = (await h.send("POST", "/indexes/m/documents", [{"id": 1}]))[1]
        await h.wait_task(body["taskUid"])
        node_uids = {
            node: nt.task_uid for node, nt in (await h.store.get_task(body["taskUid"])).node_tasks.items()
        }
        status, deletion, _ = await h.send("DELETE", f"/tasks?uids={body['taskUid']}")
        assert status == 200 and deletion["type"] == "taskDeletion"
        task = await h.wait_task(deletion["taskUid"])
        assert task["details"]["deletedTasks"] == 1
        assert task["details"]["originalFilter"] == f"?uids={body['taskUid']}"
        assert (await h.send("GET", f"/tasks/{body['taskUid']}"))[0] == 404
        for node, uid in node_uids.items():
            assert ("DELETE" , f"/tasks?uids={uid}") in [(c[1], c[2]) for c in h.transport.calls
                                                          if c[0] == node]


def _fake_node(node_task_status: str):
    """A scripted node: the index exists with primary key `id`; writes get node task 7."""

    def handle(call):
        if call.method == "GET" and call.path == "/indexes/m":
            return Answer(200, json={"uid": "m", "primaryKey": "id"})
        if call.method in ("POST", "PUT") and call.path.startswith("/indexes/m/documents"):
            return Answer(202, json={"taskUid": 7, "status": "enqueued"})
        if call.method == "GET" and call.path == "/tasks/7":
            return Answer(200, json={"uid": 7, "status": node_task_status, "error": None})
        if call.method == "POST" and call.path.startswith("/tasks/cancel"):
            return Answer(200, json={"taskUid": 8, "status": "enqueued"})
        return Answer(404, json={"message": "?", "code": "not_found", "type": "invalid_request",
                                 "link": ""})

    return handle


@pytest.fixture
def fake_cluster():
    config = config_from_dict(
        {"shards": 4, "replica_groups": 1, "replication_factor": 2, "nodes": node_config(2),
         "scatter": {"node_timeout_ms": 1000}},
        env={},
    )
    transport = FakeTransport()
    store = MemoryStore()
    app = create_app(config, transport=transport, store=store, services=Services())
    return app, transport, store


async def test_a_timing_out_replica_degrades_the_write_and_the_task_follows_the_other(
    fake_cluster, autojump_clock
):
    app, transport, store = fake_cluster
    transport.handle("n0", _fake_node("processing"))
    slow = _fake_node("processing")
    transport.handle("n1", lambda call: Hang() if call.path.startswith("/indexes/m/documents")
                     else slow(call))
    async with app.test_app() as test_app:
        client = test_app.test_client()
        response = await client.post("/indexes/m/documents", json=[{"id": 1}, {"id": 2}])
        # RF=2 needs both owners (quorum 2 of 2): every written shard missed quorum in group 0,
        # and no other group exists, so this is a lost write.
        assert response.status_code == 503
        body = await response.get_json()
        assert body["code"] == "miroir_no_quorum"
        # n1's write was cut off at the node deadline (1 s of virtual time), not answered.
        writes = [c for c in transport.calls_to("n1") if c.path.startswith("/indexes/m/documents")]
        assert [c.outcome for c in writes] in (["timeout"], ["cancelled"])
        assert writes[0].ended_at - writes[0].started_at == pytest.approx(1.0)
        task = (await store.list_tasks(attrs.evolve(_all_tasks(), limit=10))).results[0]
        assert task.node_tasks["n1"].task_uid is None
        assert task.node_tasks["n0"].task_uid == 7
        # The task the proxy recorded follows n0's node task.
        response = await client.get(f"/tasks/{task.uid}")
        assert (await response.get_json())["status"] == "processing"
        # Cancel reaches n0 with n0's own task uid.
        response = await client.post(f"/tasks/cancel?uids={task.uid}")
        assert response.status_code == 200
        assert [c.path for c in transport.calls_to("n0") if c.path.startswith("/tasks/cancel")] == [
            "/tasks/cancel?uids=7"
        ]


def _all_tasks():
    from miroir.core.tasks import TaskQuery

    return TaskQuery()


async def test_a_failing_task_store_is_503_miroir_store_unavailable():
    from miroir.store.base import StoreError

    async with running_proxy(nodes=1) as h:

        async def broken(*args, **kwargs):
            raise StoreError("disk on fire")

        h.store.get_task = broken
        status, body, _ = await h.send("GET", "/tasks/1")
        assert (status, body["code"]) == (503, "miroir_store_unavailable")
        assert "fire" not in body["message"]


async def test_cancel_reaches_the_nodes_and_the_task_ends_canceled_by_the_cancelation():
    async with running_proxy(nodes=2) as h:
        created = (await h.send("POST", "/indexes", {"uid": "m", "primaryKey": "id"}))[1]
        await h.wait_task(created["taskUid"])
        h.pause_node_workers()
        write = (await h.send("POST", "/indexes/m/documents", [{"id": i} for i in range(10)]))[1]
        assert (await h.send("GET", f"/tasks/{write['taskUid']}"))[1]["status"] == "enqueued"
        status, cancel, _ = await h.send("POST", f"/tasks/cancel?uids={write['taskUid']}")
        assert status == 200 and cancel["type"] == "taskCancelation"
        h.start_node_workers()
        task = await h.wait_task(write["taskUid"])
        assert task["status"] == "canceled"
        assert task["canceledBy"] == cancel["taskUid"]
        cancelation = await h.wait_task(cancel["taskUid"])
        assert cancelation["status"] == "succeeded"
        assert cancelation["details"]["matchedTasks"] == 1
        assert all(not app.engine.indexes["m"].documents for app in h.nodes.values())


async def test_the_poller_survives_a_failing_store():
    from miroir.store.base import StoreError

    async with running_proxy(nodes=1, task_poll_interval_s=0.01) as h:
        real_list = h.store.list_tasks
        failures = 0

        async def flaky(query):
            nonlocal failures
            if failures < 3:
                failures += 1
                raise StoreError("blip")
            return await real_list(query)

        h.store.list_tasks = flaky
        body = (await h.send("POST", "/indexes/m/documents", [{"id": 1}]))[1]
        with trio.fail_after(10):
            while not (await h.store.get_task(body["taskUid"])).is_finished:
                await trio.sleep(0.01)
        assert failures == 3


async def test_a_write_seen_finishing_is_completed_without_asking_its_nodes_again():
    """The refresh that sees every part finish already holds each node's final view, so the
    document counts come from it: one GET /tasks/{uid} per node, and the same counts."""
    async with running_proxy(nodes=2, replication_factor=2) as h:
        created = (await h.send("POST", "/indexes", {"uid": "m", "primaryKey": "id"}))[1]
        await h.wait_task(created["taskUid"])
        h.pause_node_workers()
        write = (await h.send("POST", "/indexes/m/documents", [{"id": i} for i in range(3)]))[1]
        h.start_node_workers()
        with trio.fail_after(10):
            while any(app.engine.has_pending_tasks() or app.engine._started is not None
                      for app in h.nodes.values()):
                await trio.sleep(0.005)
        asked = len(h.transport.calls)
        status, task, _ = await h.send("GET", f"/tasks/{write['taskUid']}")
        calls = h.transport.calls[asked:]
        assert status == 200 and task["status"] == "succeeded"
        assert task["details"]["indexedDocuments"] == 3
        assert sorted(node for node, method, path in calls
                      if method == "GET" and path.startswith("/tasks/")) == sorted(h.nodes)


# ---- uids as Meilisearch numbers them: from 0, one per accepted write


async def _uids_and_types(h) -> list[tuple[int, str]]:
    page = (await h.send("GET", "/tasks"))[1]
    return [(t["uid"], t["type"]) for t in page["results"]]


async def test_a_fresh_proxy_numbers_tasks_from_0_and_a_creation_then_a_write_is_0_then_1():
    async with running_proxy(nodes=2) as h:
        created = (await h.send("POST", "/indexes", {"uid": "m", "primaryKey": "id"}))[1]
        written = (await h.send("POST", "/indexes/m/documents", [{"id": 1}]))[1]
        assert (created["taskUid"], written["taskUid"]) == (0, 1)
        assert (await h.wait_task(0))["type"] == "indexCreation"
        assert (await h.wait_task(1))["status"] == "succeeded"


async def test_a_write_to_a_missing_index_creates_it_within_its_own_one_task():
    async with running_proxy(nodes=2) as h:
        written = (await h.send("POST", "/indexes/m/documents", [{"id": 1}]))[1]
        assert written["taskUid"] == 0
        assert (await h.wait_task(0))["status"] == "succeeded"
        settings = (await h.send("PATCH", "/indexes/s/settings", {"sortableAttributes": ["a"]}))[1]
        assert settings["taskUid"] == 1
        assert (await h.wait_task(1))["status"] == "succeeded"
        assert await _uids_and_types(h) == [(1, "settingsUpdate"),
                                            (0, "documentAdditionOrUpdate")]
        assert all(app.engine.indexes.keys() >= {"m", "s"} for app in h.nodes.values())


async def test_a_missing_index_created_under_an_idempotency_key_costs_no_extra_uid():
    async with running_proxy(nodes=2) as h:
        key = {"Idempotency-Key": "first-import"}
        written = (await h.send("POST", "/indexes/m/documents", [{"id": 1}], headers=key))[1]
        assert written["taskUid"] == 0
        assert (await h.wait_task(0))["status"] == "succeeded"
        assert (await h.send("POST", "/indexes/m/documents", [{"id": 2}]))[1]["taskUid"] == 1
        assert [uid for uid, _ in await _uids_and_types(h)] == [1, 0]


async def test_an_implicit_creation_no_node_could_finish_leaves_no_task_and_no_used_uid():
    async with running_proxy(nodes=2) as h:
        h.transport.refuse = lambda node, method, path: (node, method, path) == (
            "n1", "POST", "/indexes")
        status, refused, _ = await h.send("POST", "/indexes/m/documents", [{"id": 1}])
        assert (status, refused["code"]) == (503, "miroir_node_unavailable")
        assert await _uids_and_types(h) == []
        assert not any("m" in app.engine.indexes for app in h.nodes.values())
        h.transport.refuse = lambda node, method, path: False
        assert (await h.send("POST", "/indexes/m/documents", [{"id": 1}]))[1]["taskUid"] == 0


async def test_a_client_sequence_gets_the_task_uids_a_single_node_gives_it():
    """The reference is one devnode (numbered like Meilisearch): the same writes, sent to it and
    to a fresh proxy over three nodes, are answered with the same task uids, in the same
    order, with the same task types."""
    sequence = [
        ("POST", "/indexes", {"uid": "a", "primaryKey": "id"}),
        ("POST", "/indexes/a/documents", [{"id": 1}]),
        ("POST", "/indexes/b/documents", [{"id": 1}]),  # b is missing: created by the write
        ("PATCH", "/indexes/c/settings", {"sortableAttributes": ["x"]}),  # c too
        ("PUT", "/indexes/a/documents", [{"id": 2}]),
        ("POST", "/indexes/a/documents/delete-batch", [1]),
        ("DELETE", "/indexes/b/documents", None),
        ("DELETE", "/indexes/c", None),
    ]
    async with running_proxy(nodes=3) as h:
        reference = AsgiTransport({"ref": DevnodeApp()})
        h.nursery.start_soon(reference.apps["ref"].run_task_worker)
        proxy_tasks, node_tasks = [], []
        for method, path, body in sequence:
            answered = (await h.send(method, path, body))[1]
            proxy_tasks.append((answered["taskUid"], (await h.wait_task(answered["taskUid"]))))
            raw = None if body is None else orjson.dumps(body)
            headers = [("content-type", "application/json")] if raw else []
            uid = (await reference.request("ref", method, path, body=raw, headers=headers,
                                           deadline=float("inf"))).json()["taskUid"]
            with trio.fail_after(10):
                while (view := (await reference.request(
                        "ref", "GET", f"/tasks/{uid}", deadline=float("inf"))).json()
                       )["status"] in ("enqueued", "processing"):
                    await trio.sleep(0.005)
            node_tasks.append((uid, view))
        assert [uid for uid, _ in proxy_tasks] == [uid for uid, _ in node_tasks] == list(
            range(len(sequence)))
        assert [(t["type"], t["status"]) for _, t in proxy_tasks] == [
            (t["type"], t["status"]) for _, t in node_tasks]
