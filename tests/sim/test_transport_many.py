"""SimTransport.request_many gives every call exactly what `request` would have given it.

The same seeded deployment runs the same scatters twice, in two trio runs: once with one task
per call (`request`, as `scatter` did before the transport offered `request_many`) and once
through `request_many`. Crashes, restarts, partitions and heals land in between and during the
calls. Every call must end the same way (status and body, or the same transport error) at the
same virtual instant, the nodes must see the same calls, and the engines must end equal.
"""

from __future__ import annotations

import orjson
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from miroir.cluster.scatter import NodeCall
from miroir.sim.transport import FaultModel, SimTransport
from miroir.transport import TransportError

NODES = ("n0", "n1", "n2", "n3")
JSON = (("content-type", "application/json"),)
CALLS = (
    NodeCall("GET", "/health"),
    NodeCall("POST", "/indexes", orjson.dumps({"uid": "m", "primaryKey": "id"}), JSON),
    NodeCall("POST", "/indexes/m/documents", orjson.dumps([{"id": 1}, {"id": 2}]), JSON),
    NodeCall("GET", "/indexes/m/documents/1"),
    NodeCall("GET", "/tasks?limit=1"),
)

fault_models = st.builds(
    FaultModel,
    latency=st.tuples(st.floats(0.0, 0.05), st.floats(0.0, 0.3)).map(
        lambda pair: (pair[0], pair[0] + pair[1])),
    spike_rate=st.sampled_from((0.0, 0.2)),
    spike=st.just(0.6),
    error_rate=st.sampled_from((0.0, 0.1)),
    stall_rate=st.sampled_from((0.0, 0.1)),
    drop_rate=st.sampled_from((0.0, 0.1)),
    lost_reply_rate=st.sampled_from((0.0, 0.1)),
)
scatters = st.lists(
    st.tuples(
        st.dictionaries(st.sampled_from(NODES), st.sampled_from(range(len(CALLS))),
                        min_size=1, max_size=4),
        st.sampled_from((0.2, 0.5)),  # timeout
        st.sampled_from((None, 0.1)),  # a shorter own deadline on the first call
    ),
    min_size=1, max_size=6,
)
# (offset in ms after the scatter starts, what happens, to which node); odd offsets so that no
# event lands on the exact instant of an answer (equal instants have no defined order).
events = st.lists(
    st.tuples(st.integers(0, 400).map(lambda ms: ms / 1000 + 0.0003),
              st.sampled_from(("crash", "restart", "partition", "heal")),
              st.sampled_from(NODES)),
    max_size=4,
)


def run(seed, faults, program, many):  # noqa: C901 - one scripted scenario, read top to bottom
    """[(scatter index, node, outcome, virtual instant)], sorted trace lines, engine dumps."""
    trace: list[str] = []
    outcomes: list[tuple[int, str, str, float]] = []

    def outcome(result):
        if isinstance(result, TransportError):
            return f"{type(result).__name__}: {result}"
        return f"{result.status} {result.body!r}"

    async def main():  # noqa: C901 - the scenario itself
        transport = SimTransport(seed, tracer=trace.append)
        for node in NODES:
            transport.add_node(node, faults=faults)

        async def disturb(start, disturbances):
            # One task, in list order: two events at one instant happen in a defined order.
            for at, kind, node in sorted(disturbances, key=lambda event: event[0]):
                await trio.sleep_until(start + at)
                simulated = transport.nodes[node]
                if kind == "crash" and simulated.up:
                    transport.crash(node)
                elif kind == "restart" and not simulated.up:
                    transport.restart(node)
                elif kind == "partition":
                    transport.partition(node)
                elif kind == "heal":
                    transport.heal(node)

        for index, (targets, timeout, own, disturbances) in enumerate(program):
            start = trio.current_time()
            deadline = start + timeout
            calls = {}
            for position, (node, which) in enumerate(sorted(targets.items())):
                call = CALLS[which]
                if position == 0 and own is not None:
                    call = NodeCall(call.method, call.path, call.body, call.headers, start + own)
                calls[node] = call

            def arrived(node, result, index=index):
                outcomes.append((index, node, outcome(result), trio.current_time()))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(disturb, start, disturbances)
                if many:
                    await transport.request_many(calls, deadline=deadline, on_result=arrived)
                else:
                    async def one(node, call, deadline=deadline):
                        own_deadline = deadline if call.deadline is None \
                            else min(deadline, call.deadline)
                        try:
                            result = await transport.request(
                                node, call.method, call.path, body=call.body,
                                headers=call.headers, deadline=own_deadline)
                        except TransportError as error:
                            result = error
                        arrived(node, result)

                    async with trio.open_nursery() as callers:
                        for node, call in calls.items():
                            callers.start_soon(one, node, call)
        await trio.sleep(2.0)
        transport.catch_up()
        return {node: (simulated.up, [task.view() for task in simulated.engine.tasks.values()],
                       {uid: index.documents for uid, index in simulated.engine.indexes.items()})
                for node, simulated in transport.nodes.items()}

    engines = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return sorted(outcomes), sorted(trace), engines


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10**6), fault_models, scatters, st.lists(events, min_size=6, max_size=6))
def test_request_many_equals_one_request_per_call(seed, faults, plan, disturbances):
    program = [(targets, timeout, own, disturbances[i])
               for i, (targets, timeout, own) in enumerate(plan)]
    assert run(seed, faults, program, many=True) == run(seed, faults, program, many=False)


def test_request_many_reports_each_result_when_it_arrives():
    """Answers come back at their own latency, not all at the slowest one's."""
    async def main():
        transport = SimTransport(1)
        transport.add_node("fast", faults=FaultModel(latency=(0.01, 0.01)))
        transport.add_node("slow", faults=FaultModel(latency=(0.3, 0.3)))
        transport.add_node("gone")
        transport.crash("gone")
        arrivals = []
        start = trio.current_time()
        results = await transport.request_many(
            {name: NodeCall("GET", "/health") for name in ("slow", "fast", "gone")},
            deadline=start + 1.0,
            on_result=lambda node, result: arrivals.append(
                (node, round(trio.current_time() - start, 6))),
        )
        assert arrivals == [("gone", 0.0), ("fast", 0.01), ("slow", 0.3)]
        assert results["fast"].status == 200 and type(results["gone"]).__name__ == "NodeRefused"

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_a_partition_during_the_call_times_out_at_the_deadline_not_at_the_answer():
    """As with `request`: the request was delivered, the reply is lost, and the caller learns
    nothing until its deadline."""
    async def main():
        transport = SimTransport(1)
        transport.add_node("n1", faults=FaultModel(latency=(0.1, 0.1)))
        transport.add_node("n2", faults=FaultModel(latency=(0.1, 0.1)))
        start = trio.current_time()
        arrivals = {}

        async def cut_off():
            await trio.sleep(0.05)
            transport.partition("n1")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(cut_off)
            await transport.request_many(
                {node: NodeCall("POST", "/indexes", CALLS[1].body, JSON) for node in ("n1", "n2")},
                deadline=start + 0.5,
                on_result=lambda node, result: arrivals.setdefault(
                    node, (type(result).__name__, round(trio.current_time() - start, 6))),
            )
        assert arrivals == {"n2": ("NodeResponse", 0.1), "n1": ("NodeTimeout", 0.5)}
        assert "m" in transport.engine("n1").indexes or transport.engine("n1").tasks

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
