"""`miroir_hedged_requests_total{outcome}`: every hedged call counts `sent` once and exactly one
outcome once it ends -- `won` (its answer was taken), `lost` (cancelled: another replica answered
its shards first, whether that cancelled the hedge alone or ended the whole read), `dropped` (it
answered after the winner) or `failed` (its node failed, refused, or had no room for it).

Driven through the real `Cluster` and `gather_shards` over a FakeTransport under trio's MockClock:
three nodes, RF 2, one of them (`g0n1`) slow in each phase. A hedge is recognisable in the call
log as a call started after its read began (nothing fails here, so there are no fallbacks), which
lets each phase check the counted outcomes against what the hedged calls really did.
"""

from __future__ import annotations

from collections import Counter

import trio

from miroir.cluster.search import gather_shards
from miroir.transport.fake import Answer, FakeTransport
from tests.cluster.test_search_gather import body_for, echo, hedging_cluster, run

OUTCOMES = ("won", "lost", "dropped", "failed")


def test_every_hedged_call_counts_exactly_one_outcome_whatever_ended_it():
    transport = FakeTransport()
    cluster = hedging_cluster(transport, hedging=True, adaptive_replica_selection=False)
    first_delay = {"g0n0": 0.01, "g0n1": 0.01, "g0n2": 0.01}
    hedge_answer = {"delay": 0.01, "status": 200}  # calls started after their read began
    read_started = 0.0
    warming = True

    def node(node_id):
        def handler(call):
            if call.started_at > read_started:
                if hedge_answer["status"] != 200:
                    return Answer(hedge_answer["status"], json={"message": "down"},
                                  delay=hedge_answer["delay"])
                return echo(cluster, node_id, delay=hedge_answer["delay"])(call)
            if warming:  # one answer in five at 20 ms: each node's p95 is 20 ms
                return echo(cluster, node_id, delay=0.02 if len(transport.calls) % 5 == 0
                            else 0.01)(call)
            return echo(cluster, node_id, delay=first_delay[node_id])(call)
        return handler

    for node_id in first_delay:
        transport.handle(node_id, node(node_id))
    counted = Counter()
    cluster.hedge_observers.append(lambda outcome: counted.update([outcome]))

    async def reads(count: int) -> tuple[Counter, list]:
        """`count` reads: the outcomes counted meanwhile, and the hedged calls they made."""
        nonlocal read_started
        before, hedged_calls = Counter(counted), []
        for _ in range(count):
            read_started, calls_before = trio.current_time(), len(transport.calls)
            gathered = await gather_shards(cluster, "POST", "/x", body_for)
            assert gathered.missing == ()
            await trio.sleep(1)  # every call of the read has ended before the next one begins
            hedged_calls += [c for c in transport.calls[calls_before:]
                             if c.started_at > read_started]
        return counted - before, hedged_calls

    async def scenario() -> None:
        nonlocal warming
        # Warm-up: every node measured (a window of 128 answers), p95 20 ms. From here on the
        # fast nodes answer at 10 ms, before a hedge would be sent.
        await reads(150)
        warming = False
        # g0n1 answers at 50 ms and its replicas take 500 ms to answer a hedge: g0n1's answer
        # completes the read, which cancels the hedge with everything else still running.
        first_delay["g0n1"], hedge_answer["delay"] = 0.05, 0.5
        lost, calls = await reads(4)
        assert lost["sent"] == len(calls) > 0
        assert lost == Counter(sent=len(calls), lost=len(calls))
        assert {c.outcome for c in calls} == {"cancelled"}
        # g0n1 takes 300 ms and a hedge 10 ms: the hedge wins, g0n1's call is cancelled.
        first_delay["g0n1"], hedge_answer["delay"] = 0.3, 0.01
        won, calls = await reads(3)
        assert won["sent"] == len(calls) > 0
        assert won == Counter(sent=len(calls), won=len(calls))
        assert {(c.outcome, c.status) for c in calls} == {("answered", 200)}
        # The hedge's node answers 503: the hedge failed, g0n1's late answer is the read's.
        hedge_answer["status"] = 503
        failed, calls = await reads(3)
        assert failed["sent"] == len(calls) > 0
        assert failed == Counter(sent=len(calls), failed=len(calls))
        assert {(c.outcome, c.status) for c in calls} == {("answered", 503)}

    run(scenario)
    assert counted["sent"] == sum(counted[outcome] for outcome in OUTCOMES), counted
    assert not transport.in_flight()
