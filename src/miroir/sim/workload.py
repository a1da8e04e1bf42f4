"""The seeded random program behind `miroir simulate`: client operations, faults, checkpoints.

Owns the mix of operations, the fault presets per `--faults` mode, how often each fault is
injected, and the summary text. Everything is drawn from one `random.Random` seeded by the run's
arguments, so the same arguments give the same program, and with `miroir.sim.cluster`'s seeded
scheduler and virtual time, the same trace and the same summary byte for byte.

Must never: read the wall clock into the summary (callers print timings to stderr), or check an
invariant itself (that is `miroir.sim.simulation`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from miroir.sim.clock import VirtualClock
from miroir.sim.cluster import SimSpec, open_sim_cluster
from miroir.sim.simulation import (
    GENRES,
    INDEX,
    SETTINGS_CHOICES,
    WORDS,
    Report,
    Simulation,
    make_document,
)
from miroir.sim.transport import FaultModel

FAULT_MODES = ("none", "crash", "latency", "partition", "chaos", "wipe")
DOCUMENT_IDS = 40
CHECKPOINT_EVERY = 100
SLOW = FaultModel(latency=(0.05, 0.3), spike_rate=0.1, spike=0.5)
FLAKY = FaultModel(latency=(0.001, 0.05), error_rate=0.05, stall_rate=0.02, drop_rate=0.02,
                   lost_reply_rate=0.02, task_delay=(0.0, 0.2), task_duration=(0.001, 0.05))
# The longest latency any preset can draw: what the model's settle time is derived from.
MAX_LATENCY_S = max(SLOW.latency[1] + SLOW.spike, FLAKY.latency[1] + FLAKY.spike)
# Client operations and their weights.
OPERATIONS = (("add", 30), ("update", 12), ("delete", 10), ("get", 23), ("search", 22),
              ("settings", 3))
# Per mode: (fault, probability of injecting it before a client operation).
FAULT_RATES: Mapping[str, tuple[tuple[str, float], ...]] = {
    "none": (),
    "crash": (("crash", 0.02), ("restart", 0.03)),
    "latency": (("slow", 0.03), ("unslow", 0.03)),
    "partition": (("partition", 0.02), ("heal", 0.03)),
    "wipe": (("crash", 0.02), ("restart wiped", 0.03)),
    "chaos": (("crash", 0.01), ("restart", 0.01), ("restart wiped", 0.005), ("slow", 0.01),
              ("unslow", 0.01), ("partition", 0.01), ("heal", 0.015), ("flaky", 0.01),
              ("unflaky", 0.01)),
}


@attrs.frozen
class RunArgs:
    seed: int = 0
    ops: int = 1000
    faults: str = "chaos"
    spec: SimSpec = SimSpec()

    def replay_command(self) -> str:
        s = self.spec
        return (f"miroir simulate --seed {self.seed} --ops {self.ops} --faults {self.faults} "
                f"--nodes {s.nodes} --groups {s.groups} --rf {s.rf} --shards {s.shards}")


@attrs.define
class RunResult:
    args: RunArgs
    report: Report
    virtual_s: float
    trace: list[str] | None

    @property
    def client_operations(self) -> int:
        return sum(n for kind, n in self.report.operations.items()
                   if kind not in ("advance", "checkpoint"))


def random_query(rng: random.Random) -> dict[str, Any]:
    query: dict[str, Any] = {"q": " ".join(rng.sample(WORDS, rng.randint(0, 2)))}
    if rng.random() < 0.25:
        query["filter"] = f"genre = {rng.choice(GENRES)}"
    if rng.random() < 0.25:
        query["facets"] = ["genre"]
    if rng.random() < 0.2:
        query["sort"] = [rng.choice(["year:asc", "year:desc"])]
    return query


def random_document(rng: random.Random) -> dict[str, Any]:
    return make_document(rng.randrange(DOCUMENT_IDS), rng.choices(WORDS, k=rng.randint(1, 4)),
                         rng.choice(GENRES), rng.randint(1990, 2020))


async def run_program(args: RunArgs, trace: list[str] | None) -> tuple[Report, float]:
    rng = random.Random(f"miroir-simulate:{args.seed}:{args.faults}:{args.spec}")
    async with open_sim_cluster(args.spec, seed=args.seed, trace=trace) as sim:
        simulation = Simulation(sim, max_latency_s=MAX_LATENCY_S)
        created = await sim.request("POST", "/indexes", {"uid": INDEX, "primaryKey": "id"})
        simulation.tasks.add(created.body["taskUid"])
        queries = [random_query(rng) for _ in range(8)] + [{"q": ""}]
        kinds = [kind for kind, _ in OPERATIONS]
        weights = [weight for _, weight in OPERATIONS]
        nodes = args.spec.node_ids()
        for step in range(args.ops):
            for fault, rate in FAULT_RATES[args.faults]:
                if rng.random() < rate:
                    _inject(simulation, fault, rng.choice(nodes))
            kind = rng.choices(kinds, weights)[0]
            await _client_operation(simulation, kind, rng)
            await simulation.advance(rng.uniform(0.0, 0.05))
            if (step + 1) % CHECKPOINT_EVERY == 0 or step + 1 == args.ops:
                await simulation.checkpoint(queries)
        return simulation.report, trio.current_time()


def _inject(simulation: Simulation, fault: str, node: str) -> None:
    """Inject `fault` on `node`; a restart or heal picks a node it applies to, if there is one
    (the lowest id, so the choice stays a function of the state)."""
    nodes = simulation.spec.nodes
    if fault.startswith("restart") and simulation.crashed:
        node = min(simulation.crashed)
    elif fault == "heal" and simulation.partitioned:
        node = min(simulation.partitioned)
    if fault == "crash" and len(simulation.down | {node}) < nodes:
        simulation.crash(node)
    elif fault == "restart":
        simulation.restart(node)
    elif fault == "restart wiped":
        simulation.restart(node, wipe=True)
    elif fault == "partition" and len(simulation.down | {node}) < nodes:
        simulation.partition(node)
    elif fault == "heal":
        simulation.heal(node)
    elif fault == "slow":
        simulation.set_faults("slow", node, SLOW)
    elif fault == "flaky":
        simulation.set_faults("flaky", node, FLAKY)
    elif fault in ("unslow", "unflaky"):
        simulation.set_faults(fault, node, simulation.sim.transport.default_faults)


async def _client_operation(simulation: Simulation, kind: str, rng: random.Random) -> None:
    if kind in ("add", "update"):
        await simulation.write(kind, [random_document(rng) for _ in range(rng.randint(1, 3))])
    elif kind == "delete":
        await simulation.delete(rng.sample(range(DOCUMENT_IDS), rng.randint(1, 2)))
    elif kind == "get":
        await simulation.get(rng.randrange(DOCUMENT_IDS))
    elif kind == "search":
        await simulation.search(random_query(rng))
    elif kind == "settings":
        await simulation.change_settings(rng.choice(SETTINGS_CHOICES))


def run(args: RunArgs, *, keep_trace: bool = False) -> RunResult:
    """One whole simulation under a fresh trio run on virtual time (`VirtualClock`)."""
    if args.faults not in FAULT_MODES:
        raise ValueError(f"--faults must be one of {', '.join(FAULT_MODES)}")
    trace: list[str] | None = [] if keep_trace else None
    report, virtual_s = trio.run(run_program, args, trace, clock=VirtualClock())
    return RunResult(args, report, virtual_s, trace)


def summary(result: RunResult) -> str:
    """The deterministic text `miroir simulate` prints (no wall-clock figures)."""
    report, args = result.report, result.args
    lines = [
        f"miroir simulate --seed {args.seed} --ops {args.ops} --faults {args.faults}",
        f"deployment: {args.spec.nodes} nodes, {args.spec.groups} group(s), RF={args.spec.rf}, "
        f"{args.spec.shards} shards",
        f"virtual time: {result.virtual_s:.3f} s",
        f"client operations: {result.client_operations}",
        _counter_line("operations", report.operations),
        _counter_line("answers", report.outcomes),
        _counter_line("faults injected", report.faults),
        f"invariant checks run: {sum(report.checks.values())}",
    ]
    lines += [f"  {name}: {count}" for name, count in sorted(report.checks.items())]
    lines.append(f"violations: {len(report.violations)}")
    lines += [f"  {v}" for v in report.violations[:20]]
    if len(report.violations) > 20:
        lines.append(f"  ... {len(report.violations) - 20} more")
    if report.violations:
        lines.append(f"replay: {args.replay_command()} --trace trace.txt")
    return "\n".join(lines) + "\n"


def _counter_line(title: str, counter: Mapping[str, int]) -> str:
    items = ", ".join(f"{name}={count}" for name, count in sorted(counter.items()))
    return f"{title}: {items or 'none'}"
