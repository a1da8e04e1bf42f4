"""Laws of HttpTransport over real sockets.

However the node frames an answer and however TCP cuts it, HttpTransport reads exactly
the body that was sent, and pools the socket exactly when the framing allows keep-alive."""

from __future__ import annotations

import math

import trio
from hypothesis import example, given, settings
from hypothesis import strategies as st

from miroir.transport.http import HttpTransport
from tests.transport.node_server import Raw, Reply, node_server


@st.composite
def framed_answers(draw):
    body = draw(st.binary(max_size=3000))
    framing = draw(st.sampled_from(["length", "chunked", "eof"]))
    status = draw(st.sampled_from([200, 202, 404, 503]))
    head = f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
    if framing == "length":
        wire = (head + f"content-length: {len(body)}\r\n\r\n").encode() + body
    elif framing == "chunked":
        wire = (head + "transfer-encoding: chunked\r\n\r\n").encode()
        rest = body
        while rest:
            size = draw(st.integers(1, max(1, len(rest))))
            wire += f"{size:x}\r\n".encode() + rest[:size] + b"\r\n"
            rest = rest[size:]
        wire += b"0\r\n\r\n"
    else:
        wire = (head + "\r\n").encode() + body
    cuts = draw(st.lists(st.integers(1, max(1, len(wire) - 1)), max_size=4, unique=True))
    return status, body, framing, Raw(wire, close=framing == "eof", cuts=tuple(cuts))


@settings(max_examples=25)
@given(framed_answers())
def test_any_framing_cut_anywhere_reads_the_exact_body(answer):
    status, body, framing, raw = answer

    async def main():
        async with node_server(lambda seen: raw) as server:
            transport = HttpTransport({"n1": server.url}, api_key=None)
            response = await transport.request("n1", "GET", "/", deadline=trio.current_time() + 5)
            assert (response.status, response.body) == (status, body)
            assert transport.idle_connections("n1") == (0 if framing == "eof" else 1)
            await transport.aclose()

    trio.run(main)


@settings(max_examples=15)
@example([(20, 1), (0, None)])
@given(
    st.lists(
        st.tuples(st.integers(0, 20), st.one_of(st.none(), st.integers(0, 4))),
        min_size=1,
        max_size=8,
    )
)
def test_every_answer_belongs_to_its_own_request_whatever_gets_cancelled(operations):
    """Law: cancelling calls at random points never lets a later call read an earlier answer.

    Each operation is (node delay ms, cancel after ms or None); calls run one after another over
    one pooled connection, so the socket a cancelled call used is the next call's candidate
    while the late answer may still be on its way."""

    def handler(seen):
        delay_ms = int(seen.target.rsplit("=", 1)[1])
        return Reply(200, seen.target.encode(), delay=delay_ms / 1000)

    async def main():
        async with node_server(handler) as server:
            transport = HttpTransport({"n1": server.url}, api_key=None, max_connections_per_node=1)
            for index, (delay_ms, cancel_ms) in enumerate(operations):
                target = f"/op{index}?d={delay_ms}"
                with trio.move_on_after(math.inf if cancel_ms is None else cancel_ms / 1000):
                    response = await transport.request(
                        "n1", "GET", target, deadline=trio.current_time() + 5
                    )
                    assert response.body == target.encode()
            # and the pool is still good afterwards
            final = await transport.request(
                "n1", "GET", "/last?d=0", deadline=trio.current_time() + 5
            )
            assert final.body == b"/last?d=0"
            await transport.aclose()

    trio.run(main)
