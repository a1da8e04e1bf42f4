"""Laws of the trio scatter engine (miroir.cluster.scatter, quorum_write, race).

Every example runs in its own `trio.run` under a MockClock, against a FakeTransport whose nodes
follow a random schedule (answer with a status after a delay, fail with a kind, hang). Delays are
multiples of 1/4 so trio times compare exactly. Times asserted are trio times, never wall time.
"""

from __future__ import annotations

import math

import trio
import trio.testing
from hypothesis import example, given
from hypothesis import strategies as st

from miroir.cluster.quorum_write import quorum_write
from miroir.cluster.race import first_success
from miroir.cluster.scatter import NodeCall, scatter
from miroir.transport.base import FailureKind, NodeResponse, NodeTimeout, TransportError
from miroir.transport.fake import Answer, Fail, FakeTransport, Hang

DEADLINE = 5.0
delays = st.integers(0, 32).map(lambda quarters: quarters / 4)
behaviours = st.one_of(
    st.builds(Answer, status=st.sampled_from([200, 202, 400, 404, 500, 503]), delay=delays),
    st.builds(
        Fail,
        kind=st.sampled_from([FailureKind.REFUSED, FailureKind.RESET, FailureKind.TIMEOUT]),
        delay=delays,
    ),
    st.just(Hang()),
)
schedules = st.dictionaries(
    st.sampled_from([f"n{i}" for i in range(6)]), behaviours, min_size=1, max_size=6
)


def run(async_fn):
    """Run one example on a fresh MockClock that jumps whenever every task is waiting."""
    return trio.run(async_fn, clock=trio.testing.MockClock(autojump_threshold=0))


def ends_at(behaviour, start: float, deadline: float) -> float:
    """When a call to a node with `behaviour` ends, started at `start`, under `deadline`."""
    ready = math.inf if isinstance(behaviour, Hang) else start + behaviour.delay
    return min(ready, deadline)


def scripted(schedule) -> FakeTransport:
    fake = FakeTransport()
    for node, behaviour in schedule.items():
        fake.script(node, behaviour)
    return fake


class IgnoresDeadlines:
    """A transport that does not honour its deadline: the scatter must enforce it alone."""

    def __init__(self, inner: FakeTransport) -> None:
        self.inner = inner

    async def request(self, node_id, method, path, *, body=None, headers=(), deadline):
        return await self.inner.request(node_id, method, path, body=body, deadline=math.inf)

    async def aclose(self):
        await self.inner.aclose()


# -- scatter --------------------------------------------------------------------------------


@given(schedules, st.dictionaries(st.sampled_from([f"n{i}" for i in range(6)]), delays))
@example({"n0": Hang()}, {"n0": 0.0})
def test_no_call_outlives_its_deadline_even_if_the_transport_ignores_it(schedule, own_deadlines):
    fake = scripted(schedule)

    async def main():
        start = trio.current_time()
        calls = {
            node: NodeCall(
                "GET", "/", deadline=start + own_deadlines[node] if node in own_deadlines else None
            )
            for node in schedule
        }
        results = await scatter(IgnoresDeadlines(fake), calls, deadline=start + DEADLINE)
        assert results.keys() == schedule.keys()
        for node, behaviour in schedule.items():
            own = calls[node].deadline
            deadline = min(start + DEADLINE, math.inf if own is None else own)
            expected_end = ends_at(behaviour, start, deadline)
            call = fake.calls_to(node)[0]
            assert call.ended_at == expected_end <= deadline
            if expected_end == deadline:  # an answer due exactly at the deadline is too late
                assert isinstance(results[node], NodeTimeout)
        assert not fake.in_flight()
        assert trio.current_time() == max(call.ended_at for call in fake.calls)

    run(main)


@given(schedules)
def test_results_are_keyed_by_node_and_classified_never_raised(schedule):
    fake = scripted(schedule)
    arrivals = []

    async def main():
        start = trio.current_time()
        results = await scatter(
            fake,
            {node: NodeCall("POST", "/x", body=b"{}") for node in schedule},
            deadline=start + DEADLINE,
            on_result=lambda node, result: arrivals.append((trio.current_time(), node, result)),
        )
        for node, behaviour in schedule.items():
            result = results[node]
            if isinstance(behaviour, Answer) and behaviour.delay < DEADLINE:
                assert isinstance(result, NodeResponse) and result.status == behaviour.status
            elif isinstance(behaviour, Fail) and behaviour.delay < DEADLINE:
                assert isinstance(result, TransportError) and result.kind is behaviour.kind
            else:
                assert isinstance(result, NodeTimeout)
        # on_result saw each node exactly once, in the order the answers arrived
        assert sorted(node for _, node, _ in arrivals) == sorted(schedule)
        assert [t for t, _, _ in arrivals] == sorted(t for t, _, _ in arrivals)
        assert all(results[node] is result for _, node, result in arrivals)

    run(main)


@given(schedules, delays)
def test_cancelling_the_request_cancels_every_node_call(schedule, cancel_after):
    fake = scripted(schedule)

    async def main():
        start = trio.current_time()
        with trio.move_on_at(start + cancel_after) as scope:
            await scatter(
                fake, {n: NodeCall("GET", "/") for n in schedule}, deadline=start + DEADLINE
            )
        assert not fake.in_flight()
        cancel_at = start + cancel_after
        for call in fake.calls:
            natural_end = ends_at(schedule[call.node_id], start, start + DEADLINE)
            assert call.ended_at == min(natural_end, cancel_at)
            if natural_end > cancel_at:
                assert call.outcome == "cancelled"
        natural_ends = [ends_at(b, start, start + DEADLINE) for b in schedule.values()]
        if any(end > cancel_at for end in natural_ends):
            assert scope.cancelled_caught
        if all(end < cancel_at for end in natural_ends):
            assert not scope.cancelled_caught

    run(main)


def test_a_bug_in_an_observer_is_raised_alone_and_stops_the_scatter():
    fake = FakeTransport()
    fake.script("fast", Answer(200))
    fake.script("slow", Hang())

    def observer(node, result):
        raise KeyError(node)

    async def main():
        try:
            await scatter(
                fake,
                {"fast": NodeCall("GET", "/"), "slow": NodeCall("GET", "/")},
                deadline=trio.current_time() + DEADLINE,
                on_result=observer,
            )
        except KeyError as error:  # the exception itself, not an ExceptionGroup
            assert error.args == ("fast",)
        else:
            raise AssertionError("the observer's bug was swallowed")
        assert [call.outcome for call in fake.calls_to("slow")] == ["cancelled"]

    run(main)


# -- quorum write ---------------------------------------------------------------------------


@st.composite
def quorum_writes(draw):
    rf = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    shards = draw(st.integers(1, 3))
    targets = {}
    for group in range(groups):
        nodes = [f"g{group}n{i}" for i in range(draw(st.integers(1, 4)))]
        for shard in range(shards):
            size = min(rf, len(nodes))
            targets[(shard, group)] = draw(
                st.lists(st.sampled_from(nodes), min_size=size, max_size=size, unique=True)
            )
    nodes = sorted({node for owners in targets.values() for node in owners})
    schedule = {node: draw(behaviours) for node in nodes}
    return rf, targets, schedule


@given(quorum_writes())
@example(
    (
        3,
        {(0, 0): ["a", "b", "c"]},
        {"a": Answer(202), "b": Answer(202, delay=6.0), "c": Answer(500)},
    )
)
def test_quorum_verdict_matches_a_brute_force_oracle(write):
    rf, targets, schedule = write
    fake = scripted(schedule)

    def acked(node):  # the oracle's own reading of the schedule
        behaviour = schedule[node]
        return (
            isinstance(behaviour, Answer)
            and 200 <= behaviour.status < 300
            and behaviour.delay < DEADLINE
        )

    met = {pair for pair, owners in targets.items() if sum(acked(n) for n in owners) >= rf // 2 + 1}
    lost = {shard for shard, _ in targets} - {shard for shard, _ in met}

    async def main():
        start = trio.current_time()
        seen = []
        result = await quorum_write(
            fake,
            {node: NodeCall("POST", "/indexes/i/documents", body=b"[]") for node in schedule},
            targets,
            replication_factor=rf,
            deadline=start + DEADLINE,
            on_result=lambda node, node_result: seen.append((node, node_result)),
        )
        # on_result saw every node's result exactly once, as it was returned
        assert len(seen) == len(schedule) and all(result.results[n] is r for n, r in seen)
        assert result.verdict.met == met and result.verdict.missed == set(targets) - met
        assert result.verdict.shards_without_quorum == lost
        assert result.verdict.degraded_groups == {g for (_, g) in set(targets) - met}
        # it returns only once every target answered or reached its deadline
        assert trio.current_time() == max(
            ends_at(b, start, start + DEADLINE) for b in schedule.values()
        )
        assert not fake.in_flight() and result.results.keys() == schedule.keys()

    run(main)


# -- first-success race ---------------------------------------------------------------------


def accepted(behaviour) -> bool:
    return isinstance(behaviour, Answer) and behaviour.status < 500


def race_oracle(order, schedule, stagger):
    """Replay the race's rule on paper: when each candidate starts, and the earliest acceptable
    answer. Returns the winner's finishing time, or None if nobody answers acceptably in time."""
    start, best = 0.0, math.inf
    for node in order:
        if start >= min(DEADLINE, best):
            break
        behaviour = schedule[node]
        ready = math.inf if isinstance(behaviour, Hang) else start + behaviour.delay
        hedge_at = math.inf if stagger is None else start + stagger
        if accepted(behaviour) and ready < DEADLINE:
            best = min(best, ready)
            start = hedge_at
        else:  # fails when its answer comes, or times out at the deadline
            start = min(hedge_at, min(ready, DEADLINE))
    return None if best == math.inf else best


@given(schedules, st.one_of(st.none(), delays.filter(bool)))
@example({"n0": Hang(), "n1": Answer(200)}, 1.0)
@example({"n0": Fail(FailureKind.RESET, delay=1.0), "n1": Answer(404, delay=0.5)}, None)
def test_race_winner_matches_the_oracle_and_losers_are_cancelled(schedule, stagger):
    fake = scripted(schedule)
    order = list(schedule)

    async def main():
        start = trio.current_time()
        seen = {}
        result = await first_success(
            fake,
            order,
            NodeCall("POST", "/indexes/i/search"),
            deadline=start + DEADLINE,
            stagger=stagger,
            on_result=lambda node, node_result: seen.setdefault(node, []).append(node_result),
        )
        # on_result saw each result once: every failure and the winner (and, at most, answers
        # that arrived at the very instant the winner did)
        assert all(len(results) == 1 for results in seen.values())
        assert set(seen) <= set(result.started)
        assert all(seen[node][0] is failure for node, failure in result.failures.items())
        if result.winner is not None:
            assert seen[result.winner][0] is result.response
        best = race_oracle(order, schedule, stagger)
        assert not fake.in_flight()  # every loser was cancelled (or had finished)
        assert all(call.ended_at <= start + DEADLINE for call in fake.calls)
        if best is None:
            assert result.winner is None and set(result.failures) == set(result.started)
        else:
            assert result.winner is not None and accepted(schedule[result.winner])
            assert trio.current_time() == start + best
            assert set(result.cancelled) | set(result.failures) | {result.winner} == set(
                result.started
            )
        if stagger is None:  # pure failover: never two calls at once
            assert list(seen) == [*result.failures, *([result.winner] if result.winner else [])]
            calls = sorted(fake.calls, key=lambda call: call.started_at)
            assert all(a.ended_at <= b.started_at for a, b in zip(calls, calls[1:], strict=False))

    run(main)
