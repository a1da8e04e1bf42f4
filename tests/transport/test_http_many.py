"""`HttpTransport.request_many`: the contract of N `request`s in a nursery, driven by one task.

Laws: results are keyed by node and classified exactly as `request` raises them; every call's
deadline is honoured (a hung node is a timeout and does not hold the quick ones back); however
the answers are framed and cut, each node's body is read exactly; cancellation at any point
never leaves half an answer in a pool, so the next call to that node reads its own answer.
"""

from __future__ import annotations

import math
import socket

import attrs
import pytest
import trio
from hypothesis import example, given, settings
from hypothesis import strategies as st

from miroir.cluster.scatter import NodeCall, scatter
from miroir.transport import (
    NodeProtocolError,
    NodeRefused,
    NodeReset,
    NodeResponse,
    NodeTimeout,
    UnknownNode,
)
from miroir.transport.http import HttpTransport
from tests.transport.node_server import Drop, Junk, Reply, Stall, node_server
from tests.transport.test_http_framing import framed_answers


@attrs.frozen
class Call:
    method: str
    path: str
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    deadline: float | None = None


def by_target(seen):
    """`/<node>/<action>...`: the action names what this node does with the call."""
    action = seen.target.split("/")[2]
    if action == "stall":
        return Stall()
    if action == "drop":
        return Drop()
    if action == "junk":
        return Junk()
    if action.startswith("status"):
        return Reply(int(action[len("status"):]), seen.target.encode())
    if action.startswith("delay"):
        return Reply(200, seen.target.encode(), delay=int(action[len("delay"):]) / 1000)
    return Reply(200, seen.target.encode())


async def warm(transport: HttpTransport, node_ids) -> None:
    """One call per node first, so the batch finds a pooled connection (the one-task path)."""
    for node_id in node_ids:
        await transport.request(node_id, "GET", f"/{node_id}/warm", deadline=trio.current_time() + 5)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("warmed", [True, False], ids=["pooled", "cold"])
async def test_every_outcome_is_classified_as_request_would(warmed):
    async with node_server(by_target) as server:
        actions = {"ok": "ok", "missing": "status404", "broken": "status503",
                   "dropper": "drop", "junker": "junk"}
        addresses = {node_id: server.url for node_id in actions}
        addresses["refuser"] = f"http://127.0.0.1:{closed_port()}"
        transport = HttpTransport(addresses, api_key="k")
        if warmed:
            await warm(transport, actions)
        calls = {node_id: Call("GET", f"/{node_id}/{action}") for node_id, action in actions.items()}
        calls["refuser"] = Call("GET", "/refuser/ok")
        calls["ghost"] = Call("GET", "/ghost/ok")
        seen: list[str] = []
        results = await transport.request_many(
            calls, deadline=trio.current_time() + 5, on_result=lambda n, r: seen.append(n)
        )
        assert sorted(results) == sorted(calls) == sorted(seen)
        assert isinstance(results["ok"], NodeResponse) and results["ok"].body == b"/ok/ok"
        assert results["missing"].status == 404 and results["broken"].status == 503
        assert type(results["dropper"]) is NodeReset
        assert type(results["junker"]) is NodeProtocolError
        assert type(results["refuser"]) is NodeRefused
        assert type(results["ghost"]) is UnknownNode
        # answered-and-framed connections went back to their pools, broken ones did not
        assert transport.idle_connections("ok") == 1
        assert transport.idle_connections("dropper") == 0
        await transport.aclose()


async def test_a_hung_node_times_out_without_holding_back_the_quick_ones():
    async with node_server(by_target) as server:
        nodes = ["a", "b", "hung", "c"]
        transport = HttpTransport({n: server.url for n in nodes}, api_key=None)
        await warm(transport, nodes)
        order: list[str] = []
        started = trio.current_time()
        results = await transport.request_many(
            {n: Call("GET", f"/{n}/{'stall' if n == 'hung' else 'delay5'}") for n in nodes},
            deadline=started + 0.5,
            on_result=lambda n, r: order.append(n),
        )
        assert order[-1] == "hung"  # the quick answers were reported before the hung one
        assert type(results["hung"]) is NodeTimeout
        for n in ("a", "b", "c"):
            assert results[n].body == f"/{n}/delay5".encode()
        assert trio.current_time() >= started + 0.5  # the hung node got its whole deadline
        assert transport.idle_connections("hung") == 0  # its socket was closed, not pooled
        assert transport.idle_connections("a") == 1
        await transport.aclose()


async def test_quick_answers_are_read_while_the_first_socket_hangs():
    """`drive` first waits on one socket; when that one hangs, the others must still be read
    early (after SINGLE_WAIT_S it watches them all), not when the hung one's deadline ends."""
    async with node_server(by_target) as server:
        nodes = ["hung", "a", "b"]  # the hung one is first: the one waited on alone
        transport = HttpTransport({n: server.url for n in nodes}, api_key=None)
        await warm(transport, nodes)
        arrived: dict[str, float] = {}
        started = trio.current_time()
        await transport.request_many(
            {n: Call("GET", f"/{n}/{'stall' if n == 'hung' else 'delay5'}") for n in nodes},
            deadline=started + 1.0,
            on_result=lambda n, r: arrived.setdefault(n, trio.current_time() - started),
        )
        assert arrived["hung"] >= 1.0
        assert arrived["a"] < 0.5 and arrived["b"] < 0.5, arrived
        await transport.aclose()


async def test_a_call_s_own_deadline_shortens_the_batch_s():
    async with node_server(by_target) as server:
        transport = HttpTransport({"slow": server.url, "quick": server.url}, api_key=None)
        await warm(transport, ["slow", "quick"])
        now = trio.current_time()
        results = await transport.request_many(
            {"slow": Call("GET", "/slow/delay300", deadline=now + 0.05),
             "quick": Call("GET", "/quick/delay100")},
            deadline=now + 5,
        )
        assert type(results["slow"]) is NodeTimeout
        assert results["quick"].status == 200
        await transport.aclose()


async def test_a_stale_pooled_connection_is_retried_for_reads():
    async with node_server(lambda seen: Reply(200, seen.target.encode(), close_silently=True)) \
            as server:
        transport = HttpTransport({"a": server.url, "b": server.url}, api_key=None)
        await warm(transport, ["a", "b"])  # each pooled socket is now closed by the node
        await trio.sleep(0.05)
        results = await transport.request_many(
            {n: Call("POST", f"/{n}/indexes/x/search", b"{}") for n in ("a", "b")},
            deadline=trio.current_time() + 5,
        )
        assert {n: r.body for n, r in results.items()} == {
            "a": b"/a/indexes/x/search", "b": b"/b/indexes/x/search"
        }
        await transport.aclose()


async def test_unsendable_calls_are_refused_before_any_io():
    async with node_server(by_target) as server:
        transport = HttpTransport({"a": server.url, "b": server.url}, api_key=None)
        with pytest.raises(ValueError):
            await transport.request_many(
                {"a": Call("GET", "/a/ok"), "b": Call("GET", "/b/ok", headers=(("x", "1\r\n"),))},
                deadline=trio.current_time() + 5,
            )
        assert server.seen == []
        await transport.aclose()


async def test_scatter_over_http_gives_what_per_call_requests_give():
    async with node_server(by_target) as server:
        nodes = {"a": "ok", "b": "status404", "c": "drop", "d": "stall"}
        transport = HttpTransport({n: server.url for n in nodes}, api_key=None)
        await warm(transport, nodes)
        calls = {n: NodeCall("GET", f"/{n}/{action}") for n, action in nodes.items()}
        batched = await scatter(transport, calls, deadline=trio.current_time() + 0.3)
        await warm(transport, nodes)
        one_by_one = {}
        for n, call in calls.items():
            try:
                one_by_one[n] = await transport.request(
                    n, call.method, call.path, deadline=trio.current_time() + 0.3
                )
            except Exception as error:  # noqa: BLE001 - comparing classifications
                one_by_one[n] = error

        def shape(result):
            if isinstance(result, NodeResponse):
                return (result.status, result.body)
            return type(result)

        assert {n: shape(r) for n, r in batched.items()} == {
            n: shape(r) for n, r in one_by_one.items()
        }
        await transport.aclose()


@settings(max_examples=15, deadline=None)
@given(st.lists(framed_answers(), min_size=1, max_size=4))
def test_any_framing_cut_anywhere_reads_each_node_s_exact_body(answers):
    nodes = [f"n{i}" for i in range(len(answers))]
    by_node = dict(zip(nodes, answers, strict=True))

    def handler(seen):
        node_id, action = seen.target.split("/")[1:3]
        if action == "warm":
            return Reply(200, b"warm")
        return by_node[node_id][3]

    async def main():
        async with node_server(handler) as server:
            transport = HttpTransport({n: server.url for n in nodes}, api_key=None)
            await warm(transport, nodes)
            results = await transport.request_many(
                {n: Call("GET", f"/{n}/answer") for n in nodes}, deadline=trio.current_time() + 5
            )
            for node_id, (status, body, framing, _) in by_node.items():
                assert (results[node_id].status, results[node_id].body) == (status, body)
                assert transport.idle_connections(node_id) == (0 if framing == "eof" else 1)
            await transport.aclose()

    trio.run(main)


@settings(max_examples=15, deadline=None)
@example([0, 0, 20], 10)
@example([5, 0], 0)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=4), st.integers(0, 25))
def test_cancelling_a_batch_anywhere_never_lets_a_later_call_read_an_earlier_answer(
    delays_ms, cancel_ms
):
    """Each node answers after its delay; the batch is cancelled after `cancel_ms`; then every
    node is asked again over the same one-connection pool and must answer that new call."""
    nodes = [f"n{i}" for i in range(len(delays_ms))]

    async def main():
        async with node_server(by_target) as server:
            transport = HttpTransport(
                {n: server.url for n in nodes}, api_key=None, max_connections_per_node=1
            )
            await warm(transport, nodes)
            with trio.move_on_after(cancel_ms / 1000):
                results = await transport.request_many(
                    {n: Call("GET", f"/{n}/delay{d}") for n, d in zip(nodes, delays_ms, strict=True)},
                    deadline=trio.current_time() + 5,
                )
                assert {n: r.body for n, r in results.items()} == {
                    n: f"/{n}/delay{d}".encode() for n, d in zip(nodes, delays_ms, strict=True)
                }
            again = await transport.request_many(
                {n: Call("GET", f"/{n}/again") for n in nodes}, deadline=trio.current_time() + 5
            )
            assert {n: r.body for n, r in again.items()} == {n: f"/{n}/again".encode() for n in nodes}
            await transport.aclose()

    trio.run(main)


async def test_a_cancelled_batch_gives_every_connection_slot_back():
    async with node_server(by_target) as server:
        transport = HttpTransport({"a": server.url, "b": server.url}, api_key=None,
                                  max_connections_per_node=1)
        await warm(transport, ["a", "b"])
        with trio.move_on_after(0.05):
            await transport.request_many(
                {"a": Call("GET", "/a/stall"), "b": Call("GET", "/b/stall")},
                deadline=math.inf,
            )
        # with the single slot still held, these would wait for the whole deadline
        results = await transport.request_many(
            {"a": Call("GET", "/a/ok"), "b": Call("GET", "/b/ok")},
            deadline=trio.current_time() + 2,
        )
        assert all(isinstance(r, NodeResponse) and r.ok for r in results.values())
        await transport.aclose()


async def test_answers_are_freed_without_the_cyclic_collector():
    """Law: an answer read by the transport holds no reference cycle (the httptools parser and
    its callback target point at each other until the answer is handed out)."""
    import gc

    async with node_server(by_target) as server:
        transport = HttpTransport({"a": server.url, "b": server.url}, api_key=None)
        await warm(transport, ["a", "b"])
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(3):
                await transport.request_many(
                    {"a": Call("GET", "/a/ok"), "b": Call("GET", "/b/ok")},
                    deadline=trio.current_time() + 5,
                )
                await transport.request("a", "GET", "/a/ok", deadline=trio.current_time() + 5)
            gc.collect()
            leaked = {type(thing).__name__ for thing in gc.garbage}
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        assert not {"Answer", "Exchange", "NodeResponse", "HttpResponseParser"} & leaked, leaked
        await transport.aclose()


async def test_a_call_already_past_its_deadline_is_a_timeout_and_is_never_sent():
    async with node_server(by_target) as server:
        transport = HttpTransport({"late": server.url, "a": server.url}, api_key=None)
        await warm(transport, ["late", "a"])
        sent_before = len(server.seen)
        now = trio.current_time()
        results = await transport.request_many(
            {"late": Call("POST", "/late/indexes/x/documents", b"[]", deadline=now - 1),
             "a": Call("GET", "/a/ok")},
            deadline=now + 5,
        )
        assert type(results["late"]) is NodeTimeout and results["a"].status == 200
        assert [seen.target for seen in server.seen[sent_before:]] == ["/a/ok"]
        await transport.aclose()
