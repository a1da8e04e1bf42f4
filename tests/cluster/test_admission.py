"""`miroir.cluster.admission`: per-node slots, FIFO queues, shedding, under trio's MockClock."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from miroir.cluster.admission import Gates, NodeGate
from miroir.core.errors import Overloaded


async def test_waiters_get_slots_in_arrival_order(autojump_clock):
    gate = NodeGate("n1", max_in_flight=1, queue_timeout_s=10)
    gate.service_time_s = 0.1
    await gate.enter(trio.current_time() + 10)
    order = []

    async def wait(name):
        await gate.enter(trio.current_time() + 10)
        order.append(name)

    async with trio.open_nursery() as nursery:
        for name in "abc":
            nursery.start_soon(wait, name)
            await trio.testing.wait_all_tasks_blocked()
        assert len(gate.queue) == 3 and gate.in_flight == 1
        for _ in "abc":
            gate.leave(0.1)  # the slot goes to the first waiter, never idle
            await trio.testing.wait_all_tasks_blocked()
            assert gate.in_flight == 1
    assert order == ["a", "b", "c"]
    gate.leave(0.1)
    assert gate.in_flight == 0 and not gate.queue


async def test_a_read_that_cannot_afford_the_wait_is_shed_at_once(autojump_clock):
    gate = NodeGate("n1", max_in_flight=2, queue_timeout_s=1.0)
    gate.service_time_s = 0.4
    for _ in range(2):
        await gate.enter(trio.current_time() + 5)
    for _ in range(2):  # each waits one round (0.4 s): affordable
        trio.lowlevel.spawn_system_task(gate.enter, trio.current_time() + 5)
    await trio.testing.wait_all_tasks_blocked()
    assert len(gate.queue) == 2
    started = trio.current_time()
    with pytest.raises(Overloaded) as shed:  # two rounds ahead (0.8 s) + own 0.4 s > 1 s left
        await gate.enter(trio.current_time() + 1.0)
    assert trio.current_time() == started, "shed at once, not after waiting"
    assert shed.value.code == "miroir_overloaded" and shed.value.status == 503
    assert shed.value.retry_after_s == 1
    assert len(gate.queue) == 2


async def test_a_waiter_is_shed_at_its_patience_and_leaves_the_queue(autojump_clock):
    gate = NodeGate("n1", max_in_flight=1, queue_timeout_s=0.5)
    gate.service_time_s = 0.1  # the estimate says 0.1 s; the node holds its slot for good
    await gate.enter(trio.current_time() + 10)
    started = trio.current_time()
    with pytest.raises(Overloaded):
        await gate.enter(trio.current_time() + 10)
    assert trio.current_time() - started == pytest.approx(0.5)
    assert not gate.queue and gate.in_flight == 1


async def test_a_cancelled_waiter_leaves_the_queue_and_the_next_one_gets_the_slot(
        autojump_clock):
    gate = NodeGate("n1", max_in_flight=1, queue_timeout_s=10)
    await gate.enter(trio.current_time() + 10)
    got = []

    async def wait(name, scope_box=None):
        with trio.CancelScope() as scope:
            if scope_box is not None:
                scope_box.append(scope)
            await gate.enter(trio.current_time() + 10)
            got.append(name)

    box = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait, "first", box)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(wait, "second")
        await trio.testing.wait_all_tasks_blocked()
        box[0].cancel()  # the client of "first" went away while it waited
        await trio.testing.wait_all_tasks_blocked()
        assert len(gate.queue) == 1
        gate.leave(None)
    assert got == ["second"] and gate.in_flight == 1 and not gate.queue


async def test_several_nodes_are_entered_all_or_none(autojump_clock):
    gates = Gates(max_in_flight=1, queue_timeout_ms=100)
    shed = []
    gates.shed_observers.append(shed.append)
    await gates.enter("b", trio.current_time() + 5)
    gates["b"].service_time_s = 1.0  # b's one waiter would wait 1 s > 0.1 s patience
    with pytest.raises(Overloaded):
        await gates.enter_all(["c", "a", "b"], trio.current_time() + 5)
    assert gates["a"].in_flight == 0, "a, entered before b shed, was left again"
    assert gates.gates.get("c") is None or gates["c"].in_flight == 0
    assert shed == ["b"]


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.lists(st.tuples(st.floats(0, 0.3), st.floats(0.01, 0.5),
                                             st.floats(0.05, 2)), min_size=1, max_size=25))
def test_slots_never_exceed_the_limit_and_every_slot_is_returned(limit, reads):
    """Law: with reads arriving at any times, each holding its slot for any time and any
    deadline, the node never has more than `limit` in flight, a read either runs or is shed
    (never both), and when all are done nothing is held or queued."""

    async def scenario():
        gate = NodeGate("n1", max_in_flight=limit, queue_timeout_s=1.0)
        peak = 0
        outcomes = []

        async def read(arrive, hold, budget):
            nonlocal peak
            await trio.sleep(arrive)
            try:
                await gate.enter(trio.current_time() + budget)
            except Overloaded:
                outcomes.append("shed")
                return
            peak = max(peak, gate.in_flight)
            assert gate.in_flight <= limit
            await trio.sleep(hold)
            gate.leave(hold)
            outcomes.append("ran")

        async with trio.open_nursery() as nursery:
            for arrive, hold, budget in reads:
                nursery.start_soon(read, arrive, hold, budget)
        assert len(outcomes) == len(reads)
        assert gate.in_flight == 0 and not gate.queue
        assert peak <= limit

    trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
