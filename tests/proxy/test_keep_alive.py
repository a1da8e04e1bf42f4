"""Keep-alive connections survive every early answer, through the real server.

The proxy app runs under hypercorn's trio worker on a loopback port (not the ASGI test client:
the bug lived between hypercorn's connection handling and quart-trio's cancellation). Each case
sends a request with a body the way httpx does -- headers in one write, the body in a later one
-- gets an answer that Miroir gives before reading the body, then sends `GET /health` on the
same connection, which must be answered. Before `proxy/keep_alive.py`, the second request of
most of these cases was never answered (docs/operations.md, "Keep-alive connections and early answers").
"""

from __future__ import annotations

from functools import partial

import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve

from miroir.cluster.services import Services
from miroir.config import config_from_dict
from miroir.devnode.app import DevnodeApp
from miroir.proxy import create_app
from miroir.proxy.keep_alive import DRAIN_LIMIT_BYTES
from miroir.store.memory import MemoryStore
from tests.proxy.harness import AsgiTransport, node_config

MASTER_KEY = "keep-alive-master-key"
MAX_BODY = 4096
# Long enough that Miroir has answered before the body arrives, on any machine.
BODY_DELAY_S = 0.05
ANSWER_WITHIN_S = 5.0
GRACEFUL_TIMEOUT_S = 60.0


@pytest.fixture
async def server(nursery):
    """(port, stop): the proxy app under hypercorn; `stop.set()` starts a graceful shutdown."""
    raw = {
        "shards": 4,
        "nodes": node_config(2),
        "master_key": MASTER_KEY,
        "server": {"max_body_bytes": MAX_BODY},
    }
    config = config_from_dict(raw, env={})
    apps = {node["id"]: DevnodeApp() for node in raw["nodes"]}
    app = create_app(config, transport=AsgiTransport(apps), store=MemoryStore(),
                     services=Services())
    hconfig = HypercornConfig()
    hconfig.bind = ["127.0.0.1:0"]
    hconfig.accesslog = None
    hconfig.graceful_timeout = GRACEFUL_TIMEOUT_S
    stop = trio.Event()
    binds = await nursery.start(partial(serve, app, hconfig, shutdown_trigger=stop.wait))
    yield int(binds[0].rsplit(":", 1)[1]), stop
    stop.set()


@pytest.fixture
def server_port(server):
    return server[0]


async def read_answer(stream: trio.SocketStream) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 answer (Content-Length framed, as Miroir's are)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        assert chunk, f"connection closed before an answer; got {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, value = line.split(":", 1)
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = await stream.receive_some(65536)
        assert chunk, "connection closed inside an answer"
        body += chunk
    return int(status_line.split()[1]), headers, body


def request_head(method: str, path: str, headers: dict[str, str], length: int) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: miroir"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
JSON = {"Content-Type": "application/json"}
EARLY_ANSWERS = [
    pytest.param("PATCH", "/no/such/route", {**AUTH, **JSON}, b"{}", 404, id="unknown-route"),
    pytest.param("PUT", "/indexes/films/search", {**AUTH, **JSON}, b"{}", 405, id="wrong-method"),
    pytest.param("POST", "/indexes", JSON, b'{"uid": "films"}', 401, id="missing-key"),
    pytest.param("POST", "/indexes", {"Authorization": "Bearer wrong", **JSON},
                 b'{"uid": "films"}', 403, id="wrong-key"),
    pytest.param("POST", "/indexes/films/documents", {**AUTH, "Content-Type": "text/plain"},
                 b"[]", 415, id="unsupported-content-type"),
    pytest.param("POST", "/indexes/films/documents", {**AUTH, **JSON},
                 b"[" + b"1," * MAX_BODY + b"1]", 413, id="body-too-large"),
    pytest.param("POST", "/indexes", {**AUTH, **JSON}, b'{"uid": ', 400, id="malformed-json"),
    # The search lane hands these to Quart (with what it read of the body replayed).
    pytest.param("POST", "/indexes/films/search", {"Authorization": "Bearer wrong", **JSON},
                 b'{"q": "x"}', 403, id="lane-handoff-wrong-key"),
    pytest.param("POST", "/indexes/films/search", {**AUTH, "Content-Type": "text/plain"},
                 b'{"q": "x"}', 415, id="lane-handoff-content-type"),
    pytest.param("POST", "/indexes/films/search", {**AUTH, **JSON}, b"[1]", 400,
                 id="lane-handoff-not-an-object"),
]


@pytest.mark.parametrize("delay", [0.0, BODY_DELAY_S], ids=["one-write", "body-later"])
@pytest.mark.parametrize(("method", "path", "headers", "body", "status"), EARLY_ANSWERS)
async def test_the_next_request_on_the_connection_is_answered_after_an_early_answer(
    server_port, method, path, headers, body, status, delay
):
    stream = await trio.open_tcp_stream("127.0.0.1", server_port)
    async with stream:
        with trio.fail_after(ANSWER_WITHIN_S):
            await stream.send_all(request_head(method, path, headers, len(body)))
            await trio.sleep(delay)
            await stream.send_all(body)
            answered, answer_headers, _ = await read_answer(stream)
            assert answered == status
            # A body this small is drained, so the connection stays open for the next request.
            assert answer_headers.get("connection") != "close"
            await stream.send_all(b"GET /health HTTP/1.1\r\nHost: miroir\r\n\r\n")
            assert (await read_answer(stream))[0] == 200


async def test_a_huge_body_answered_early_closes_the_connection_and_says_so(server_port):
    """413 to a body far above the drain limit: `Connection: close`, then the server closes."""
    declared = 50 * DRAIN_LIMIT_BYTES
    stream = await trio.open_tcp_stream("127.0.0.1", server_port)
    async with stream:
        with trio.fail_after(ANSWER_WITHIN_S):
            await stream.send_all(request_head("POST", "/indexes/films/documents",
                                               {**AUTH, **JSON}, declared))
            await stream.send_all(b"[" + b" " * 65536)
            status, headers, _ = await read_answer(stream)
            assert status == 413
            assert headers.get("connection") == "close"
            # Closed, not left open: the read ends (EOF) instead of waiting.
            while await stream.receive_some(65536):
                pass


async def test_a_body_that_never_comes_gets_its_answer_and_a_closed_connection(server_port):
    """A client that announces a body and stalls is answered within the drain timeout."""
    stream = await trio.open_tcp_stream("127.0.0.1", server_port)
    async with stream:
        with trio.fail_after(ANSWER_WITHIN_S):
            await stream.send_all(request_head("PATCH", "/no/such/route", AUTH, 100) + b"{")
            status, headers, _ = await read_answer(stream)
            assert status == 404
            assert headers.get("connection") == "close"
            while await stream.receive_some(65536):
                pass


async def test_a_body_within_the_drain_limit_but_over_the_body_limit_keeps_the_connection(
    server_port,
):
    """413 by declared length, body still sent: drained (it is under the drain limit)."""
    body = b"[" + b" " * (4 * MAX_BODY) + b"]"
    stream = await trio.open_tcp_stream("127.0.0.1", server_port)
    async with stream:
        with trio.fail_after(ANSWER_WITHIN_S):
            await stream.send_all(request_head("POST", "/indexes/films/documents",
                                               {**AUTH, **JSON}, len(body)))
            await trio.sleep(BODY_DELAY_S)
            for start in range(0, len(body), 1000):
                await stream.send_all(body[start:start + 1000])
            status, headers, _ = await read_answer(stream)
            assert status == 413
            assert headers.get("connection") != "close"
            await stream.send_all(b"GET /health HTTP/1.1\r\nHost: miroir\r\n\r\n")
            assert (await read_answer(stream))[0] == 200


async def test_an_idle_keep_alive_connection_is_closed_at_shutdown_not_held(server):
    """The same cancellation used to skip re-arming hypercorn's idle timer, so an idle client
    connection held a graceful shutdown for its whole budget (here 60 s)."""
    port, stop = server
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET /health HTTP/1.1\r\nHost: miroir\r\n\r\n")
        assert (await read_answer(stream))[0] == 200
        stop.set()
        with trio.fail_after(GRACEFUL_TIMEOUT_S / 4):
            while await stream.receive_some(65536):
                pass
