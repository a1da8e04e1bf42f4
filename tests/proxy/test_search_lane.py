"""The search lane (`routes_search.search_lane`) answers exactly what the Quart route answers.

Law: for any POST /indexes/{uid}/search request (good, refused, malformed, too large,
unauthorised, unknown index), the status, the headers (but the date) and the body (but the
per-request `requestUid`) are the same with the lane in front of Quart and without it; and the
request is counted and logged the same way.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.proxy.harness import running_proxy

KEY = "lane-master-key"
DOCS = [{"id": i, "title": f"night river {i}", "year": 1990 + i} for i in range(30)]


async def ask(h, path: str, body: bytes | None, headers: dict[str, str]):
    response = await h.client.open(path, method="POST", data=body, headers=headers)
    data = await response.get_data()
    try:
        parsed: Any = orjson.loads(data)
    except orjson.JSONDecodeError:
        parsed = data
    if isinstance(parsed, dict):
        parsed.pop("requestUid", None)
    kept = sorted((k.lower(), v) for k, v in response.headers.items() if k.lower() != "date")
    return response.status_code, kept, parsed


async def both_ways(h, path: str, body: bytes | None, headers: dict[str, str]):
    with_lane = await ask(h, path, body, headers)
    lane = h.app.asgi_app
    del h.app.asgi_app  # the class's own asgi_app: Quart alone
    try:
        without = await ask(h, path, body, headers)
    finally:
        h.app.asgi_app = lane
    return with_lane, without


CASES = [
    ("/indexes/movies/search", orjson.dumps({"q": "night", "limit": 5}), "application/json", True),
    ("/indexes/movies/search", orjson.dumps({"q": "night", "sort": ["year:desc"]}),
     "application/json", True),
    ("/indexes/movies/search", orjson.dumps({"filter": "nope = 1"}), "application/json", True),
    ("/indexes/missing/search", orjson.dumps({"q": "x"}), "application/json", True),
    ("/indexes/movies/search", b"[1, 2]", "application/json", True),
    ("/indexes/movies/search", b"{not json", "application/json", True),
    ("/indexes/movies/search", b"", "application/json", True),
    ("/indexes/movies/search", orjson.dumps({"q": "x"}), "text/plain", True),
    ("/indexes/movies/search", orjson.dumps({"q": "x"}), None, True),
    ("/indexes/movies/search", orjson.dumps({"q": "x" * 3000}), "application/json", True),
    ("/indexes/bad%20uid!/search", orjson.dumps({"q": "x"}), "application/json", True),
    ("/indexes/movies/search", orjson.dumps({"q": "x"}), "application/json", False),
    ("/indexes/movies/search", orjson.dumps({"limit": -1}), "application/json", True),
]


@pytest.mark.parametrize("path, body, content_type, authorised", CASES)
async def test_the_lane_answers_what_quart_answers(path, body, content_type, authorised):
    async with running_proxy(master_key=KEY, max_body_bytes=2048) as h:
        auth = {"Authorization": f"Bearer {KEY}"}
        status, task, _ = await h.send("POST", "/indexes/movies/documents", DOCS, headers=auth)
        assert status == 202
        assert (await h.wait_task(task["taskUid"], headers=auth))["status"] == "succeeded"
        headers = dict(auth) if authorised else {}
        if content_type is not None:
            headers["Content-Type"] = content_type
        with_lane, without = await both_ways(h, path, body, headers)
        assert with_lane == without


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(
    st.sampled_from(["q", "limit", "offset", "filter", "sort", "attributesToRetrieve",
                     "showRankingScore", "page", "hitsPerPage", "distinct", "facets"]),
    st.one_of(st.none(), st.booleans(), st.integers(-3, 50), st.text(max_size=8),
              st.lists(st.text(max_size=6), max_size=3)),
    max_size=4,
))
def test_any_search_body_gets_the_same_answer_with_or_without_the_lane(params):
    import trio

    async def main():
        async with running_proxy() as h:
            status, task, _ = await h.send("POST", "/indexes/movies/documents", DOCS)
            assert status == 202
            assert (await h.wait_task(task["taskUid"]))["status"] == "succeeded"
            with_lane, without = await both_ways(
                h, "/indexes/movies/search", orjson.dumps(params),
                {"Content-Type": "application/json"},
            )
            assert with_lane == without

    trio.run(main)


async def test_a_lane_answer_is_counted_and_logged_like_a_quart_one(caplog):
    async with running_proxy() as h:
        _, task, _ = await h.send("POST", "/indexes/movies/documents", DOCS)
        await h.wait_task(task["taskUid"])
        with caplog.at_level(logging.INFO, logger="miroir.access"):
            await both_ways(h, "/indexes/movies/search", b'{"q":"night"}',
                            {"Content-Type": "application/json"})
        lines = [orjson.loads(r.getMessage()) for r in caplog.records if r.name == "miroir.access"]
        assert len(lines) == 2
        for line in lines:
            del line["time"], line["duration_ms"]
        assert lines[0] == lines[1]
        assert lines[0]["path"] == "/indexes/movies/search" and lines[0]["status"] == 200
        metrics = h.app.extensions["miroir"].metrics
        counted = metrics.requests_total.labels("POST", "/indexes/<uid>/search", "200")._value.get()
        assert counted == 2
        assert metrics.in_flight == 0
        assert "miroir_requests_in_flight 0.0" in metrics.render()[0].decode()


@pytest.mark.parametrize("method, target, body", [
    ("POST", "/indexes/movies/search", b'{"q":"night"}'),  # the lane
    ("GET", "/indexes/movies/search?q=night", b""),  # Quart
])
async def test_a_request_cut_off_mid_search_is_no_longer_counted_in_flight(method, target, body):
    """Nodes are slow and the request ends without an answer: the client disconnected (Quart
    then cancels its handler, and `after_request` never runs) or the server cut it off. The
    in-flight gauge must come back down either way."""
    async with running_proxy() as h:
        _, task, _ = await h.send("POST", "/indexes/movies/documents", DOCS)
        await h.wait_task(task["taskUid"])
        await h.send("POST", "/indexes/movies/search", {"q": "night"})  # settings cached
        real_request = h.transport.request

        async def hang_searches(node_id, method, path, **kwargs):
            if path.endswith("/search"):
                await trio.sleep_forever()
            return await real_request(node_id, method, path, **kwargs)

        h.transport.request = hang_searches
        path, _, query = target.partition("?")
        scope = {"type": "http", "method": method, "path": path, "root_path": "",
                 "query_string": query.encode(), "scheme": "http", "http_version": "1.1",
                 "headers": [(b"content-type", b"application/json"),
                             (b"content-length", str(len(body)).encode())],
                 "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 7700),
                 "asgi": {"version": "3.0"}}
        received: list[str] = []
        sent: list[dict] = []

        async def receive():
            if not received:
                received.append("body")
                return {"type": "http.request", "body": body, "more_body": False}
            await trio.sleep(0.05)  # then the client goes away
            return {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        metrics = h.app.extensions["miroir"].metrics
        with trio.move_on_after(0.5):  # the server's own cut-off, for whoever ignores the client
            await h.app(scope, receive, send)
        assert not sent  # no answer ever left: it really was cut off mid-search
        assert metrics.in_flight == 0
