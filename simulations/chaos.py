"""The reference's chaos table, as simulated experiments with measured outcomes.

Usage (from the repository root):

    python simulations/chaos.py --out DIR [--seed N]

Writes DIR/chaos.md: one table of expected vs observed, byte-identical for the same arguments
(running time goes to stderr only).

Each experiment starts a fresh simulated deployment (`miroir.sim`: the real proxy app and
cluster code over SimTransport nodes, trio's MockClock, a seeded scheduler), writes a seeded
corpus of 40 documents with every node up, waits until every task finished, then injects one
fault and measures what clients see. Every client call also runs the simulator's invariants
(`miroir.sim.simulation`); their violations are counted in the table.

1. kill 1 of 3 nodes at RF=2: searches (every hit, limit above the corpus) against the
   single-node reference, then single-document writes; a write "warns" when it answers
   `X-Miroir-Degraded` or 503.
2. kill 2 of 3 at RF=2, with `unavailable_shard_policy` partial and error.
3. +500 ms on one node: search latency (virtual) before and after, errors.
4. restart a killed node after the health checker marked it failed: virtual time until the
   proxy has it in service again (active or healthy: read from the app's cluster state, for
   this report only; it rejoins and is caught up by the repair worker first) and
   until a write to one of its shards is clean again (what a client sees).
5. the rebalance rows (`simulations/chaos_rebalance.py`): a node added online with the joining
   node killed mid-copy; the same with the process running the rebalance killed; a dead node
   removed with `?force=true`.

Owns the experiments and the report. Must never reimplement cluster behaviour: expectations are
the design's, observations are what the app answered.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import attrs
import trio
import trio.testing

if __package__ in (None, ""):  # run as `python simulations/chaos.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from miroir.core.node_state import NodeState
from miroir.sim.cluster import SimSpec, open_sim_cluster
from miroir.sim.model import reference_engine, reference_search, search_difference
from miroir.sim.simulation import GENRES, WORDS, Simulation, make_document
from simulations.chaos_rebalance import (
    force_remove_dead_node,
    kill_engine_mid_rebalance,
    kill_node_mid_rebalance,
)
from simulations.common import markdown_table

REPORT_NAME = "chaos.md"
CORPUS = 40
SEARCHES = 40
WRITES = 40
BASE = SimSpec(nodes=3, groups=1, rf=2, shards=8, node_timeout_ms=2000,
               health_interval_ms=200, health_timeout_ms=100)
SLOW_EXTRA_S = 0.5


@attrs.frozen
class Row:
    experiment: str
    expected: str
    observed: str
    holds: bool
    violations: int


def corpus(rng: random.Random) -> list[dict]:
    return [make_document(i, rng.choices(WORDS, k=rng.randint(1, 4)), rng.choice(GENRES),
                          rng.randint(1990, 2020)) for i in range(CORPUS)]


def queries(rng: random.Random) -> list[dict]:
    return [{"q": " ".join(rng.sample(WORDS, rng.randint(0, 2))), "limit": 1000,
             "showRankingScore": True} for _ in range(SEARCHES)]


async def loaded(spec: SimSpec, seed: int, body) -> Row:
    """Start a deployment, load the corpus, run `body(simulation, rng)`."""
    rng = random.Random(f"miroir-chaos:{seed}")
    async with open_sim_cluster(spec, seed=seed) as sim:
        simulation = Simulation(sim, max_latency_s=SLOW_EXTRA_S + 0.01)
        created = await sim.request("POST", "/indexes", {"uid": "sim", "primaryKey": "id"})
        simulation.tasks.add(created.body["taskUid"])
        await simulation.write("add", corpus(rng))
        await simulation.checkpoint([])
        return await body(simulation, rng)


def nodes_of(simulation: Simulation, shard: int) -> set[str]:
    return {n for g in range(simulation.spec.groups) for n in simulation.owners[(g, shard)]}


async def kill_one(simulation: Simulation, rng: random.Random) -> Row:
    reference = reference_engine(simulation.model.settled_corpus(), {})
    simulation.crash("n0")
    complete = equal = 0
    for query in queries(rng):
        answer = await simulation.search(query)
        complete += answer.status == 200 and answer.degraded is None
        if answer.status == 200:
            equal += search_difference(answer.body, reference_search(reference, query)[1]) is None
    warned = clean = unexplained = 0
    for _ in range(WRITES):
        doc_id = rng.randrange(CORPUS)
        answer = await simulation.write("add", [make_document(doc_id, ["sun"], "drama", 2000)])
        warns = answer.status == 503 or answer.degraded is not None
        touches = "n0" in nodes_of(simulation, simulation.shard_of(str(doc_id)))
        warned += warns
        clean += answer.status == 202 and not warns
        unexplained += warns != touches
    observed = (f"searches complete {complete}/{SEARCHES}, equal to one node {equal}/{SEARCHES}; "
                f"writes clean {clean}, warned {warned} (503: a shard of n0 has no group with "
                f"quorum at RG=1), warned without touching n0 or silent when touching it: "
                f"{unexplained}")
    holds = complete == SEARCHES == equal and unexplained == 0
    return Row("kill 1 of 3 nodes, RF=2",
               "searches continue complete; writes warn only when a group missed quorum",
               observed, holds, len(simulation.report.violations))


def kill_two(policy: str):
    async def body(simulation: Simulation, rng: random.Random) -> Row:
        simulation.crash("n0")
        simulation.crash("n1")
        lost = {s for s in range(simulation.spec.shards)
                if nodes_of(simulation, s) <= {"n0", "n1"}}
        partial = errors = exact = 0
        for query in queries(rng):
            answer = await simulation.search(query)
            if answer.status == 200 and answer.degraded:
                partial += 1
                listed = {int(s) for s in answer.degraded.split("=", 1)[1].split(",")}
                exact += listed == lost
            errors += answer.status == 503 and answer.code == "miroir_shard_unavailable"
        if policy == "partial":
            expected = "partial answers with X-Miroir-Degraded naming the lost shards"
            holds = partial == exact == SEARCHES
        else:
            expected = "503 miroir_shard_unavailable"
            holds = errors == SEARCHES
        observed = (f"shards with no live owner {sorted(lost)}; partial {partial}/{SEARCHES} "
                    f"(header names exactly those shards: {exact}), 503 {errors}/{SEARCHES}")
        return Row(f"kill 2 of 3 nodes, RF=2, policy {policy}", expected, observed, holds,
                   len(simulation.report.violations))

    return body


async def slow_node(simulation: Simulation, rng: random.Random) -> Row:
    async def latencies() -> tuple[list[float], int]:
        seen, failed = [], 0
        for query in queries(rng):
            answer = await simulation.search(query)
            seen.append(answer.duration)
            failed += answer.status != 200 or answer.degraded is not None
        return seen, failed

    before, failed_before = await latencies()
    base = simulation.sim.transport.default_faults
    slow = attrs.evolve(base, latency=(base.latency[0] + SLOW_EXTRA_S,
                                       base.latency[1] + SLOW_EXTRA_S))
    simulation.set_faults("slow", "n1", slow)
    after, failed_after = await latencies()
    added = max(after) - min(before)
    mean_added = sum(after) / len(after) - sum(before) / len(before)
    observed = (f"search latency before {min(before) * 1000:.1f}-{max(before) * 1000:.1f} ms, "
                f"after {min(after) * 1000:.1f}-{max(after) * 1000:.1f} ms (mean +"
                f"{mean_added * 1000:.1f} ms, worst +{added * 1000:.1f} ms); errors or partial "
                f"answers {failed_before + failed_after}")
    holds = added <= SLOW_EXTRA_S + 1e-9 and failed_before + failed_after == 0
    return Row(f"+{SLOW_EXTRA_S * 1000:.0f} ms on one node",
               f"searches slowed by at most {SLOW_EXTRA_S * 1000:.0f} ms, no errors",
               observed, holds, len(simulation.report.violations))


async def restart_node(simulation: Simulation, _rng: random.Random) -> Row:
    spec = simulation.spec
    cluster = simulation.sim.cluster
    simulation.crash("n0")
    while cluster.state_of("n0") is not NodeState.FAILED:
        await simulation.advance(0.01)
    shard = next(s for s in range(spec.shards) if "n0" in nodes_of(simulation, s))
    doc_id = next(i for i in range(CORPUS) if simulation.shard_of(str(i)) == shard)
    simulation.restart("n0")
    restarted = trio.current_time()
    healthy_after = clean_after = None
    while healthy_after is None or clean_after is None:
        # Back in service: `active` once the repair worker caught it up, `healthy` after a probe.
        in_service = cluster.state_of("n0") in (NodeState.ACTIVE, NodeState.HEALTHY)
        if healthy_after is None and in_service:
            healthy_after = trio.current_time() - restarted
        if clean_after is None:
            answer = await simulation.write("add", [make_document(doc_id, ["sun"], "drama", 2000)])
            if answer.status == 202 and answer.degraded is None:
                clean_after = answer.started - restarted
        await simulation.advance(0.01)
    bound = spec.recovery_threshold * spec.health_interval_ms / 1000
    observed = (f"in service {healthy_after * 1000:.0f} ms after restart, first clean write to "
                f"its shard {clean_after * 1000:.0f} ms after (health interval "
                f"{spec.health_interval_ms} ms, recovery threshold {spec.recovery_threshold})")
    holds = healthy_after <= bound + spec.health_timeout_ms / 1000 and clean_after <= bound + 0.1
    return Row("restart a killed node",
               f"recovered within {spec.recovery_threshold} health intervals "
               f"(= {bound * 1000:.0f} ms)", observed, holds, len(simulation.report.violations))


EXPERIMENTS = (
    (BASE, kill_one),
    (BASE, kill_two("partial")),
    (attrs.evolve(BASE, policy="error"), kill_two("error")),
    (BASE, slow_node),
    (BASE, restart_node),
    (BASE, kill_node_mid_rebalance),
    (BASE, kill_engine_mid_rebalance),
    (BASE, force_remove_dead_node),
)


def run_experiments(seed: int) -> list[Row]:
    rows = []
    for number, (spec, body) in enumerate(EXPERIMENTS):
        rows.append(trio.run(loaded, spec, seed * 100 + number, body,
                             clock=trio.testing.MockClock(autojump_threshold=0)))
    return rows


def render(rows: Sequence[Row], seed: int) -> str:
    table = markdown_table(
        ["experiment", "expected", "observed", "holds", "invariant violations"],
        [(r.experiment, r.expected, r.observed, "yes" if r.holds else "**no**", r.violations)
         for r in rows])
    return (f"# Chaos experiments (simulated, seed {seed})\n\n"
            f"Deployment: {BASE.nodes} nodes, {BASE.groups} replica group, RF={BASE.rf}, "
            f"{BASE.shards} shards, node timeout {BASE.node_timeout_ms} ms, health every "
            f"{BASE.health_interval_ms} ms; {CORPUS} documents; times are virtual.\n\n" + table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="directory for chaos.md")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = render(run_experiments(args.seed), args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / REPORT_NAME).write_text(report, encoding="utf-8")
    print(f"chaos: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
