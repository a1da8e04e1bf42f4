"""SimTransport keeps the transport contract and injects exactly the faults it is told to.

Every test runs under trio's MockClock with autojump: latencies, stalls and task delays are
trio time, so asserting simulated instants is exact and costs no real time.
"""

import orjson
import pytest
import trio
import trio.testing

from miroir.sim.transport import FaultModel, SimTransport
from miroir.transport import (
    NodeRefused,
    NodeReset,
    NodeTimeout,
    Outcome,
    Transport,
    UnknownNode,
    classify,
)

JSON = (("content-type", "application/json"),)
INDEX = orjson.dumps({"uid": "movies", "primaryKey": "id"})
DOCS = orjson.dumps([{"id": 1, "title": "Alien"}, {"id": 2, "title": "Heat"}])


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


def faults(**overrides):
    return FaultModel(**{"latency": (0.010, 0.010), **overrides})


async def call(transport, node, method, path, body=None, timeout=5.0, headers=JSON):
    return await transport.request(node, method, path, body=body, headers=headers,
                                   deadline=trio.current_time() + timeout)


def index_exists(transport, node):
    return "movies" in transport.engine(node).indexes


def test_sim_transport_satisfies_the_protocol():
    assert isinstance(SimTransport(), Transport)


async def test_a_write_is_enqueued_then_processed_after_the_task_delay(autojump_clock):
    transport = SimTransport(seed=1)
    transport.add_node("n1", faults=faults(task_delay=(2.0, 2.0), task_duration=(0.5, 0.5)))
    start = trio.current_time()
    created = await call(transport, "n1", "POST", "/indexes", INDEX)
    assert created.status == 202 and trio.current_time() == pytest.approx(start + 0.010)
    uid = created.json()["taskUid"]

    async def status():
        return (await call(transport, "n1", "GET", f"/tasks/{uid}")).json()["status"]

    # Delivered at start+0.005; starts 2.0 s later; finishes 0.5 s after starting.
    assert await status() == "enqueued"
    await trio.sleep_until(start + 2.1)
    assert await status() == "processing"
    await trio.sleep_until(start + 2.6)
    assert await status() == "succeeded"
    added = await call(transport, "n1", "POST", "/indexes/movies/documents", DOCS)
    assert added.status == 202
    await trio.sleep(3.0)
    document = await call(transport, "n1", "GET", "/indexes/movies/documents/2")
    assert document.json() == {"id": 2, "title": "Heat"}
    assert document.header("content-type") == "application/json"


async def test_engine_clock_is_simulated_time(autojump_clock):
    transport = SimTransport()
    transport.add_node("n1", faults=faults())
    await trio.sleep(3600)
    uid = (await call(transport, "n1", "POST", "/indexes", INDEX)).json()["taskUid"]
    await trio.sleep(1)
    task = (await call(transport, "n1", "GET", f"/tasks/{uid}")).json()
    assert task["enqueuedAt"].startswith("2026-01-01T01:00:00.005")


async def test_error_fate_answers_500_and_never_applies(autojump_clock):
    transport = SimTransport()
    transport.add_node("n1", faults=faults(error_rate=1.0))
    response = await call(transport, "n1", "POST", "/indexes", INDEX)
    assert response.status == 500 and response.json()["code"] == "internal"
    assert set(response.json()) == {"message", "code", "type", "link"}
    assert classify(response) is Outcome.FAILED
    await trio.sleep(1)
    assert not index_exists(transport, "n1")


async def test_stall_times_out_at_the_deadline_and_never_applies(autojump_clock):
    transport = SimTransport()
    transport.add_node("n1", faults=faults(stall_rate=1.0))
    start = trio.current_time()
    with pytest.raises(NodeTimeout):
        await call(transport, "n1", "POST", "/indexes", INDEX, timeout=2.0)
    assert trio.current_time() == start + 2.0
    assert not index_exists(transport, "n1")


async def test_drop_resets_before_delivery_and_never_applies(autojump_clock):
    transport = SimTransport()
    transport.add_node("n1", faults=faults(drop_rate=1.0))
    start = trio.current_time()
    with pytest.raises(NodeReset):
        await call(transport, "n1", "POST", "/indexes", INDEX)
    assert trio.current_time() == pytest.approx(start + 0.005)
    await trio.sleep(1)
    assert not index_exists(transport, "n1")


async def test_lost_reply_resets_but_the_write_was_applied(autojump_clock):
    transport = SimTransport()
    transport.add_node("n1", faults=faults(lost_reply_rate=1.0))
    with pytest.raises(NodeReset):
        await call(transport, "n1", "POST", "/indexes", INDEX)
    await trio.sleep(1)
    assert index_exists(transport, "n1")


async def test_a_late_answer_times_out_but_the_delivered_write_still_applies(autojump_clock):
    transport = SimTransport()
    transport.add_node("n1", faults=faults(latency=(2.0, 2.0)))
    start = trio.current_time()
    with pytest.raises(NodeTimeout):
        await call(transport, "n1", "POST", "/indexes", INDEX, timeout=1.5)
    assert trio.current_time() == start + 1.5
    await trio.sleep(1)
    assert index_exists(transport, "n1")  # delivered at start + 1.0


async def test_a_cancelled_caller_does_not_unsend_its_request(autojump_clock):
    transport = SimTransport()
    transport.add_node("n1", faults=faults(latency=(2.0, 2.0)))
    with trio.move_on_after(1.5):
        await call(transport, "n1", "POST", "/indexes", INDEX)
    await trio.sleep(1)
    assert index_exists(transport, "n1")
    with trio.move_on_after(0.5):  # cancelled before delivery at +1.0: still delivered later
        await call(transport, "n1", "DELETE", "/indexes/movies")
    await trio.sleep(2)
    assert not index_exists(transport, "n1")


async def test_crash_resets_calls_in_flight_refuses_new_ones_and_loses_undelivered(
        autojump_clock):
    transport = SimTransport()
    transport.add_node("n1", faults=faults(latency=(2.0, 2.0)))
    outcome = {}

    async def in_flight():
        try:
            await call(transport, "n1", "POST", "/indexes", INDEX)
        except NodeReset:
            outcome["reset_at"] = trio.current_time()

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(in_flight)
        await trio.sleep(0.5)  # before delivery at +1.0
        transport.crash("n1")
    assert outcome["reset_at"] == start + 0.5
    with pytest.raises(NodeRefused):
        await call(transport, "n1", "GET", "/health")
    transport.restart("n1")
    await trio.sleep(5)
    assert not index_exists(transport, "n1")  # the request died with the process


async def test_state_survives_a_restart_unless_wiped(autojump_clock):
    transport = SimTransport()
    transport.add_node("n1", faults=faults())
    await call(transport, "n1", "POST", "/indexes", INDEX)
    await trio.sleep(1)
    transport.crash("n1")
    with pytest.raises(ValueError):
        transport.crash("n1")
    transport.restart("n1")
    with pytest.raises(ValueError):
        transport.restart("n1")
    assert index_exists(transport, "n1")
    transport.crash("n1")
    transport.restart("n1", wipe=True)
    assert not index_exists(transport, "n1")


async def test_tasks_pending_at_a_crash_are_processed_after_restart(autojump_clock):
    transport = SimTransport()
    transport.add_node("n1", faults=faults(task_delay=(10.0, 10.0)))
    uid = (await call(transport, "n1", "POST", "/indexes", INDEX)).json()["taskUid"]
    transport.crash("n1")
    await trio.sleep(60)
    transport.restart("n1")
    assert transport.engine("n1").get_task(uid).status == "enqueued"
    await trio.sleep(11)
    assert transport.engine("n1").get_task(uid).status == "succeeded"


async def test_partition_times_out_and_heal_restores(autojump_clock):
    transport = SimTransport()
    transport.add_node("n1", faults=faults())
    transport.partition("n1")
    start = trio.current_time()
    with pytest.raises(NodeTimeout):
        await call(transport, "n1", "GET", "/health", timeout=3.0)
    assert trio.current_time() == start + 3.0
    transport.heal()
    assert (await call(transport, "n1", "GET", "/health")).status == 200


async def test_a_partition_during_the_call_loses_the_reply_not_the_request(autojump_clock):
    transport = SimTransport()
    transport.add_node("n1", faults=faults(latency=(2.0, 2.0)))
    async def cut():
        await trio.sleep(1.5)  # after delivery at +1.0, before the answer at +2.0
        transport.partition("n1")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(cut)
        with pytest.raises(NodeTimeout):
            await call(transport, "n1", "POST", "/indexes", INDEX, timeout=4.0)
    transport.heal("n1")
    await trio.sleep(1)
    assert index_exists(transport, "n1")


async def test_master_key_is_enforced_like_the_devnode(autojump_clock):
    transport = SimTransport()
    transport.add_node("n1", faults=faults(), master_key="s3cret")
    assert (await call(transport, "n1", "GET", "/health")).status == 200
    missing = await call(transport, "n1", "GET", "/indexes")
    assert missing.status == 401 and missing.json()["code"] == "missing_authorization_header"
    wrong = await call(transport, "n1", "GET", "/indexes",
                       headers=(("Authorization", "Bearer nope"),))
    assert wrong.status == 403 and wrong.json()["code"] == "invalid_api_key"
    right = await call(transport, "n1", "GET", "/indexes",
                       headers=(("authorization", "Bearer s3cret"),))
    assert right.status == 200


async def test_unknown_node_and_closed_transport(autojump_clock):
    transport = SimTransport()
    with pytest.raises(UnknownNode):
        await call(transport, "ghost", "GET", "/health")
    await transport.aclose()
    with pytest.raises(RuntimeError):
        await call(transport, "ghost", "GET", "/health")


async def outcomes(seed, model, calls=200):
    transport = SimTransport(seed=seed)
    transport.add_node("n1", faults=model)
    seen = []
    for _ in range(calls):
        start = trio.current_time()
        try:
            response = await call(transport, "n1", "GET", "/health", timeout=1.0)
            seen.append((response.status, round(trio.current_time() - start, 9)))
        except (NodeTimeout, NodeReset) as error:
            seen.append((type(error).__name__, round(trio.current_time() - start, 9)))
    return seen


MIXED = FaultModel(latency=(0.001, 0.05), spike_rate=0.05, spike=2.0, error_rate=0.1,
                   stall_rate=0.05, drop_rate=0.05, lost_reply_rate=0.05)


async def test_same_seed_same_faults_other_seed_other_faults(autojump_clock):
    first = await outcomes(7, MIXED)
    assert await outcomes(7, MIXED) == first
    assert await outcomes(8, MIXED) != first


async def test_fault_rates_are_honoured_statistically(autojump_clock):
    seen = await outcomes(3, FaultModel(error_rate=0.3), calls=400)
    errors = sum(status == 500 for status, _ in seen)
    # Binomial(400, 0.3): mean 120, sd 9.2; a 5-sd band.
    assert 74 <= errors <= 166


def test_fault_model_rejects_impossible_rates():
    with pytest.raises(ValueError):
        FaultModel(error_rate=0.6, stall_rate=0.6)
    with pytest.raises(ValueError):
        FaultModel(drop_rate=-0.1)
    with pytest.raises(ValueError):
        FaultModel(latency=(0.2, 0.1))
    with pytest.raises(ValueError):
        FaultModel(spike=-1.0)


async def test_the_real_scatter_runs_unchanged_over_sim_transport(autojump_clock):
    from miroir.cluster.scatter import NodeCall, scatter

    transport = SimTransport(seed=5)
    transport.add_node("fast", faults=faults(latency=(0.010, 0.010)))
    transport.add_node("slow", faults=faults(latency=(0.5, 0.5)))
    transport.add_node("broken", faults=faults(latency=(0.02, 0.02), error_rate=1.0))
    transport.add_node("down", faults=faults())
    transport.add_node("cut", faults=faults())
    transport.crash("down")
    transport.partition("cut")
    arrivals = []
    start = trio.current_time()
    results = await scatter(
        transport, {node: NodeCall("POST", "/indexes", INDEX, JSON) for node in transport.nodes},
        deadline=start + 0.2, on_result=lambda node, _: arrivals.append(node))
    assert results["fast"].status == 202
    assert results["broken"].status == 500
    assert isinstance(results["down"], NodeRefused)
    assert isinstance(results["slow"], NodeTimeout) and isinstance(results["cut"], NodeTimeout)
    assert arrivals[:3] == ["down", "fast", "broken"]
    assert trio.current_time() == start + 0.2
    await trio.sleep(1)
    # The slow node got the request at +0.25, after the scatter gave up: it applied it anyway.
    assert index_exists(transport, "fast") and index_exists(transport, "slow")
    assert not index_exists(transport, "broken") and not index_exists(transport, "cut")
