"""The `Idempotency-Key` header on writes: one write per key and request, across proxies."""

from __future__ import annotations

import trio

from tests.proxy.harness import running_proxies, running_proxy


def document_writes(h) -> list:
    return [c for c in h.transport.calls if c[1] in ("POST", "PUT") and c[2].startswith(
        "/indexes/movies/documents")]


async def created(h) -> None:
    body = (await h.send("POST", "/indexes", {"uid": "movies", "primaryKey": "id"}))[1]
    await h.wait_task(body["taskUid"])


async def test_the_same_key_and_body_answers_the_same_task_and_writes_once():
    async with running_proxy(nodes=3) as h:
        await created(h)
        key = {"Idempotency-Key": "order-17"}
        docs = [{"id": 1, "title": "one"}, {"id": 2, "title": "two"}]
        status, first, headers = await h.send("POST", "/indexes/movies/documents", docs,
                                              headers=key)
        assert status == 202 and "Idempotent-Replayed" not in headers
        writes = len(document_writes(h))
        assert writes > 0
        status, again, headers = await h.send("POST", "/indexes/movies/documents", docs,
                                              headers=key)
        assert status == 202 and headers["Idempotent-Replayed"] == "true"
        assert again["taskUid"] == first["taskUid"]
        assert again == first
        assert len(document_writes(h)) == writes  # nothing new reached a node
        task = await h.wait_task(first["taskUid"])
        assert task["type"] == "documentAdditionOrUpdate" and task["status"] == "succeeded"


async def test_the_same_key_with_another_body_is_409_and_writes_nothing():
    async with running_proxy(nodes=3) as h:
        await created(h)
        key = {"Idempotency-Key": "order-18"}
        await h.send("POST", "/indexes/movies/documents", [{"id": 1}], headers=key)
        writes = len(document_writes(h))
        for method, path, body in (("POST", "/indexes/movies/documents", [{"id": 2}]),
                                   ("PUT", "/indexes/movies/documents", [{"id": 1}]),
                                   ("POST", "/indexes/movies/documents/delete-batch", [1])):
            status, error, _ = await h.send(method, path, body, headers=key)
            assert status == 409, (method, path, error)
            assert error["code"] == "miroir_idempotency_key_reused"
            assert set(error) == {"message", "code", "type", "link"}
            assert error["type"] == "invalid_request"
        assert len(document_writes(h)) == writes


async def test_without_the_header_every_request_is_a_new_task():
    async with running_proxy(nodes=3) as h:
        await created(h)
        first = (await h.send("POST", "/indexes/movies/documents", [{"id": 1}]))[1]
        second = (await h.send("POST", "/indexes/movies/documents", [{"id": 1}]))[1]
        assert first["taskUid"] != second["taskUid"]


async def test_a_refused_write_gives_its_key_back_so_a_retry_runs():
    async with running_proxy(nodes=3) as h:
        await created(h)
        key = {"Idempotency-Key": "retry-me"}
        status, _, _ = await h.send("POST", "/indexes/movies/documents", b"not json",
                                    headers=key)
        assert status == 400
        status, body, _ = await h.send("POST", "/indexes/movies/documents", [{"id": 5}],
                                       headers=key)
        assert status == 202
        assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"


async def test_a_bad_key_is_refused_before_anything_runs():
    async with running_proxy(nodes=3) as h:
        await created(h)
        for bad in ("", "x" * 256, "has space"):
            status, error, _ = await h.send("POST", "/indexes/movies/documents", [{"id": 1}],
                                            headers={"Idempotency-Key": bad})
            assert status == 400, bad
            assert error["code"] == "miroir_invalid_idempotency_key"
        assert document_writes(h) == []


async def test_two_proxies_racing_on_one_key_write_once_and_answer_one_task():
    async with running_proxies(2, nodes=3) as (a, b):
        await created(a)
        key = {"Idempotency-Key": "raced"}
        docs = [{"id": 9, "title": "nine"}]
        answers = []

        async def send(h) -> None:
            answers.append(await h.send("POST", "/indexes/movies/documents", docs, headers=key))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send, a)
            nursery.start_soon(send, b)
        assert [status for status, _, _ in answers] == [202, 202]
        assert answers[0][1]["taskUid"] == answers[1][1]["taskUid"]
        tasks = (await a.send("GET", "/tasks?types=documentAdditionOrUpdate"))[1]["results"]
        assert len(tasks) == 1


async def test_a_settings_update_that_creates_its_index_keys_the_settings_task():
    async with running_proxy(nodes=3) as h:
        key = {"Idempotency-Key": "settings-1"}
        patch = {"filterableAttributes": ["genre"]}
        status, first, _ = await h.send("PATCH", "/indexes/fresh/settings", patch, headers=key)
        assert status == 202 and first["type"] == "settingsUpdate"
        status, again, headers = await h.send("PATCH", "/indexes/fresh/settings", patch,
                                              headers=key)
        assert status == 202 and headers["Idempotent-Replayed"] == "true"
        assert again["taskUid"] == first["taskUid"]


async def test_a_write_that_creates_its_index_keys_the_write_task():
    async with running_proxy(nodes=3) as h:
        key = {"Idempotency-Key": "first-write"}
        status, first, _ = await h.send("POST", "/indexes/fresh/documents", [{"id": 1}],
                                        headers=key)
        assert status == 202 and first["type"] == "documentAdditionOrUpdate"
        status, again, _ = await h.send("POST", "/indexes/fresh/documents", [{"id": 1}],
                                        headers=key)
        assert again["taskUid"] == first["taskUid"]
        assert (await h.store.get_idempotency_key("first-write", h.cluster.now_ms())).task_uid \
            == first["taskUid"]
