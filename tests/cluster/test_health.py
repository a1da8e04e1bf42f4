"""The health checker against FakeTransport under trio's MockClock (autojump: waiting is free).

The stub cluster below has the two methods the checker uses; `StatefulCluster` also feeds the
core's HealthCounter and transition table, the way `miroir.cluster.runtime.Cluster` does, so the
threshold tests exercise checker + state machine together.
"""

from __future__ import annotations

import pytest
import trio
from hypothesis import example, given
from hypothesis import strategies as st

from miroir.cluster.health import HEALTH_PATH, HealthChecker
from miroir.config import HealthConfig
from miroir.core.node_state import HealthCounter, NodeState, Signal, next_state
from miroir.transport.base import FailureKind
from miroir.transport.fake import Answer, Fail, FakeTransport, Hang


class RecordingCluster:
    def __init__(self, transport, node_ids, clock_ms=lambda: 0):
        self.transport = transport
        self.nodes = list(node_ids)
        self.results: list[tuple[str, bool, int]] = []
        self.now_ms = clock_ms

    def node_ids(self):
        return list(self.nodes)

    def record_node_result(self, node_id, ok, now_ms):
        self.results.append((node_id, ok, now_ms))


class StatefulCluster(RecordingCluster):
    def __init__(self, transport, node_ids, health: HealthConfig):
        super().__init__(transport, node_ids)
        self.states = {n: NodeState.ACTIVE for n in node_ids}
        self.counters = {
            n: HealthCounter(health.unhealthy_threshold, health.recovery_threshold)
            for n in node_ids
        }

    def record_node_result(self, node_id, ok, now_ms):
        super().record_node_result(node_id, ok, now_ms)
        event = self.counters[node_id].record(self.states[node_id], ok)
        if event is not None:
            self.states[node_id] = next_state(node_id, self.states[node_id], event)


def trio_clock_ms() -> int:
    return int(trio.current_time() * 1000)


HEALTH = HealthConfig(interval_ms=1000, timeout_ms=300, unhealthy_threshold=3, recovery_threshold=2)


async def test_a_round_probes_every_node_at_once_with_get_health_and_one_deadline(autojump_clock):
    fake = FakeTransport()
    fake.script("n1", Answer(200, json={"status": "available"}))
    fake.script("n2", Answer(200, json={"status": "available"}, delay=0.2))
    fake.script("n3", Hang())
    cluster = RecordingCluster(fake, ["n1", "n2", "n3"], clock_ms=trio_clock_ms)
    checker = HealthChecker(cluster, HEALTH)

    started = trio.current_time()
    verdicts = await checker.probe_once()

    assert verdicts == {"n1": True, "n2": True, "n3": False}
    assert sorted((c.node_id, c.method, c.path) for c in fake.calls) == [
        ("n1", "GET", HEALTH_PATH),
        ("n2", "GET", HEALTH_PATH),
        ("n3", "GET", HEALTH_PATH),
    ]
    assert {c.started_at for c in fake.calls} == {started}, "probes must run concurrently"
    assert {c.deadline for c in fake.calls} == {started + HEALTH.timeout_ms / 1000}
    # The round lasts as long as its slowest probe: the hung one, cut off at the deadline.
    assert trio.current_time() == pytest.approx(started + HEALTH.timeout_ms / 1000)
    now_ms = trio_clock_ms()
    assert cluster.results == [("n1", Signal.ANSWERED, now_ms), ("n2", Signal.ANSWERED, now_ms),
                               ("n3", Signal.TIMED_OUT, now_ms)]


A, T, D = Signal.ANSWERED, Signal.TIMED_OUT, Signal.DOWN


@pytest.mark.parametrize(
    ("behaviour", "signal"),
    [
        (Answer(200, json={"status": "available"}), A),
        (Answer(204), A),
        (Answer(503, json={"message": "down"}), D),
        (Answer(500), D),
        (Answer(404), D),
        (Answer(200, delay=0.5), T),  # answers after the 300 ms deadline
        (Fail(FailureKind.REFUSED), D),
        (Fail(FailureKind.RESET), D),
        (Fail(FailureKind.PROTOCOL), D),
        (Hang(), T),
    ],
    ids=repr,
)
async def test_verdict_of_one_probe(autojump_clock, behaviour, signal):
    fake = FakeTransport()
    fake.script("n1", behaviour)
    cluster = RecordingCluster(fake, ["n1"])
    assert await HealthChecker(cluster, HEALTH).probe_once() == {"n1": signal is A}
    assert [(node, ok) for node, ok, _ in cluster.results] == [("n1", signal)]


async def test_an_unknown_node_is_unhealthy_not_a_crash(autojump_clock):
    fake = FakeTransport()  # no script for n9: the fake raises UnknownNode (a TransportError)
    cluster = RecordingCluster(fake, ["n9"])
    assert await HealthChecker(cluster, HEALTH).probe_once() == {"n9": False}


async def test_rounds_start_at_a_fixed_rate_even_when_probes_are_slow(autojump_clock):
    fake = FakeTransport()
    fake.script("fast", Answer(200))
    fake.script("slow", Answer(200, delay=0.25))
    cluster = RecordingCluster(fake, ["fast", "slow"])
    checker = HealthChecker(cluster, HEALTH)

    start = trio.current_time()
    with trio.move_on_after(5.5):
        await checker.run()

    round_starts = sorted({c.started_at - start for c in fake.calls_to("slow")})
    assert round_starts == pytest.approx([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert checker.rounds == 6


async def test_a_round_longer_than_the_interval_starts_the_next_one_at_once(autojump_clock):
    config = HealthConfig(interval_ms=100, timeout_ms=250)
    fake = FakeTransport()
    fake.script("n1", Hang())
    checker = HealthChecker(RecordingCluster(fake, ["n1"]), config)

    start = trio.current_time()
    with trio.move_on_after(1.0):
        await checker.run()

    starts = [c.started_at - start for c in fake.calls]
    assert starts == pytest.approx([0.0, 0.25, 0.5, 0.75])


async def test_run_reports_started_and_stops_when_cancelled(autojump_clock):
    fake = FakeTransport()
    fake.script("n1", Answer(200))
    cluster = RecordingCluster(fake, ["n1"])
    checker = HealthChecker(cluster, HEALTH)
    async with trio.open_nursery() as nursery:
        await nursery.start(checker.run)
        await trio.sleep(2.5)
        nursery.cancel_scope.cancel()
    assert checker.rounds == 3
    assert fake.in_flight() == []


async def test_membership_is_read_at_the_start_of_every_round(autojump_clock):
    fake = FakeTransport(default=Answer(200))
    cluster = RecordingCluster(fake, ["n1"])
    checker = HealthChecker(cluster, HEALTH)
    await checker.probe_once()
    cluster.nodes = ["n1", "n2"]
    await checker.probe_once()
    cluster.nodes = ["n2"]
    await checker.probe_once()
    probed = [c.node_id for c in fake.calls]
    assert [sorted(probed[:1]), sorted(probed[1:3]), probed[3:]] == [["n1"], ["n1", "n2"], ["n2"]]


async def test_a_node_goes_failed_after_the_threshold_and_back_after_recovery(autojump_clock):
    # Probe answers by round: ok, then 3 failures (unhealthy_threshold), then 2 oks (recovery).
    plan = [True, False, False, False, True, True, True]
    fake = FakeTransport()
    fake.script("n1", *[Answer(200) if ok else Fail(FailureKind.REFUSED) for ok in plan])
    fake.script("n2", Answer(200))
    cluster = StatefulCluster(fake, ["n1", "n2"], HEALTH)
    checker = HealthChecker(cluster, HEALTH)

    seen = []
    for _ in plan:
        await checker.probe_once()
        seen.append(cluster.states["n1"])
    S = NodeState
    assert seen == [S.HEALTHY, S.DEGRADED, S.DEGRADED, S.FAILED, S.FAILED, S.HEALTHY, S.HEALTHY]
    assert cluster.states["n2"] is S.HEALTHY


@given(rounds=st.lists(st.lists(st.booleans(), min_size=3, max_size=3), min_size=1, max_size=8))
@example(rounds=[[False, False, False]] * 4)
def test_the_recorded_verdicts_are_exactly_what_the_nodes_did(rounds):
    """Law: whatever each node does in each round, the cluster hears exactly that, once per
    node per round, in node order, and nothing else."""
    nodes = ["n1", "n2", "n3"]

    async def scenario():
        fake = FakeTransport()
        for i, node in enumerate(nodes):
            fake.script(
                node, *[Answer(200) if r[i] else Fail(FailureKind.TIMEOUT) for r in rounds]
            )
        cluster = RecordingCluster(fake, nodes)
        checker = HealthChecker(cluster, HEALTH)
        for _ in rounds:
            await checker.probe_once()
        return cluster.results

    results = trio.run(scenario, clock=trio.testing.MockClock(autojump_threshold=0))
    expected = [(node, A if r[i] else T) for r in rounds for i, node in enumerate(nodes)]
    assert [(node, ok) for node, ok, _ in results] == expected


async def test_the_cluster_clock_stamps_results_read_at_each_round(autojump_clock):
    """The real Cluster's clock, read when a round ends (never captured at construction)."""
    from miroir.cluster.runtime import Cluster
    from miroir.core.topology import Node, Topology
    from miroir.store.memory import MemoryStore

    class SteppingClock:
        def __init__(self):
            self.now = 1000

        def now_ms(self):
            self.now += 234
            return self.now

    topology = Topology(shards=2, replication_factor=1, replica_groups=1,
                        nodes=(Node("n1", "http://n1.invalid", 0),))
    cluster = Cluster(topology, FakeTransport(default=Answer(200)), MemoryStore(),
                      clock=SteppingClock())
    checker = HealthChecker(cluster, HEALTH)
    await checker.probe_once()
    assert cluster.last_seen_ms["n1"] == 1234
    await checker.probe_once()
    assert cluster.last_seen_ms["n1"] == 1468


async def test_a_round_is_one_request_many_when_the_transport_offers_it(autojump_clock):
    """As a search's scatter: one task drives the whole round (HttpTransport, SimTransport)."""
    from miroir.transport.base import NodeResponse, NodeTimeout

    class ManyOnly:
        def __init__(self):
            self.rounds = []

        async def request(self, *args, **kwargs):
            raise AssertionError("probed one node at a time")

        async def request_many(self, calls, *, deadline, on_result=None):
            self.rounds.append((sorted((n, c.method, c.path) for n, c in calls.items()), deadline))
            results = {"n1": NodeResponse("n1", 200, (), b"{}"),
                       "n2": NodeResponse("n2", 503, (), b"{}"),
                       "n3": NodeTimeout("n3", "deadline passed")}
            for node, result in results.items():
                if on_result is not None:
                    on_result(node, result)
            return results

    transport = ManyOnly()
    started = trio.current_time()
    verdicts = await HealthChecker(RecordingCluster(transport, ["n1", "n2", "n3"]),
                                   HEALTH).probe_once()
    assert verdicts == {"n1": True, "n2": False, "n3": False}
    assert transport.rounds == [([("n1", "GET", HEALTH_PATH), ("n2", "GET", HEALTH_PATH),
                                  ("n3", "GET", HEALTH_PATH)], started + HEALTH.timeout_ms / 1000)]


def busy_node_cluster(search_behaviour):
    """A real Cluster with one node whose /health answers after the probe timeout and whose
    other routes do `search_behaviour`."""
    from miroir.cluster.runtime import Cluster, ClusterSettings
    from miroir.core.topology import Node, Topology
    from miroir.store.memory import MemoryStore

    fake = FakeTransport()
    fake.handle("n1", lambda call: Answer(200, delay=0.5) if call.path == HEALTH_PATH
                else search_behaviour)
    topology = Topology(shards=2, replication_factor=1, replica_groups=1,
                        nodes=(Node("n1", "http://n1.invalid", 0),))
    settings = ClusterSettings(node_timeout_ms=1000, unhealthy_threshold=3, recovery_threshold=2)
    return Cluster(topology, fake, MemoryStore(), settings)


async def test_a_slow_probe_while_real_requests_succeed_is_not_a_failure(autojump_clock):
    """Issue 20: a busy node answers its probe late but serves every search; it stays healthy."""
    cluster = busy_node_cluster(Answer(200, json={"hits": []}, delay=0.2))
    checker = HealthChecker(cluster, HEALTH)  # probes time out at 300 ms
    await checker.probe_once()  # before any request: a slow probe is a failure
    assert cluster.state_of("n1") is NodeState.DEGRADED
    for _ in range(10):
        await cluster.call("n1", "POST", "/indexes/a/search", {})
        await checker.probe_once()
        assert cluster.state_of("n1") is NodeState.HEALTHY


async def test_slow_probes_and_timed_out_requests_fail_the_node(autojump_clock):
    """...but a node whose requests time out too is failed after the threshold."""
    cluster = busy_node_cluster(Hang())
    checker = HealthChecker(cluster, HEALTH)
    await cluster.call("n1", "POST", "/indexes/a/search", {})
    await checker.probe_once()
    assert cluster.state_of("n1") is NodeState.DEGRADED
    await cluster.call("n1", "POST", "/indexes/a/search", {})
    assert cluster.state_of("n1") is NodeState.FAILED
