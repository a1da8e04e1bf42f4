"""`miroir simulate`: run the deterministic cluster simulator once and print its summary.

Owns argument parsing and output only: the deterministic summary goes to stdout (the same
arguments print the same bytes), wall-clock figures to stderr, the event trace to `--trace FILE`.
Exit status 1 when an invariant was violated, with the replay command in the summary; 2 for bad
arguments. The simulation itself is `miroir.sim.workload`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from miroir.sim.workload import FAULT_MODES

    parser = subparsers.add_parser(
        "simulate",
        help="run a seeded cluster simulation with injected faults and check its invariants",
    )
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (default 0)")
    parser.add_argument("--ops", type=int, default=1000, help="client operations (default 1000)")
    parser.add_argument("--faults", choices=FAULT_MODES, default="chaos",
                        help="which faults to inject (default chaos: every kind)")
    parser.add_argument("--nodes", type=int, default=3, help="nodes (default 3)")
    parser.add_argument("--groups", type=int, default=1, help="replica groups (default 1)")
    parser.add_argument("--rf", type=int, default=2, help="replication factor (default 2)")
    parser.add_argument("--shards", type=int, default=8, help="shards (default 8)")
    parser.add_argument("--trace", type=Path, help="write the event trace to this file")
    parser.add_argument("--baseline", action="store_true",
                        help="also time GET /health through the same app (stderr): the floor "
                             "any simulated operation costs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from miroir.config import ConfigError
    from miroir.sim.cluster import SimSpec
    from miroir.sim.workload import RunArgs, summary
    from miroir.sim.workload import run as run_simulation

    if args.ops < 1 or args.nodes < 1 or args.groups < 1 or args.rf < 1 or args.shards < 1:
        print("miroir simulate: --ops, --nodes, --groups, --rf and --shards must be >= 1",
              file=sys.stderr)
        return 2
    spec = SimSpec(nodes=args.nodes, groups=args.groups, rf=args.rf, shards=args.shards)
    try:
        spec.config()
    except ConfigError as error:
        print(f"miroir simulate: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    result = run_simulation(RunArgs(args.seed, args.ops, args.faults, spec),
                            keep_trace=args.trace is not None)
    elapsed = time.perf_counter() - started
    sys.stdout.write(summary(result))
    if args.trace is not None:
        args.trace.write_text("\n".join(result.trace or ()) + "\n")
    rate = result.client_operations / elapsed
    print(f"wall clock: {elapsed:.2f} s, {rate:.0f} simulated client operations per second",
          file=sys.stderr)
    if args.baseline:
        floor = baseline_requests_per_second(spec)
        print(f"baseline: {floor:.0f} GET /health per second through the same app; "
              f"ratio={rate / floor:.2f}", file=sys.stderr)
    return 1 if result.report.violations else 0


def baseline_requests_per_second(spec, requests: int = 1000) -> float:
    """Requests per second of the cheapest route (no node call) through a simulated app."""
    import trio
    import trio.testing

    from miroir.sim.cluster import open_sim_cluster

    async def measure() -> float:
        async with open_sim_cluster(spec, seed=0) as sim:
            started = time.perf_counter()
            for _ in range(requests):
                await sim.request("GET", "/health")
            return requests / (time.perf_counter() - started)

    return trio.run(measure, clock=trio.testing.MockClock(autojump_threshold=0))
