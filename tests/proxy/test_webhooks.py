"""Webhooks: Meilisearch's routes, shapes, limits and errors, kept in the store shared by every
proxy process; finished tasks delivered to a local receiver, with retries."""

import functools

import orjson
import pytest
import trio

from miroir.cluster.webhooks import WebhookSettings
from tests.proxy.harness import running_proxies, running_proxy
from tests.webhook_receiver import Receiver

NIL = "00000000-0000-0000-0000-000000000000"


async def test_create_read_update_delete_with_meilisearchs_shapes():
    async with running_proxy(nodes=1) as h:
        assert (await h.send("GET", "/webhooks"))[:2] == (200, {"results": []})
        status, made, _ = await h.send("POST", "/webhooks", {
            "url": "https://example.com/hook",
            "headers": {"Authorization": "Bearer a-very-long-secret-token", "X-Team": "search"},
        })
        assert status == 201
        uuid = made["uuid"]
        assert made == {"uuid": uuid, "isEditable": True, "url": "https://example.com/hook",
                        "headers": {"Authorization": "Bearer a-vXXXXX...", "X-Team": "search"}}
        assert (await h.send("GET", f"/webhooks/{uuid}"))[1] == made
        assert (await h.send("GET", "/webhooks"))[1] == {"results": [made]}
        status, changed, _ = await h.send("PATCH", f"/webhooks/{uuid}", {
            "headers": {"X-Team": None, "X-New": "1"}})
        assert status == 200
        assert changed["headers"] == {"Authorization": "Bearer a-vXXXXX...", "X-New": "1"}
        assert changed["url"] == "https://example.com/hook"
        status, changed, _ = await h.send("PATCH", f"/webhooks/{uuid}", {"headers": None})
        assert changed["headers"] == {}
        status, body, _ = await h.send("DELETE", f"/webhooks/{uuid}")
        assert status == 204
        status, error, _ = await h.send("GET", f"/webhooks/{uuid}")
        assert (status, error["code"], error["message"]) == (
            404, "webhook_not_found", f"Webhook `{uuid}` not found.")


@pytest.mark.parametrize(("body", "code"), [
    ({}, "invalid_webhook_url"),
    ({"url": None}, "invalid_webhook_url"),
    ({"url": 3}, "invalid_webhook_url"),
    ({"url": "not a url"}, "invalid_webhook_url"),
    ({"url": "https://x.y", "headers": []}, "invalid_webhook_headers"),
    ({"url": "https://x.y", "headers": {"a b": "v"}}, "invalid_webhook_headers"),
    ({"url": "https://x.y", "headers": {"X": 1}}, "invalid_webhook_headers"),
    ({"url": "https://x.y", "uuid": NIL}, "immutable_webhook_uuid"),
    ({"url": "https://x.y", "isEditable": False}, "immutable_webhook_is_editable"),
    ({"url": "https://x.y", "other": 1}, "bad_request"),
    ({"url": "https://x.y", "headers": {f"X-{i}": "v" for i in range(201)}},
     "invalid_webhook_headers"),
])
async def test_bad_bodies_are_refused_with_meilisearchs_codes_and_nothing_is_stored(body, code):
    async with running_proxy(nodes=1) as h:
        status, error, _ = await h.send("POST", "/webhooks", body)
        assert (status, error["code"]) == (400, code), error
        assert await h.store.get_webhooks() == {}


async def test_at_most_twenty_webhooks_even_across_proxies():
    async with running_proxies(2, nodes=1) as (first, second):
        async def add(h):
            return (await h.send("POST", "/webhooks", {"url": "https://x.y/h"}))[0]

        statuses = []

        async def add_one(i):
            statuses.append(await add(first if i % 2 else second))

        async with trio.open_nursery() as nursery:  # all at once, through both proxies
            for i in range(24):
                nursery.start_soon(add_one, i)
        assert statuses.count(201) == 20 and statuses.count(400) == 4
        error = (await second.send("POST", "/webhooks", {"url": "https://x.y/h"}))[1]
        assert error["code"] == "invalid_webhooks"
        assert "limit the number of webhooks to 20" in error["message"]
        # The other process shows the same list: it lives in the store.
        assert len((await first.send("GET", "/webhooks"))[1]["results"]) == 20


async def test_uuids_errors_and_the_immutable_nil_webhook():
    async with running_proxy(nodes=1) as h:
        status, error, _ = await h.send("GET", "/webhooks/not-a-uuid")
        assert (status, error["code"]) == (400, "invalid_webhook_uuid")
        for method in ("PATCH", "DELETE"):
            status, error, _ = await h.send(method, f"/webhooks/{NIL}",
                                            {} if method == "PATCH" else None)
            assert (status, error["code"]) == (400, "immutable_webhook")
        missing = "11111111-2222-3333-4444-555555555555"
        status, error, _ = await h.send("PATCH", f"/webhooks/{missing}", {"url": "https://a.b"})
        assert (status, error["code"]) == (404, "webhook_not_found")
        made = (await h.send("POST", "/webhooks", {"url": "https://a.b"}))[1]
        status, error, _ = await h.send("PATCH", f"/webhooks/{made['uuid']}", {"url": None})
        assert (status, error["code"]) == (400, "invalid_webhook_url")


async def _wait_for(predicate, seconds=10):
    with trio.fail_after(seconds):
        while not predicate():
            await trio.sleep(0.01)


async def test_finished_tasks_are_delivered_as_gzipped_ndjson_with_the_webhooks_headers():
    receiver = Receiver()
    settings = WebhookSettings(first_backoff_s=0.01, timeout_s=5)
    async with trio.open_nursery() as nursery:
        await receiver.serve(nursery)
        async with running_proxy(nodes=2, webhooks=settings) as h:
            await h.send("POST", "/webhooks", {"url": receiver.url,
                                               "headers": {"Authorization": "Bearer s3cret"}})
            summary = (await h.send("POST", "/indexes/movies/documents", [{"id": 1}],
                                    query_string={"customMetadata": "batch-7"}))[1]
            task = await h.wait_task(summary["taskUid"])
            await _wait_for(lambda: any(
                orjson.loads(line)["uid"] == task["uid"]
                for got in receiver.received for line in got.lines))
            delivered = [got for got in receiver.received
                         if any(orjson.loads(line)["uid"] == task["uid"] for line in got.lines)]
            got = delivered[0]
            assert got.method == "POST" and got.path == "/hook"
            assert got.headers["content-encoding"] == "gzip"
            assert got.headers["content-type"] == "application/x-ndjson"
            assert got.headers["authorization"] == "Bearer s3cret"
            shown = next(orjson.loads(line) for line in got.lines
                         if orjson.loads(line)["uid"] == task["uid"])
            assert shown == task and shown["customMetadata"] == "batch-7"
        nursery.cancel_scope.cancel()


async def test_a_failing_receiver_is_retried_until_it_takes_the_delivery():
    receiver = Receiver(fail_first=3)
    settings = WebhookSettings(first_backoff_s=0.01, attempts=6, timeout_s=5)
    async with trio.open_nursery() as nursery:
        await receiver.serve(nursery)
        async with running_proxy(nodes=1, webhooks=settings) as h:
            await h.send("POST", "/webhooks", {"url": receiver.url})
            summary = (await h.send("POST", "/indexes", {"uid": "movies"}))[1]
            await h.wait_task(summary["taskUid"])
            await _wait_for(lambda: receiver.answered >= 4)
            assert [got.lines for got in receiver.received[:4]] == \
                [receiver.received[0].lines] * 4  # the same batch, sent again
            delivery = h.app.extensions["miroir"].services.webhook_delivery
            # The receiver counts its answer before the proxy has read it: wait for the proxy.
            await _wait_for(lambda: delivery.delivered + delivery.failed >= 1)
            assert delivery.delivered == 1 and delivery.failed == 0
        nursery.cancel_scope.cancel()


async def test_a_slow_receiver_never_holds_up_a_write():
    async def never_answer(stream):
        await trio.sleep_forever()

    settings = WebhookSettings(first_backoff_s=0.01, timeout_s=30)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, never_answer, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        async with running_proxy(nodes=1, webhooks=settings) as h:
            await h.send("POST", "/webhooks", {"url": f"http://127.0.0.1:{port}/"})
            with trio.fail_after(5):  # far less than the receiver's 30 s timeout
                for i in range(3):
                    summary = (await h.send("POST", "/indexes/movies/documents", [{"id": i}]))[1]
                    assert (await h.wait_task(summary["taskUid"]))["status"] == "succeeded"
        nursery.cancel_scope.cancel()
