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
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
import trio

from miroir.sim.clock import AutojumpClock
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

DOCUMENT_IDS = 40
CHECKPOINT_EVERY = 100
SLOW = FaultModel(latency=(0.05, 0.3), spike_rate=0.1, spike=0.5)
FLAKY = FaultModel(latency=(0.001, 0.05), error_rate=0.05, stall_rate=0.02, drop_rate=0.02,
                   lost_reply_rate=0.02, task_delay=(0.0, 0.2), task_duration=(0.001, 0.05))
# The longest latency any preset can draw: what the model's settle time is derived from.
MAX_LATENCY_S = max(SLOW.latency[1] + SLOW.spike, FLAKY.latency[1] + FLAKY.spike)


@attrs.frozen
class RunArgs:
    seed: int = 0
    ops: int = 1000
    faults: str = "chaos"
    spec: SimSpec = SimSpec()

    def replay_command(self) -> str:
        s = self.spec
        command = (f"miroir simulate --seed {self.seed} --ops {self.ops} --faults {self.faults} "
                   f"--nodes {s.nodes} --groups {s.groups} --rf {s.rf} --shards {s.shards}")
        if s.index_shards is not None:
            command += f" --index-shards {s.index_shards}"
        return command


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
        simulation.fault_rng = random.Random(f"miroir-simulate-faults:{args.seed}:{args.spec}")
        created = await sim.request("POST", "/indexes", {"uid": INDEX, "primaryKey": "id"})
        simulation.tasks.add(created.body["taskUid"])
        queries = [random_query(rng) for _ in range(8)] + [{"q": ""}]
        kinds = list(CLIENT_OPERATIONS)
        weights = [weight for weight, _ in CLIENT_OPERATIONS.values()]
        nodes = args.spec.node_ids()
        for step in range(args.ops):
            for fault, rate in FAULT_RATES[args.faults]:
                if rng.random() < rate:
                    FAULTS[fault](simulation, fault, rng.choice(nodes))
            kind = rng.choices(kinds, weights)[0]
            await CLIENT_OPERATIONS[kind][1](simulation, kind, rng)
            await simulation.advance(rng.uniform(0.0, 0.05))
            if (step + 1) % CHECKPOINT_EVERY == 0 or step + 1 == args.ops:
                await simulation.checkpoint(queries)
        return simulation.report, trio.current_time()


# ----------------------------------------------------------------- the program's tables
#
# A client operation or a fault is a name in a table with what it does. To add one (say a node
# joining, once the rebalancer exists): write its function here over `Simulation`'s vocabulary,
# add it to CLIENT_OPERATIONS with a weight or to FAULTS, and give it a rate in the fault modes
# that should inject it (or a new mode in FAULT_RATES; `miroir simulate --faults` and sweep
# matrix files accept every key). A new mode leaves the other modes' programs as they were; a
# new operation, or a new rate in an existing mode, changes what every seed of that mode draws
# (so failing seeds recorded before the change replay on the older tables only).


async def _write(simulation: Simulation, kind: str, rng: random.Random) -> None:
    await simulation.write(kind, [random_document(rng) for _ in range(rng.randint(1, 3))])


async def _delete(simulation: Simulation, kind: str, rng: random.Random) -> None:
    await simulation.delete(rng.sample(range(DOCUMENT_IDS), rng.randint(1, 2)))


async def _get(simulation: Simulation, kind: str, rng: random.Random) -> None:
    await simulation.get(rng.randrange(DOCUMENT_IDS))


async def _search(simulation: Simulation, kind: str, rng: random.Random) -> None:
    await simulation.search(random_query(rng))


async def _settings(simulation: Simulation, kind: str, rng: random.Random) -> None:
    await simulation.change_settings(rng.choice(SETTINGS_CHOICES))


ClientOperation = Callable[[Simulation, str, random.Random], Awaitable[None]]
# name -> (weight, what it does); one is drawn by weight before each step.
CLIENT_OPERATIONS: Mapping[str, tuple[int, ClientOperation]] = {
    "add": (30, _write),
    "update": (12, _write),
    "delete": (10, _delete),
    "get": (23, _get),
    "search": (22, _search),
    "settings": (3, _settings),
}


def _crash(simulation: Simulation, fault: str, node: str) -> None:
    if len(simulation.down | {node}) < simulation.spec.nodes:  # one node always stays up
        simulation.crash(node)


def _restart(simulation: Simulation, fault: str, node: str) -> None:
    if simulation.crashed:  # the lowest crashed id, so the choice stays a function of the state
        node = min(simulation.crashed)
    simulation.restart(node, wipe=fault == "restart wiped")


def _partition(simulation: Simulation, fault: str, node: str) -> None:
    if len(simulation.down | {node}) < simulation.spec.nodes:
        simulation.partition(node)


def _heal(simulation: Simulation, fault: str, node: str) -> None:
    if simulation.partitioned:
        node = min(simulation.partitioned)
    simulation.heal(node)


def _tamper_document(simulation: Simulation, fault: str, node: str) -> None:
    simulation.tamper_document(node, simulation.fault_rng.choice)


def _tamper_settings(simulation: Simulation, fault: str, node: str) -> None:
    simulation.tamper_settings(node, simulation.fault_rng.choice(SETTINGS_CHOICES))


def _misbehave(model: FaultModel) -> Callable[[Simulation, str, str], None]:
    def inject(simulation: Simulation, fault: str, node: str) -> None:
        simulation.set_faults(fault, node, model)
    return inject


def _behave(simulation: Simulation, fault: str, node: str) -> None:
    simulation.set_faults(fault, node, simulation.sim.transport.default_faults)


# name -> what it does to the drawn node (a restart or heal picks a node it applies to).
FAULTS: Mapping[str, Callable[[Simulation, str, str], None]] = {
    "crash": _crash,
    "restart": _restart,
    "restart wiped": _restart,
    "partition": _partition,
    "heal": _heal,
    "slow": _misbehave(SLOW),
    "unslow": _behave,
    "flaky": _misbehave(FLAKY),
    "unflaky": _behave,
    "tamper document": _tamper_document,
    "tamper settings": _tamper_settings,
}

# Per mode: (fault, probability of injecting it before each client operation).
FAULT_RATES: Mapping[str, tuple[tuple[str, float], ...]] = {
    "none": (),
    "crash": (("crash", 0.02), ("restart", 0.03)),
    "latency": (("slow", 0.03), ("unslow", 0.03)),
    "partition": (("partition", 0.02), ("heal", 0.03)),
    "wipe": (("crash", 0.02), ("restart wiped", 0.03)),
    "chaos": (("crash", 0.01), ("restart", 0.01), ("restart wiped", 0.005), ("slow", 0.01),
              ("unslow", 0.01), ("partition", 0.01), ("heal", 0.015), ("flaky", 0.01),
              ("unflaky", 0.01), ("tamper document", 0.01), ("tamper settings", 0.005)),
    # Changes made on one node behind Miroir's back, nothing else: the reconciler's own mode.
    "tamper": (("tamper document", 0.03), ("tamper settings", 0.01)),
}
FAULT_MODES = tuple(FAULT_RATES)


def run(args: RunArgs, *, keep_trace: bool = False) -> RunResult:
    """One whole simulation under a fresh trio run on virtual time (`AutojumpClock`)."""
    if args.faults not in FAULT_MODES:
        raise ValueError(f"--faults must be one of {', '.join(FAULT_MODES)}")
    trace: list[str] | None = [] if keep_trace else None
    report, virtual_s = trio.run(run_program, args, trace, clock=AutojumpClock())
    return RunResult(args, report, virtual_s, trace)


def summary(result: RunResult) -> str:
    """The deterministic text `miroir simulate` prints (no wall-clock figures)."""
    report, args = result.report, result.args
    lines = [
        f"miroir simulate --seed {args.seed} --ops {args.ops} --faults {args.faults}",
        f"deployment: {args.spec.nodes} nodes, {args.spec.groups} group(s), RF={args.spec.rf}, "
        f"{args.spec.shards} shards" + (f", the index {args.spec.index_shards} of its own"
                                          if args.spec.index_shards is not None else ""),
        f"virtual time: {result.virtual_s:.3f} s",
        f"client operations: {result.client_operations}",
        _counter_line("operations", report.operations),
        _counter_line("answers", report.outcomes),
        _counter_line("faults injected", report.faults),
        _counter_line("node-write retries", report.retries),
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
