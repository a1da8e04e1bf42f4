"""Worked examples of scatter, quorum_write and first_success (the laws are in
tests/properties/test_scatter.py); the last tests run them over HttpTransport and real sockets."""

from __future__ import annotations

import orjson
import pytest
import trio
import trio.testing

from miroir.cluster.quorum_write import quorum_write
from miroir.cluster.race import first_success
from miroir.cluster.scatter import NodeCall, scatter
from miroir.core.placement import write_targets
from miroir.transport.base import FailureKind, NodeRefused, NodeResponse, NodeTimeout
from miroir.transport.fake import Answer, Fail, FakeTransport, Hang
from miroir.transport.http import HttpTransport
from tests.transport.node_server import Reply, Stall, node_server


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


WRITE = NodeCall("POST", "/indexes/movies/documents", body=b"[]")


async def test_quorum_write_reports_the_degraded_group_and_keeps_every_answer(autojump_clock):
    # RG=2, RF=3, one shard: group 0 gets 2 of 3 acks (met), group 1 gets 1 of 3 (missed).
    groups = [["a0", "a1", "a2"], ["b0", "b1", "b2"]]
    targets = {(0, g): write_targets(0, [nodes], 3) for g, nodes in enumerate(groups)}
    fake = FakeTransport()
    for node in ("a0", "a1", "b0"):
        fake.script(node, Answer(202, json={"taskUid": 1}, delay=0.1))
    fake.script("a2", Fail(FailureKind.RESET))
    fake.script("b1", Answer(500, json={"code": "internal"}))
    fake.script("b2", Hang())
    start = trio.current_time()
    seen = []
    result = await quorum_write(
        fake,
        {node: WRITE for nodes in groups for node in nodes},
        targets,
        replication_factor=3,
        deadline=start + 2.0,
        on_verdict=seen.append,
    )
    verdict = result.verdict
    assert verdict.met == {(0, 0)} and verdict.missed == {(0, 1)}
    assert verdict.succeeded and verdict.degraded and verdict.degraded_groups == {1}
    assert not verdict.shards_without_quorum
    assert result.acked_nodes() == ["a0", "a1", "b0"]
    assert isinstance(result.results["b2"], NodeTimeout)
    # (0, 1) stayed open until the hung b2 reached its deadline; only then did the write return
    assert trio.current_time() == start + 2.0
    assert seen[-1].decided and len(seen) == 6


async def test_quorum_write_with_every_group_missing_a_shard_has_no_quorum(autojump_clock):
    targets = {(0, 0): ["a"], (0, 1): ["b"], (1, 0): ["a2"], (1, 1): ["b2"]}
    fake = FakeTransport(default=Answer(202))
    fake.script("a", Fail(FailureKind.REFUSED))
    fake.script("b", Answer(400, json={"code": "invalid_document_id"}))
    result = await quorum_write(
        fake,
        dict.fromkeys(["a", "b", "a2", "b2"], WRITE),
        targets,
        replication_factor=1,
        deadline=trio.current_time() + 1,
    )
    assert result.verdict.shards_without_quorum == {0} and not result.verdict.succeeded


async def test_quorum_write_refuses_targets_without_a_call(autojump_clock):
    with pytest.raises(ValueError, match="without a call"):
        await quorum_write(
            FakeTransport(),
            {},
            {(0, 0): ["a"]},
            replication_factor=1,
            deadline=trio.current_time() + 1,
        )


async def test_failover_tries_replicas_in_order_and_accepts_a_4xx(autojump_clock):
    fake = FakeTransport()
    fake.script("r0", Fail(FailureKind.REFUSED, delay=0.2))
    fake.script("r1", Answer(503, delay=0.3))
    fake.script("r2", Answer(404, json={"code": "index_not_found"}, delay=0.1))
    fake.script("r3", Answer(200))
    start = trio.current_time()
    result = await first_success(
        fake, ["r0", "r1", "r2", "r3"], NodeCall("GET", "/indexes/m"), deadline=start + 5
    )
    assert result.winner == "r2" and result.response.status == 404
    assert list(result.failures) == ["r0", "r1"] and result.started == ["r0", "r1", "r2"]
    assert trio.current_time() == start + 0.6


async def test_hedged_read_starts_the_next_replica_after_the_stagger_and_cancels_the_slow_one(
    autojump_clock,
):
    fake = FakeTransport()
    fake.script("slow", Answer(200, json={"from": "slow"}, delay=3.0))
    fake.script("fast", Answer(200, json={"from": "fast"}, delay=0.5))
    start = trio.current_time()
    result = await first_success(
        fake,
        ["slow", "fast"],
        lambda node: NodeCall("POST", f"/{node}/search"),
        deadline=start + 5,
        stagger=1.0,
    )
    assert result.winner == "fast" and result.response.json() == {"from": "fast"}
    assert result.cancelled == ["slow"] and fake.calls_to("slow")[0].outcome == "cancelled"
    assert fake.calls_to("fast")[0].path == "/fast/search"
    assert trio.current_time() == start + 1.5


async def test_a_race_nobody_wins_returns_every_failure(autojump_clock):
    fake = FakeTransport()
    fake.script("r0", Hang())
    fake.script("r1", Answer(200))
    start = trio.current_time()
    result = await first_success(fake, ["r0", "r1"], NodeCall("GET", "/"), deadline=start + 1)
    assert result.winner is None and result.started == ["r0"]  # r1 never got a chance
    assert isinstance(result.failures["r0"], NodeTimeout)


async def test_scatter_over_real_sockets_classifies_each_node():
    def answer(seen):
        return Reply(200, orjson.dumps({"node": seen.target}))

    async with node_server(answer) as up, node_server(lambda seen: Stall()) as stalled:
        transport = HttpTransport(
            {"up": up.url, "stalled": stalled.url, "down": "http://127.0.0.1:9"}, api_key="k"
        )
        start = trio.current_time()
        results = await scatter(
            transport,
            {node: NodeCall("GET", "/health") for node in ("up", "stalled", "down")},
            deadline=start + 0.3,
        )
        assert isinstance(results["up"], NodeResponse) and results["up"].json() == {
            "node": "/health"
        }
        assert isinstance(results["stalled"], NodeTimeout)
        assert isinstance(results["down"], NodeRefused)
        await transport.aclose()


async def test_a_node_outside_the_targets_is_written_but_not_counted(autojump_clock):
    fake = FakeTransport()
    fake.script("owner", Fail(FailureKind.RESET))
    fake.script("joining", Answer(202))
    result = await quorum_write(
        fake,
        {"owner": WRITE, "joining": WRITE},
        {(0, 0): ["owner"]},
        replication_factor=1,
        deadline=trio.current_time() + 1,
    )
    assert sorted(call.node_id for call in fake.calls) == ["joining", "owner"]
    assert result.verdict.shards_without_quorum == {0}  # the joining node's ack did not count
    assert result.acked_nodes() == ["joining"]


async def test_quorum_write_counts_by_the_callers_acknowledgement_rule(autojump_clock):
    fake = FakeTransport()
    fake.script("a", Answer(202, json={"taskUid": 1}))
    fake.script("b", Answer(202, json={}))
    result = await quorum_write(
        fake,
        {"a": WRITE, "b": WRITE},
        {(0, 0): ["a"], (1, 0): ["b"]},
        replication_factor=1,
        deadline=trio.current_time() + 1,
        acknowledged=lambda r: isinstance(r, NodeResponse) and "taskUid" in r.json(),
    )
    assert result.verdict.met == {(0, 0)} and result.verdict.shards_without_quorum == {1}
    assert result.acked_nodes() == ["a"]


async def test_a_bug_in_the_race_observer_is_raised_alone_and_stops_the_race(autojump_clock):
    fake = FakeTransport()
    fake.script("r0", Fail(FailureKind.RESET))
    fake.script("r1", Hang())

    def observer(node_id, result):
        raise KeyError(node_id)

    with pytest.raises(KeyError, match="r0"):
        await first_success(
            fake, ["r0", "r1"], NodeCall("GET", "/"), deadline=trio.current_time() + 1,
            on_result=observer,
        )
    assert not fake.in_flight()
