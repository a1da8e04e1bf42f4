"""The simulator's own waits: on AutojumpClock's timers (`miroir.sim.clock.wait_until`) against
the cancel-scope wait it replaced, in one process.

Two measurements, one command:

- **One wait.** A virtual 1 ms wait, `trio.sleep` against `wait_until`, and one simulated node
  call (`SimTransport.request` of `GET /health`), CPU microseconds each after a warm-up.
- **Whole runs (the `ratio=` line).** The same `miroir simulate` run (`--faults chaos`, one
  seed, so the same program: the summaries must be identical, and the command fails if not),
  alternately with the timer waits (A) and with `wait_until`'s fallback forced, the cancel
  scope around an `Event.wait` that the simulator used before (B). CPU seconds per client
  operation; the ratio is B's median over A's median (above 1: the timers are cheaper).

    .venv/bin/python benchmarks/bench_sim_waits.py [--rounds 8] [--ops 600] [--deployment 3n-rf2]

In-process alternation is what makes the comparison hold on a loaded machine, where the same
run's CPU time differs by tens of percent between processes.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time

import trio

from miroir.sim import clock
from miroir.sim.matrix import DEPLOYMENTS
from miroir.sim.transport import SimTransport
from miroir.sim.workload import RunArgs, run, summary

ITERATIONS = 5000


def one_wait_costs() -> dict[str, float]:
    """CPU µs per wait and per simulated node call under AutojumpClock."""

    async def main() -> dict[str, float]:
        transport = SimTransport(1)
        transport.add_node("n0")
        cases = {
            "trio.sleep(0.001)": lambda: trio.sleep(0.001),
            "wait_until(now + 0.001)": lambda: clock.wait_until(trio.current_time() + 0.001),
            "SimTransport.request GET /health": lambda: transport.request(
                "n0", "GET", "/health", deadline=trio.current_time() + 1),
        }
        costs = {}
        for name, wait in cases.items():
            for _ in range(200):
                await wait()
            started = time.process_time()
            for _ in range(ITERATIONS):
                await wait()
            costs[name] = (time.process_time() - started) / ITERATIONS * 1e6
        return costs

    return trio.run(main, clock=clock.AutojumpClock())


class _NotTheClock:
    """Stands in for AutojumpClock in `wait_until`'s isinstance check: forces its fallback."""


def whole_runs(spec_name: str, ops: int, rounds: int) -> tuple[list[float], list[float]]:
    spec = DEPLOYMENTS[spec_name]
    real = clock.AutojumpClock
    timers: list[float] = []
    scopes: list[float] = []
    summaries = set()
    run(RunArgs(1, 50, "chaos", spec))  # warm-up
    for round_ in range(rounds):
        order = [(real, timers), (_NotTheClock, scopes)]
        for stand_in, into in order if round_ % 2 == 0 else reversed(order):
            clock.AutojumpClock = stand_in  # the run's clock object stays a real AutojumpClock
            try:
                started = time.process_time()
                result = run(RunArgs(1, ops, "chaos", spec))
                into.append((time.process_time() - started) / result.client_operations)
            finally:
                clock.AutojumpClock = real
            summaries.add(summary(result))
    if len(summaries) != 1:
        sys.exit("the two ways of waiting gave different summaries: not the same program")
    return timers, scopes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--ops", type=int, default=600)
    parser.add_argument("--deployment", default="3n-rf2", choices=list(DEPLOYMENTS))
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)
    for name, cost in one_wait_costs().items():
        print(f"{name}: {cost:.1f} µs CPU")
    timers, scopes = whole_runs(args.deployment, args.ops, args.rounds)
    for name, values in (("A timers", timers), ("B cancel scopes", scopes)):
        print(f"{args.deployment} seed 1, {args.ops} ops, {name}: min {min(values) * 1e3:.3f}, "
              f"median {statistics.median(values) * 1e3:.3f} ms CPU per client operation "
              f"({len(values)} runs)")
    print(f"ratio={statistics.median(scopes) / statistics.median(timers):.3f}")


if __name__ == "__main__":
    main()
