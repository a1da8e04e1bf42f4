"""The simulated cluster: same seed, same bytes; a quiet cluster passes every invariant that
was checked; the invariants do fail when the model and the cluster disagree; faults show up in
what clients see exactly as the cluster code renders them.
"""

from __future__ import annotations

import trio
import trio.testing

from miroir.sim.cluster import Answer, SimSpec, open_sim_cluster
from miroir.sim.model import version_of
from miroir.sim.simulation import Simulation, make_document
from miroir.sim.workload import RunArgs, run


def test_same_seed_gives_a_byte_identical_trace_and_summary():
    args = RunArgs(seed=11, ops=120, faults="chaos")
    first, second = run(args, keep_trace=True), run(args, keep_trace=True)
    assert first.trace == second.trace
    assert first.report == second.report
    # Concurrent calls happen (scatter, health rounds) and faults were injected, so the equality
    # above covered scheduler order and the fault streams.
    assert sum(first.report.faults.values()) > 0
    assert len(first.trace) > 500
    other = run(RunArgs(seed=12, ops=120, faults="chaos"), keep_trace=True)
    assert other.trace != first.trace


def test_a_quiet_cluster_violates_nothing_and_the_heavy_checks_ran():
    result = run(RunArgs(seed=3, ops=150, faults="none"))
    checks = result.report.checks
    assert result.report.violations == []
    assert checks["I8 readable after heal"] > 0
    assert checks["I9 search equals reference"] > 0
    assert checks["I7 task terminal"] > 0
    assert checks["I12 a finished task is announced exactly once"] > 0
    assert checks["I6 quiet cluster answers fully"] > 0


async def start(sim_spec, seed=1):
    return open_sim_cluster(sim_spec, seed=seed, trace=[])


async def create_index(simulation):
    created = await simulation.sim.request("POST", "/indexes", {"uid": "sim", "primaryKey": "id"})
    simulation.tasks.add(created.body["taskUid"])


async def test_the_checks_fail_when_the_model_disagrees_with_the_cluster(autojump_clock):
    """A model that believes something the cluster never did must be caught at a checkpoint."""
    async with open_sim_cluster(SimSpec(), seed=2) as sim:
        simulation = Simulation(sim, max_latency_s=0.01)
        await create_index(simulation)
        document = make_document(1, ["red"], "drama", 2000)
        await simulation.write("add", [document])
        # The model now wrongly believes a different version was confirmed.
        other = make_document(1, ["blue"], "drama", 2000)
        simulation.model.sent("1", version_of(other))
        simulation.model.confirmed("1", version_of(other), trio.current_time() + 100)
        await simulation.checkpoint([{"q": "blue"}])
    kinds = {v.split(":")[0].split(" ", 1)[1] for v in simulation.report.violations}
    assert kinds == {"I8 readable after heal", "I9 search equals reference"}


async def test_a_crashed_owner_shows_as_degraded_write_and_failover_read(autojump_clock):
    spec = SimSpec(nodes=4, groups=2, rf=1, shards=4)
    async with open_sim_cluster(spec, seed=4) as sim:
        simulation = Simulation(sim, max_latency_s=0.01)
        await create_index(simulation)
        simulation.crash("n1")  # group 1 holds every shard on n1 and n3
        documents = [make_document(i, ["sun"], "comedy", 2000) for i in range(8)]
        answer = await simulation.write("add", documents)
        assert answer.status == 202
        pairs = {tuple(map(int, item.split("/"))) for item in answer.degraded.split(",")}
        owned_by_n1 = {(1, shard) for (group, shard), nodes in simulation.owners.items()
                       if "n1" in nodes}
        written = {(1, s) for s in {simulation.shard_of(str(d["id"])) for d in documents}}
        assert pairs == owned_by_n1 & written
        await simulation.advance(2.0)
        search = await simulation.search({"q": "sun"})
        assert search.status == 200 and search.degraded is None  # group 0 covers everything
        await simulation.checkpoint([{"q": "sun"}])
    assert simulation.report.violations == []


async def test_the_exact_write_check_flags_a_wrong_header_or_a_missing_503(autojump_clock):
    spec = SimSpec(nodes=4, groups=2, rf=1, shards=4)
    async with open_sim_cluster(spec, seed=5) as sim:
        simulation = Simulation(sim, max_latency_s=0.01)
        (g0, g1) = simulation.owners[(0, 2)][0], simulation.owners[(1, 2)][0]

        def answer(status, degraded=None, code=None):
            body = {"taskUid": 1} if status == 202 else {"code": code}
            return Answer("POST", "/x", status, body, degraded, 0.0, 0.0)

        everyone = {g0: True, g1: True}
        simulation._check_write_verdict("add", answer(202), {2}, set(), everyone)
        simulation._check_write_verdict("add", answer(202, "1/2"), {2}, {(1, 2)}, {g0: True})
        assert simulation.report.violations == []
        simulation._check_write_verdict("add", answer(202, "1/2"), {2}, {(1, 2)}, everyone)
        simulation._check_write_verdict("add", answer(202), {2}, set(), {})
        simulation._check_write_verdict("add", answer(503, code="miroir_no_quorum"), {2}, set(),
                                        everyone)
    assert len(simulation.report.violations) == 3


async def test_the_search_header_is_exactly_the_shards_no_node_answered(autojump_clock):
    """Two groups at RF=1: with both owners of some shards down the header must name exactly
    those shards, and a planted lie about which shards were answered is caught."""
    spec = SimSpec(nodes=4, groups=2, rf=1, shards=8)
    async with open_sim_cluster(spec, seed=6) as sim:
        simulation = Simulation(sim, max_latency_s=0.01)
        await create_index(simulation)
        await simulation.write("add", [make_document(i, ["sun"], "drama", 2000) for i in range(20)])
        await simulation.advance(1.0)
        simulation.crash("n0")
        simulation.crash("n1")  # n0 is in group 0, n1 in group 1
        both_down = {s for s in range(spec.shards)
                     if {simulation.owners[(0, s)][0], simulation.owners[(1, s)][0]} == {"n0", "n1"}}
        assert both_down and len(both_down) < spec.shards  # this seed's placement has some
        answer = await simulation.search({"q": "sun"})
        assert answer.status == 200
        assert {int(s) for s in answer.degraded.split("=")[1].split(",")} == both_down
        assert simulation.report.violations == []
        simulation._shards_asked = lambda node, body: set()  # pretend no node answered anything
        await simulation.search({"q": "sun"})
    assert any("I3 search header" in v for v in simulation.report.violations)


async def test_i13_catches_a_node_write_enqueued_twice(autojump_clock):
    """A write whose tag a node holds twice (what a resend after a lost answer would do without
    the lookup) is caught at the checkpoint; the same run without it passes."""
    async with open_sim_cluster(SimSpec(), seed=5) as sim:
        simulation = Simulation(sim, max_latency_s=0.01)
        await create_index(simulation)
        document = make_document(1, ["red"], "drama", 2000)
        await simulation.write("add", [document])
        await simulation.checkpoint([{"q": "red"}])
        assert simulation.report.violations == []
        assert simulation.report.checks["I13 no node task is duplicated by a retry"] > 0
        node = next(iter(simulation.owners[(0, simulation.shard_of("1"))]))
        engine = sim.transport.engine(node)
        tagged = next(t for t in reversed(engine.tasks.values()) if t.custom_metadata)
        sim.transport.out_of_band(node, lambda e: e.add_documents(
            "sim", [{**document, "_miroir_shard": simulation.shard_of("1")}], primary_key="id",
            custom_metadata=tagged.custom_metadata))
        await simulation.checkpoint([{"q": "red"}])
    assert [v for v in simulation.report.violations if "I13" in v], simulation.report.violations
