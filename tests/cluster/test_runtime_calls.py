"""`Cluster.first_success` and `Cluster.quorum_write`: the runtime's thin wrappers over
`race.first_success` and `quorum_write.quorum_write`.

What the wrappers add is checked here, not the race or the tally themselves (their laws are in
tests/properties/test_scatter.py): the node master key on every call, a node deadline per
attempt, metrics and health fed from every result, and the write acknowledgement rule. The two
equivalence laws compare each wrapper with the simple mechanism it replaced (asking nodes one
after another with `Cluster.call`; counting quorum after `Cluster.fan_out` returned), run under
trio's MockClock so every time compared is exact trio time.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing
from hypothesis import example, given, settings
from hypothesis import strategies as st

from miroir.cluster.runtime import Cluster, ClusterSettings, enqueued_a_task
from miroir.cluster.writes import quorum_targets
from miroir.core.node_state import NodeState
from miroir.core.quorum import WriteTally
from miroir.core.topology import Node, Topology
from miroir.store.memory import MemoryStore
from miroir.transport.base import FailureKind, NodeResponse, NodeTimeout, is_node_failure
from miroir.transport.fake import Answer, Fail, FakeTransport, Hang

TIMEOUT_MS = 1000
KEY = "node-master-key"


def make_cluster(transport, *, groups=1, per_group=4, rf=1, shards=4, threshold=3) -> Cluster:
    nodes = tuple(
        Node(f"g{g}n{i}", f"http://g{g}n{i}.invalid", g)
        for g in range(groups)
        for i in range(per_group)
    )
    topology = Topology(shards=shards, replication_factor=rf, replica_groups=groups, nodes=nodes)
    settings_ = ClusterSettings(
        node_timeout_ms=TIMEOUT_MS, node_master_key=KEY, unhealthy_threshold=threshold
    )
    return Cluster(topology, transport, MemoryStore(), settings_)


def observed(cluster: Cluster) -> list[tuple[str, float, str]]:
    """Attach a call observer; the list fills with (node, seconds, outcome) per result."""
    log: list[tuple[str, float, str]] = []
    cluster.call_observers.append(
        lambda node, seconds, result: log.append((node, seconds, summary(result)))
    )
    return log


def summary(result) -> str:
    if result is None:
        return "none"
    if isinstance(result, NodeResponse):
        return f"{result.node_id} {result.status} {result.body!r}"
    return f"{result.node_id} {type(result).__name__}"


def run(async_fn):
    return trio.run(async_fn, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


# Delays in quarters of a second up to twice the node timeout, so hung and slow nodes both occur.
delays = st.integers(0, 8).map(lambda quarters: quarters / 4)
behaviours = st.one_of(
    st.builds(Answer, status=st.sampled_from([200, 404, 500, 503]), delay=delays),
    st.builds(Fail, kind=st.sampled_from([FailureKind.REFUSED, FailureKind.RESET]), delay=delays),
    st.just(Hang()),
)
NODES = [f"g0n{i}" for i in range(4)]


# -- first_success ------------------------------------------------------------------------------


async def one_after_another(cluster: Cluster, node_ids, method, path):
    """The mechanism `Cluster.first_success` replaced, kept as the reference."""
    last = None
    for node_id in node_ids:
        last = await cluster.call(node_id, method, path)
        if not is_node_failure(last):
            return last
    return last


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(NODES), unique=True, max_size=4),
    st.fixed_dictionaries({node: behaviours for node in NODES}),
)
@example([], {node: Answer(200) for node in NODES})
@example(["g0n0", "g0n1"], {"g0n0": Hang(), "g0n1": Answer(200), **{n: Hang() for n in NODES[2:]}})
def test_failover_answers_like_asking_one_node_after_another(order, schedule):
    """Law: without a stagger, `Cluster.first_success` gives the same answer, at the same trio
    time, with the same node calls (deadlines and headers included), the same observations and
    the same node states as calling the nodes one after another with `Cluster.call`."""

    def play(ask):
        fake = FakeTransport()
        for node, behaviour in schedule.items():
            fake.script(node, behaviour)
        cluster = make_cluster(fake, threshold=1)
        log = observed(cluster)

        async def main():
            start = trio.current_time()
            result = await ask(cluster)
            return summary(result), trio.current_time() - start

        answer, took = run(main)
        calls = [
            (c.node_id, c.started_at, c.deadline, c.ended_at, c.outcome, c.headers)
            for c in fake.calls
        ]
        return answer, took, calls, log, cluster.topology.states()

    raced = play(lambda cluster: cluster.first_success(order, "GET", "/indexes/movies"))
    reference = play(lambda cluster: one_after_another(cluster, order, "GET", "/indexes/movies"))
    assert raced == reference


async def test_a_hung_node_costs_one_node_timeout_then_the_next_node_answers(autojump_clock):
    fake = FakeTransport()
    fake.script("g0n0", Hang())
    fake.script("g0n1", Answer(200, json={"uid": "movies"}, delay=0.25))
    cluster = make_cluster(fake)
    log = observed(cluster)
    start = trio.current_time()
    result = await cluster.first_success(["g0n0", "g0n1"], "GET", "/indexes/movies")
    assert isinstance(result, NodeResponse) and result.json() == {"uid": "movies"}
    assert trio.current_time() == start + TIMEOUT_MS / 1000 + 0.25
    # each attempt had the whole node timeout from its own start
    assert [c.deadline - c.started_at for c in fake.calls] == [TIMEOUT_MS / 1000] * 2
    assert [(node, outcome.split()[-1]) for node, _, outcome in log] == [
        ("g0n0", "NodeTimeout"),
        ("g0n1", "b'{\"uid\":\"movies\"}'"),
    ]
    assert log[0][1] == TIMEOUT_MS / 1000 and log[1][1] == 0.25


async def test_a_hedged_read_cancels_the_slow_node_and_does_not_count_it_as_failed(
    autojump_clock,
):
    fake = FakeTransport()
    fake.script("g0n0", Answer(200, json={"from": "slow"}, delay=0.75))
    fake.script("g0n1", Answer(200, json={"from": "fast"}, delay=0.25))
    cluster = make_cluster(fake, threshold=1)
    log = observed(cluster)
    start = trio.current_time()
    result = await cluster.first_success(
        ["g0n0", "g0n1"], "POST", "/indexes/movies/search", {"q": "x"}, stagger_s=0.25
    )
    assert result.json() == {"from": "fast"}
    assert trio.current_time() == start + 0.5
    assert [c.outcome for c in fake.calls] == ["cancelled", "answered"]
    assert [node for node, _, _ in log] == ["g0n1"]  # the cancelled attempt has no result
    assert cluster.state_of("g0n0") is NodeState.ACTIVE
    for call in fake.calls:
        assert ("authorization", f"Bearer {KEY}") in call.headers
        assert ("content-type", "application/json") in call.headers
        assert call.json() == {"q": "x"}


async def test_when_every_node_fails_the_last_failure_is_returned(autojump_clock):
    fake = FakeTransport()
    fake.script("g0n0", Answer(503, delay=0.25))
    fake.script("g0n1", Fail(FailureKind.REFUSED))
    cluster = make_cluster(fake)
    result = await cluster.first_success(["g0n0", "g0n1"], "GET", "/version")
    assert result.node_id == "g0n1" and is_node_failure(result)
    assert await cluster.first_success([], "GET", "/version") is None


# -- quorum_write -------------------------------------------------------------------------------

write_answers = st.one_of(
    st.builds(
        Answer,
        status=st.sampled_from([202, 400, 500]),
        json=st.sampled_from([{"taskUid": 7}, {}, None]),
        delay=delays,
    ),
    st.builds(Fail, kind=st.just(FailureKind.RESET), delay=delays),
    st.just(Hang()),
)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 2), st.integers(1, 2), st.data())
def test_quorum_counted_as_answers_arrive_equals_counting_after_the_fan_out(rf, groups, data):
    """Law: `Cluster.quorum_write` reaches the verdict that counting the `fan_out` results
    afterwards reaches (an ack is a 2xx with a task uid), at the same trio time, with the same
    results and observations; nodes outside the targets are written to but never counted."""
    nodes = [f"g{g}n{i}" for g in range(groups) for i in range(3)]
    schedule = {node: data.draw(write_answers, label=node) for node in nodes}
    shards = data.draw(st.sets(st.integers(0, 3), min_size=1), label="shards")

    def play(write):
        fake = FakeTransport()
        for node, behaviour in schedule.items():
            fake.script(node, behaviour)
        cluster = make_cluster(fake, groups=groups, per_group=3, rf=rf, threshold=100)
        log = observed(cluster)
        targets = quorum_targets(cluster.shard_map, shards)

        async def main():
            start = trio.current_time()
            verdict, results = await write(cluster, targets)
            return verdict, {n: summary(r) for n, r in results.items()}, trio.current_time() - start

        return (*run(main), sorted(log))

    async def as_answers_arrive(cluster, targets):
        written = await cluster.quorum_write(nodes, "POST", "/indexes/i/documents", [], targets)
        return written.verdict, written.results

    async def after_the_fan_out(cluster, targets):
        results = await cluster.fan_out(nodes, "POST", "/indexes/i/documents", [])
        tally = WriteTally(targets, rf)
        for node in tally.nodes:
            tally.record(node, enqueued_a_task(results[node]))
        return tally.finish(), results

    assert play(as_answers_arrive) == play(after_the_fan_out)


async def test_a_2xx_without_a_task_uid_is_no_acknowledgement(autojump_clock):
    fake = FakeTransport()
    fake.script("g0n0", Answer(202, json={"taskUid": 3}))
    fake.script("g0n1", Answer(202, json={}))
    cluster = make_cluster(fake, per_group=2, shards=1)
    log = observed(cluster)
    written = await cluster.quorum_write(
        ["g0n0", "g0n1"], "POST", "/indexes/i/documents", lambda node: [{"id": node}],
        {(0, 0): ["g0n1"]},
    )
    assert written.verdict.shards_without_quorum == {0}
    assert written.acked_nodes() == ["g0n0"]  # g0n0 acked, but it counts for no pair here
    assert sorted(node for node, _, _ in log) == ["g0n0", "g0n1"]
    assert fake.calls_to("g0n0")[0].json() == [{"id": "g0n0"}]


async def test_a_write_that_times_out_is_fed_to_health(autojump_clock):
    fake = FakeTransport()
    fake.script("g0n0", Hang())
    cluster = make_cluster(fake, per_group=1, shards=1, threshold=1)
    written = await cluster.quorum_write(
        ["g0n0"], "POST", "/indexes/i/documents", [], {(0, 0): ["g0n0"]}
    )
    assert isinstance(written.results["g0n0"], NodeTimeout)
    assert cluster.state_of("g0n0") is not NodeState.ACTIVE


# -- wait_for_node_tasks ------------------------------------------------------------------------


async def test_a_node_task_the_node_no_longer_knows_ends_the_wait_at_once(autojump_clock):
    """A node restarted with its state lost answers 404 for a task it had enqueued: that task
    will never finish there, so the wait ends on the 404 instead of at its deadline (the repair
    worker waits a minute; seed 1041 of issue #19 stalled every repair behind one such wait)."""
    fake = FakeTransport()
    fake.script("g0n0", Answer(404, json={"code": "task_not_found"}))
    fake.script("g0n1", Answer(200, json={"status": "processing"}),
                Answer(200, json={"status": "succeeded", "uid": 7}))
    cluster = make_cluster(fake)
    start = trio.current_time()
    views = await cluster.wait_for_node_tasks({"g0n0": 3, "g0n1": 7}, timeout_ms=60_000)
    assert views == {"g0n0": None, "g0n1": {"status": "succeeded", "uid": 7}}
    assert trio.current_time() - start < 1.0
    assert [c.path for c in fake.calls if c.node_id == "g0n0"] == ["/tasks/3"]


async def test_a_node_task_still_running_is_waited_for_until_the_deadline(autojump_clock):
    fake = FakeTransport()
    fake.script("g0n0", Answer(200, json={"status": "processing"}))
    cluster = make_cluster(fake)
    start = trio.current_time()
    views = await cluster.wait_for_node_tasks({"g0n0": 3}, timeout_ms=5_000)
    assert views == {"g0n0": None}
    assert trio.current_time() - start >= 5.0
