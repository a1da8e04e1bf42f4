"""HttpTransport against a real HTTP/1.1 server on 127.0.0.1 (tests/transport/node_server.py)."""

from __future__ import annotations

import socket

import orjson
import pytest
import trio

from miroir.transport import (
    NodeProtocolError,
    NodeRefused,
    NodeReset,
    NodeTimeout,
    Transport,
    UnknownNode,
)
from miroir.transport.http import HttpTransport, is_read_only
from miroir.transport.http_wire import Connection
from tests.transport.node_server import Drop, HalfReply, Junk, Raw, Reply, Stall, node_server

KEY = "node-master-key"


def echo(seen):
    return Reply(200, orjson.dumps({"method": seen.method, "target": seen.target}))


def deadline(seconds: float = 5.0) -> float:
    return trio.current_time() + seconds


async def test_round_trip_sends_key_host_type_and_length_and_parses_json():
    async with node_server(echo) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        assert isinstance(transport, Transport)
        response = await transport.request(
            "n1",
            "POST",
            "/indexes/movies/search?x=1",
            body=b'{"q":"a"}',
            headers=[("X-Request-Id", "r1"), ("Authorization", "Bearer client-key")],
            deadline=deadline(),
        )
        assert response.status == 200 and response.node_id == "n1"
        assert response.json() == {"method": "POST", "target": "/indexes/movies/search?x=1"}
        assert response.header("content-length") == str(len(response.body))
        seen = server.seen[0]
        assert seen.body == b'{"q":"a"}'
        assert seen.headers["authorization"] == f"Bearer {KEY}"  # the node key, not the client's
        assert seen.headers["host"] == f"127.0.0.1:{server.port}"
        assert seen.headers["content-type"] == "application/json"
        assert seen.headers["content-length"] == "9"
        assert seen.headers["x-request-id"] == "r1"
        await transport.aclose()


async def test_no_key_means_no_authorization_header_and_client_header_passes():
    async with node_server(echo) as server:
        transport = HttpTransport({"n1": server.url}, api_key=None)
        await transport.request("n1", "GET", "/health", deadline=deadline())
        await transport.request(
            "n1", "GET", "/health", headers=[("authorization", "Bearer c")], deadline=deadline()
        )
        assert "authorization" not in server.seen[0].headers
        assert server.seen[1].headers["authorization"] == "Bearer c"


async def test_keep_alive_reuses_one_connection_for_sequential_calls():
    async with node_server(echo) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        for index in range(5):
            response = await transport.request("n1", "GET", f"/r{index}", deadline=deadline())
            assert response.json()["target"] == f"/r{index}"
        assert server.connections == 1
        assert transport.idle_connections("n1") == 1


async def test_chunked_answers_are_reassembled():
    payload = orjson.dumps({"hits": [{"id": i} for i in range(200)]})
    async with node_server(lambda seen: Reply(200, payload, chunked=True)) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        for _ in range(2):
            response = await transport.request("n1", "GET", "/x", deadline=deadline())
            assert response.body == payload
        assert server.connections == 1  # chunked framing ends cleanly, so the socket is reused


async def test_connection_close_answer_is_not_pooled():
    async with node_server(lambda seen: Reply(200, b"{}", close=True)) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        for _ in range(3):
            assert (await transport.request("n1", "GET", "/", deadline=deadline())).status == 200
            assert transport.idle_connections("n1") == 0
        assert server.connections == 3


@pytest.mark.parametrize("method,path", [("GET", "/stats"), ("POST", "/indexes/m/documents")])
async def test_a_connection_the_node_closed_while_idle_is_detected_before_reuse(method, path):
    async with node_server(lambda seen: Reply(202, b"{}", close_silently=True)) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        for _ in range(3):
            await trio.sleep(0.05)  # let the node's FIN arrive
            response = await transport.request("n1", method, path, body=b"[]", deadline=deadline())
            assert response.status == 202
        assert len(server.seen) == 3 and server.connections == 3


async def test_undetected_stale_connection_retries_reads_but_never_repeats_writes(monkeypatch):
    # Model the race the idle poll cannot close: the node's FIN arrives after the poll.
    monkeypatch.setattr(Connection, "looks_stale", lambda self: False)
    async with node_server(lambda seen: Reply(202, b"{}", close_silently=True)) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        await transport.request("n1", "GET", "/stats", deadline=deadline())
        await trio.sleep(0.05)
        response = await transport.request("n1", "GET", "/stats", deadline=deadline())
        assert response.status == 202 and len(server.seen) == 2  # retried on a fresh socket
        await trio.sleep(0.05)
        with pytest.raises(NodeReset):
            await transport.request(
                "n1", "POST", "/indexes/m/documents", body=b"[]", deadline=deadline()
            )
        assert len(server.seen) == 2  # the write never reached a node, and was not resent
        assert transport.idle_connections("n1") == 0


def test_read_only_requests_are_the_ones_safe_to_retry():
    assert is_read_only("GET", "/indexes")
    assert is_read_only("POST", "/indexes/movies/search?x=1")
    assert is_read_only("POST", "/multi-search")
    assert not is_read_only("POST", "/indexes/movies/documents")
    assert not is_read_only("DELETE", "/indexes/movies")
    assert not is_read_only("PATCH", "/indexes/movies/settings")


async def test_4xx_and_5xx_are_answers_not_errors():
    statuses = iter([404, 503])
    async with node_server(lambda seen: Reply(next(statuses), b'{"code":"x"}')) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        assert (await transport.request("n1", "GET", "/", deadline=deadline())).status == 404
        assert (await transport.request("n1", "GET", "/", deadline=deadline())).status == 503
        assert server.connections == 1


async def test_refused_connection():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = HttpTransport({"n1": f"http://127.0.0.1:{port}"}, api_key=KEY)
    with pytest.raises(NodeRefused):
        await transport.request("n1", "GET", "/", deadline=deadline())


async def test_unknown_node_and_bad_addresses():
    transport = HttpTransport({}, api_key=KEY)
    with pytest.raises(UnknownNode):
        await transport.request("ghost", "GET", "/", deadline=deadline())
    with pytest.raises(ValueError):
        HttpTransport({"n1": "https://example.org"}, api_key=KEY)


async def test_a_stalled_node_times_out_and_its_connection_is_dropped():
    async with node_server(
        lambda seen: Stall() if seen.target == "/stall" else echo(seen)
    ) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        await transport.request("n1", "GET", "/warm", deadline=deadline())
        with pytest.raises(NodeTimeout):
            await transport.request("n1", "GET", "/stall", deadline=deadline(0.2))
        assert transport.idle_connections("n1") == 0
        response = await transport.request("n1", "GET", "/after", deadline=deadline())
        assert response.json()["target"] == "/after" and server.connections == 2


async def test_a_cancelled_call_never_leaves_a_half_read_connection_in_the_pool():
    # The node answers slowly; the caller gives up midway. If the socket went back to the pool,
    # the next caller would read the stale answer to /slow instead of its own.
    def handler(seen):
        return Reply(
            200, orjson.dumps({"target": seen.target}), delay=0.3 if seen.target == "/slow" else 0
        )

    async with node_server(handler) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        await transport.request("n1", "GET", "/warm", deadline=deadline())
        with trio.move_on_after(0.05) as scope:
            await transport.request("n1", "GET", "/slow", deadline=deadline())
        assert scope.cancelled_caught
        assert transport.idle_connections("n1") == 0
        await trio.sleep(0.4)
        response = await transport.request("n1", "GET", "/mine", deadline=deadline())
        assert response.json() == {"target": "/mine"}


async def test_half_an_answer_is_a_reset_and_junk_is_a_protocol_error():
    actions = {"/half": HalfReply(), "/junk": Junk(), "/drop": Drop()}
    async with node_server(lambda seen: actions[seen.target]) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        with pytest.raises(NodeReset):
            await transport.request("n1", "GET", "/half", deadline=deadline())
        with pytest.raises(NodeProtocolError):
            await transport.request("n1", "GET", "/junk", deadline=deadline())
        with pytest.raises(NodeReset):
            await transport.request("n1", "GET", "/drop", deadline=deadline())
        assert len(server.seen) == 3  # a fresh connection is never retried


async def test_per_node_connection_limit_queues_callers():
    async with node_server(lambda seen: Reply(200, b"{}", delay=0.02)) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY, max_connections_per_node=2)

        async def call():
            await transport.request("n1", "GET", "/", deadline=deadline())

        async with trio.open_nursery() as nursery:
            for _ in range(6):
                nursery.start_soon(call)
        assert len(server.seen) == 6 and server.connections == 2


async def test_set_addresses_moves_a_node_and_keeps_unchanged_pools():
    async with node_server(echo) as first, node_server(echo) as second:
        transport = HttpTransport({"n1": first.url, "n2": second.url}, api_key=KEY)
        await transport.request("n1", "GET", "/", deadline=deadline())
        await transport.request("n2", "GET", "/", deadline=deadline())
        transport.set_addresses({"n1": second.url, "n2": second.url})
        assert transport.idle_connections("n1") == 0 and transport.idle_connections("n2") == 1
        await transport.request("n1", "GET", "/", deadline=deadline())
        await transport.request("n2", "GET", "/", deadline=deadline())
        assert len(first.seen) == 1 and len(second.seen) == 3 and second.connections == 2
        transport.set_addresses({"n2": second.url})
        with pytest.raises(UnknownNode):
            await transport.request("n1", "GET", "/", deadline=deadline())
        await transport.aclose()
        with pytest.raises(RuntimeError):
            await transport.request("n2", "GET", "/", deadline=deadline())


RAW_ANSWERS = {
    # body delimited by the node closing the socket
    "/eof": Raw(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"eof": true}'),
    # an interim 100 Continue before the real answer
    "/interim": Raw(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}",
        close=False,
    ),
    # HTTP/1.0 without keep-alive: must not be pooled
    "/http10": Raw(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\n{}", close=False),
    # bytes after the end of the answer: the socket is out of step, never reuse it
    "/trailing": Raw(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}HTTP/1.1 200", close=False),
}


@pytest.mark.parametrize(
    "target,status,body,pooled",
    [
        ("/eof", 200, b'{"eof": true}', False),
        ("/interim", 201, b"{}", True),
        ("/http10", 200, b"{}", False),
        ("/trailing", 200, b"{}", False),
    ],
)
async def test_unusual_framing(target, status, body, pooled):
    async with node_server(lambda seen: RAW_ANSWERS.get(seen.target) or echo(seen)) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        response = await transport.request("n1", "GET", target, deadline=deadline())
        assert (response.status, response.body) == (status, body)
        assert transport.idle_connections("n1") == (1 if pooled else 0)


async def test_head_answer_has_no_body_and_does_not_hang():
    head = Raw(b"HTTP/1.1 200 OK\r\ncontent-length: 50\r\n\r\n", close=False)
    async with node_server(lambda seen: head) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        response = await transport.request("n1", "HEAD", "/", deadline=deadline(2))
        assert response.status == 200 and response.body == b""


@pytest.mark.parametrize(
    "method,path,headers",
    [
        ("GET", "/x\r\nX-Injected: 1", ()),
        ("GET", "/x y", ()),
        ("GET", "x", ()),
        ("GE T", "/", ()),
        ("GET", "/", [("X-Evil", "a\r\nX-Injected: 1")]),
        ("GET", "/", [("Bad Name", "v")]),
    ],
)
async def test_unsendable_requests_are_refused_before_any_io(method, path, headers):
    async with node_server(echo) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        with pytest.raises(ValueError):
            await transport.request("n1", method, path, headers=headers, deadline=deadline())
        assert server.connections == 0


def test_the_key_never_appears_in_the_repr():
    transport = HttpTransport({"n1": "http://127.0.0.1:1"}, api_key=KEY)
    assert KEY not in repr(transport)


async def test_connect_timeout_is_a_timeout_well_before_the_call_deadline():
    # A listener whose accept queue is full: the kernel drops further SYNs, so connect hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        try:
            filler.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(filler)
    await trio.sleep(0.05)
    transport = HttpTransport({"n1": f"http://127.0.0.1:{port}"}, api_key=KEY, connect_timeout=0.1)
    try:
        with pytest.raises(NodeTimeout, match="connect"):
            await transport.request("n1", "GET", "/", deadline=deadline(30))
    finally:
        for sock in [*fillers, listener]:
            sock.close()


async def test_a_cancelled_call_gives_its_connection_slot_back():
    async with node_server(
        lambda seen: Stall() if seen.target == "/stall" else echo(seen)
    ) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY, max_connections_per_node=1)
        with trio.move_on_after(0.05):
            await transport.request("n1", "GET", "/stall", deadline=deadline())
        response = await transport.request("n1", "GET", "/next", deadline=deadline())
        assert response.json()["target"] == "/next"


async def test_waiting_for_a_connection_slot_counts_against_the_deadline():
    async with node_server(lambda seen: Stall()) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY, max_connections_per_node=1)
        outcomes = []

        async def call():
            try:
                await transport.request("n1", "GET", "/", deadline=deadline(0.2))
            except NodeTimeout as error:
                outcomes.append(error)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(call)
            nursery.start_soon(call)
        assert len(outcomes) == 2 and server.connections == 1


async def test_idle_connections_past_keepalive_expiry_are_closed_not_reused():
    async with node_server(echo) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY, keepalive_expiry=0.05)
        async with trio.open_nursery() as nursery:  # two idle connections
            for _ in range(2):
                nursery.start_soon(lambda: transport.request("n1", "GET", "/", deadline=deadline()))
        assert transport.idle_connections("n1") == 2
        await trio.sleep(0.1)
        await transport.request("n1", "GET", "/", deadline=deadline())
        assert server.connections == 3 and transport.idle_connections("n1") == 1


@pytest.mark.parametrize("path,sent", [
    ("/indexes/中/documents/é", "/indexes/%E4%B8%AD/documents/%C3%A9"),
    ("/indexes/a/documents/\udc80", "/indexes/a/documents/%ED%B2%80"),
    ("/indexes/a%20b/search?q=ü", "/indexes/a%20b/search?q=%C3%BC"),
])
async def test_a_path_beyond_ascii_is_sent_percent_encoded_as_utf8(path, sent):
    """Whatever text a path holds, it reaches the node as percent-encoded UTF-8 (already
    escaped parts untouched), never a latin-1 encoding error."""
    async with node_server(echo) as server:
        transport = HttpTransport({"n1": server.url}, api_key=KEY)
        response = await transport.request("n1", "GET", path, deadline=deadline())
        assert orjson.loads(response.body)["target"] == sent
