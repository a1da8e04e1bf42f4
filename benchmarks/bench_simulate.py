"""Simulator speed: operations per second against the app's own floor, and a sweep's wall time.

Two measurements, one command:

- **Per operation (the `ratio=` line).** In this process, in interleaved rounds: the *floor*,
  `GET /health` sent through the simulated app by the same ASGI call the simulator uses (no
  node call: the cheapest thing a simulated operation can cost), then one `miroir simulate` run
  per deployment preset (`--faults chaos`, a different seed each round), then the floor again.
  Both are timed in CPU seconds of this process, which the other work on a shared machine
  disturbs less than wall time (wall-clock rates are printed beside). The ratio is simulated client operations per
  CPU second over floor requests per CPU second, the median over rounds, for the first preset
  (3n-rf2, the CLI's default shape). Bar: >= 0.2.
- **A sweep.** `miroir simulate --seeds 1..N --ops M --faults chaos --jobs J` in a child
  process, timed by the wall clock, printed beside the floor measured above and beside what
  the same runs would take one after another at the per-operation rate measured above. Bar:
  1,000 seeds x 1,000 operations with 2 jobs within 15 minutes. With `--sweep-seeds` below
  1,000 the wall time is also scaled to 1,000 seeds.

    .venv/bin/python benchmarks/bench_simulate.py [--rounds 3] [--ops 1000]
        [--sweep-seeds 1000] [--sweep-ops 1000] [--jobs 2]

`--sweep-seeds 0` skips the sweep. The last line is `ratio=<ops/s / floor requests/s>`.
"""

from __future__ import annotations

import argparse
import logging
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import trio

from miroir.sim.clock import AutojumpClock
from miroir.sim.cluster import SimSpec, open_sim_cluster
from miroir.sim.matrix import DEPLOYMENTS
from miroir.sim.workload import RunArgs
from miroir.sim.workload import run as run_simulation

FLOOR_REQUESTS = 3000
SWEEP_BAR_S = 15 * 60
SWEEP_BAR_SEEDS = 1000


def floor_seconds_per_request(spec: SimSpec) -> tuple[float, float]:
    """(CPU, wall) seconds per GET /health through a simulated app, after startup."""

    async def measure() -> tuple[float, float]:
        async with open_sim_cluster(spec, seed=0) as sim:
            for _ in range(100):  # warm up
                await sim.request("GET", "/health")
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(FLOOR_REQUESTS):
                await sim.request("GET", "/health")
            return ((time.process_time() - cpu) / FLOOR_REQUESTS,
                    (time.perf_counter() - wall) / FLOOR_REQUESTS)

    return trio.run(measure, clock=AutojumpClock())


def simulation_seconds_per_operation(args: RunArgs) -> tuple[float, float, int]:
    """(CPU, wall) seconds per simulated client operation, and the violations, for one run
    (app startup and checkpoints included, as `miroir simulate` pays them)."""
    cpu, wall = time.process_time(), time.perf_counter()
    result = run_simulation(args)
    operations = result.client_operations
    return ((time.process_time() - cpu) / operations, (time.perf_counter() - wall) / operations,
            len(result.report.violations))


def per_operation(rounds: int, ops: int) -> tuple[float, float]:
    """(median ratio, median CPU seconds per operation) for the first preset."""
    ratios: dict[str, list[float]] = {name: [] for name in DEPLOYMENTS}
    per_op: dict[str, list[float]] = {name: [] for name in DEPLOYMENTS}
    floors: list[float] = []
    for round_ in range(rounds):
        for name, spec in DEPLOYMENTS.items():
            # The floor is measured just before and just after the run, and averaged, so a
            # change in the machine's load during the run hits both sides alike.
            before = floor_seconds_per_request(spec)
            seed = 1 + round_
            cpu, wall, violations = simulation_seconds_per_operation(
                RunArgs(seed, ops, "chaos", spec))
            after = floor_seconds_per_request(spec)
            floor_cpu, floor_wall = ((before[0] + after[0]) / 2, (before[1] + after[1]) / 2)
            ratios[name].append(floor_cpu / cpu)
            per_op[name].append(cpu)
            floors.append(floor_cpu)
            print(f"round {round_ + 1} {name} seed {seed}: floor {1 / floor_cpu:,.0f} req/CPU s "
                  f"({1 / floor_wall:,.0f}/s wall), simulation {1 / cpu:,.0f} ops/CPU s "
                  f"({1 / wall:,.0f}/s wall), ratio {floor_cpu / cpu:.3f}, "
                  f"{violations} violation(s)", flush=True)
    for name in DEPLOYMENTS:
        print(f"{name}: median {1 / statistics.median(per_op[name]):,.0f} ops/CPU s, "
              f"{statistics.median(per_op[name]) * 1e3:.2f} ms each = "
              f"{statistics.median(per_op[name]) / statistics.median(floors):.1f} floors; "
              f"ratio {statistics.median(ratios[name]):.3f} (rounds "
              f"{', '.join(f'{r:.3f}' for r in ratios[name])})")
    print(f"floor: median {statistics.median(floors) * 1e6:.0f} µs CPU per GET /health")
    first = next(iter(DEPLOYMENTS))
    return statistics.median(ratios[first]), statistics.median(per_op[first])


def sweep(seeds: int, ops: int, jobs: int, seconds_per_op: float) -> None:
    command = [str(Path(sys.executable).parent / "miroir"), "simulate", "--seeds", f"1..{seeds}",
               "--ops", str(ops), "--faults", "chaos", "--jobs", str(jobs), "--no-progress"]
    print(f"sweep: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - started
    summary = done.stdout.strip().splitlines()
    failing = [line for line in summary if line.startswith("FAIL")]
    operations = int(re.search(r"client operations: (\d+)", done.stdout).group(1))
    serial = operations * seconds_per_op
    print(f"sweep: {wall:,.0f} s wall, {operations / wall:,.0f} client ops/s overall; the same "
          f"runs one after another at this run's per-operation CPU cost: {serial:,.0f} s "
          f"(speedup {serial / wall:.2f} with {jobs} jobs); {len(failing)} failing run(s)")
    for line in failing:
        print(f"  {line[:200]}")
    scaled = wall * SWEEP_BAR_SEEDS / seeds
    verdict = "met" if scaled <= SWEEP_BAR_S else "missed"
    print(f"sweep: {scaled:,.0f} s for {SWEEP_BAR_SEEDS} seeds x {ops} ops "
          f"({'measured' if seeds == SWEEP_BAR_SEEDS else 'scaled from ' + str(seeds)}); "
          f"bar {SWEEP_BAR_S} s: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--sweep-seeds", type=int, default=SWEEP_BAR_SEEDS)
    parser.add_argument("--sweep-ops", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # the app's warnings under faults, as in a sweep
    ratio, seconds_per_op = per_operation(args.rounds, args.ops)
    if args.sweep_seeds > 0:
        sweep(args.sweep_seeds, args.sweep_ops, args.jobs, seconds_per_op)
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
