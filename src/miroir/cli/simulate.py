"""`miroir simulate`: run the deterministic cluster simulator once, or sweep many seeds.

Owns argument parsing and output only. The simulation is `miroir.sim.workload`, the sweep's
runs `miroir.sim.matrix`, its processes `miroir.sim.sweep`.

- One run (`--seed N`): the deterministic summary goes to stdout (the same arguments print the
  same bytes), wall-clock figures to stderr, the event trace to `--trace FILE`.
- A sweep (`--seeds A..B`): one line per failing run on stdout, in sweep order whatever
  `--jobs` is (its first violation and the replay command), then a summary with the totals and
  the wall time; a progress bar on stderr when stderr is a terminal.

Exit status 1 when an invariant was violated (or, in a sweep, a run did not finish); 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

DEFAULT_SHAPE = {"nodes": 3, "groups": 1, "rf": 2, "shards": 8}


def register(subparsers: argparse._SubParsersAction) -> None:
    from miroir.sim.matrix import DEPLOYMENTS
    from miroir.sim.sweep import DEFAULT_RUN_TIMEOUT_S
    from miroir.sim.workload import FAULT_MODES

    parser = subparsers.add_parser(
        "simulate",
        help="run seeded cluster simulations with injected faults and check their invariants",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--seed", type=int, default=0, help="one run's seed (default 0)")
    which.add_argument("--seeds", metavar="A..B",
                       help="sweep: every seed from A to B (both included), or a list such as "
                            "1..20,91; each run in its own process")
    parser.add_argument("--ops", type=int, default=1000,
                        help="client operations per run (default 1000)")
    parser.add_argument("--faults", choices=FAULT_MODES, default="chaos",
                        help="which faults to inject (default chaos: every kind)")
    shape = parser.add_argument_group(
        "deployment", f"a shape by hand (default {DEFAULT_SHAPE}), or presets: "
                      f"{', '.join(DEPLOYMENTS)}")
    shape.add_argument("--nodes", type=int, help="nodes")
    shape.add_argument("--groups", type=int, help="replica groups")
    shape.add_argument("--rf", type=int, help="replication factor")
    shape.add_argument("--shards", type=int, help="shards")
    shape.add_argument("--index-shards", type=int, metavar="S",
                       help="the simulated index's own shard count (the index layouts' "
                            "nodeShards, as a reshard leaves it); default: --shards")
    shape.add_argument("--deployment", action="append", metavar="NAME",
                       help="a preset, or `all`; repeat or separate by commas to sweep several")
    shape.add_argument("--matrix", type=Path, metavar="FILE",
                       help="sweep the deployments (and fault modes) a YAML file lists")
    parser.add_argument("--trace", type=Path, help="one run: write the event trace to this file")
    parser.add_argument("--baseline", action="store_true",
                        help="one run: also time GET /health through the same app (stderr): "
                             "the floor any simulated operation costs")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="sweep: runs at once (default: the number of cores)")
    parser.add_argument("--results", type=Path, metavar="FILE",
                        help="sweep: also write one JSON line per run to FILE")
    parser.add_argument("--run-timeout", type=float, default=DEFAULT_RUN_TIMEOUT_S,
                        metavar="SECONDS",
                        help="sweep: a run still going after this much wall clock is killed "
                             f"and reported (default {DEFAULT_RUN_TIMEOUT_S:.0f})")
    parser.add_argument("--no-progress", action="store_true",
                        help="sweep: no progress bar on stderr")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from miroir.sim.matrix import MatrixError

    try:
        deployments, faults = _deployments_and_faults(args)
    except MatrixError as error:
        print(f"miroir simulate: {error}", file=sys.stderr)
        return 2
    if args.seeds is None:
        if len(deployments) != 1 or len(faults) != 1:
            print("miroir simulate: several deployments or fault modes need --seeds",
                  file=sys.stderr)
            return 2
        return _run_once(args, deployments[0].spec, faults[0])
    if args.trace is not None or args.baseline:
        print("miroir simulate: --trace and --baseline are for one run (--seed)",
              file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("miroir simulate: --jobs must be >= 1", file=sys.stderr)
        return 2
    return _run_sweep(args, deployments, faults)


def _deployments_and_faults(args: argparse.Namespace) -> tuple[list[Any], list[str]]:
    import attrs

    from miroir.sim.cluster import SimSpec
    from miroir.sim.matrix import (
        Deployment,
        MatrixError,
        check_deployments,
        load_matrix,
        preset_deployments,
        shape_name,
    )

    if args.ops < 1:
        raise MatrixError("--ops must be >= 1")
    by_hand = {f: getattr(args, f) for f in DEFAULT_SHAPE if getattr(args, f) is not None}
    if by_hand and (args.deployment or args.matrix):
        raise MatrixError("give a shape by hand (--nodes ...) or --deployment/--matrix, "
                          "not both")
    if args.deployment and args.matrix:
        raise MatrixError("give --deployment or --matrix, not both")
    faults = [args.faults]
    if args.matrix is not None:
        deployments, matrix_faults = load_matrix(args.matrix)
        faults = matrix_faults or faults
    elif args.deployment:
        deployments = preset_deployments(args.deployment)
    else:
        if any(value < 1 for value in by_hand.values()):
            raise MatrixError("--nodes, --groups, --rf and --shards must be >= 1")
        spec = SimSpec(**{**DEFAULT_SHAPE, **by_hand})
        deployments = [Deployment(shape_name(spec), spec)]
    if args.index_shards is not None:
        if args.index_shards < 1:
            raise MatrixError("--index-shards must be >= 1")
        deployments = [Deployment(shape_name(spec), spec) for spec in (
            attrs.evolve(d.spec, index_shards=args.index_shards) for d in deployments)]
    check_deployments(deployments)
    return deployments, faults


# ------------------------------------------------------------------------------- one run


def _run_once(args: argparse.Namespace, spec: Any, faults: str) -> int:
    from miroir.sim.workload import RunArgs, summary
    from miroir.sim.workload import run as run_simulation

    started = time.perf_counter()
    result = run_simulation(RunArgs(args.seed, args.ops, faults, spec),
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


def baseline_requests_per_second(spec: Any, requests: int = 1000) -> float:
    """Requests per second of the cheapest route (no node call) through a simulated app, on
    the clock the simulation runs on."""
    import trio

    from miroir.sim.clock import AutojumpClock
    from miroir.sim.cluster import open_sim_cluster

    async def measure() -> float:
        async with open_sim_cluster(spec, seed=0) as sim:
            started = time.perf_counter()
            for _ in range(requests):
                await sim.request("GET", "/health")
            return requests / (time.perf_counter() - started)

    return trio.run(measure, clock=AutojumpClock())


# --------------------------------------------------------------------------------- sweeps


class SweepReport:
    """Collects outcomes as they arrive; prints failing runs in sweep order (a run's line waits
    until every run before it has ended) and the summary at the end."""

    def __init__(self, total: int, out: TextIO, results: TextIO | None) -> None:
        self.total = total
        self.out = out
        self.results = results
        self.arrived: dict[int, Any] = {}
        self.next_index = 0
        self.failing_runs = 0
        self.violations = 0
        self.client_operations = 0
        self.checks = 0

    def add(self, outcome: Any) -> None:
        self.arrived[outcome.index] = outcome
        self.client_operations += outcome.client_operations
        self.checks += outcome.checks
        self.violations += outcome.violation_count
        self.failing_runs += outcome.failed
        while self.next_index in self.arrived:
            ready = self.arrived.pop(self.next_index)
            self.next_index += 1
            if ready.failed:
                self.out.write(failure_line(ready) + "\n")
                self.out.flush()
            if self.results is not None:  # flushed: a long sweep's file is readable meanwhile
                self.results.write(json.dumps(ready.to_json()) + "\n")
                self.results.flush()

    def summary(self, title: str, wall_s: float, jobs: int) -> str:
        done = self.next_index
        rate = self.client_operations / wall_s if wall_s > 0 else 0.0
        lines = [
            title,
            f"runs: {done} of {self.total}, failing: {self.failing_runs}",
            f"client operations: {self.client_operations}",
            f"invariant checks: {self.checks}",
            f"violations: {self.violations}",
            f"wall time: {wall_s:.1f} s with {jobs} job(s), {rate:.0f} client operations/s "
            "overall",
        ]
        return "\n".join(lines) + "\n"


def failure_line(outcome: Any, width: int = 400) -> str:
    problem = outcome.first_problem()
    if len(problem) > width:
        problem = problem[:width] + " ..."
    count = "" if outcome.error else f"{outcome.violation_count} violation(s), first: "
    return (f"FAIL seed {outcome.args.seed} {outcome.deployment} {outcome.args.faults}: "
            f"{count}{problem} | replay: {outcome.args.replay_command()} --trace trace.txt")


def _run_sweep(args: argparse.Namespace, deployments: list[Any], faults: list[str]) -> int:
    from miroir.sim.matrix import MatrixError, parse_seeds, sweep_runs
    from miroir.sim.sweep import run_sweep

    try:
        seeds = parse_seeds(args.seeds)
    except MatrixError as error:
        print(f"miroir simulate: {error}", file=sys.stderr)
        return 2
    runs = sweep_runs(seeds, deployments, faults, args.ops)
    title = (f"miroir simulate --seeds {args.seeds} --ops {args.ops}: {len(seeds)} seed(s) x "
             f"{len(deployments)} deployment(s) ({', '.join(d.name for d in deployments)}) x "
             f"{len(faults)} fault mode(s) ({', '.join(faults)})")
    results = args.results.open("w") if args.results is not None else None
    report = SweepReport(len(runs), sys.stdout, results)
    started = time.perf_counter()
    interrupted = False
    # A scheduled job's time limit sends SIGTERM: stop like ^C (kill the runs, print the summary).
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        with _progress(len(runs), enabled=not args.no_progress) as advance:
            def on_outcome(outcome: Any) -> None:
                report.add(outcome)
                advance(report)

            run_sweep(runs, jobs=args.jobs, on_outcome=on_outcome,
                      run_timeout_s=args.run_timeout if args.run_timeout > 0 else None)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
        if results is not None:
            results.close()
    sys.stdout.write(report.summary(title, time.perf_counter() - started, args.jobs))
    if interrupted:
        print("miroir simulate: interrupted", file=sys.stderr)
        return 130
    return 1 if report.failing_runs else 0


def _raise_keyboard_interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


class _progress:
    """A rich progress bar on stderr (runs done, failing runs and violations so far, ETA), or
    nothing when disabled or stderr is not a terminal. While it shows, what the sweep prints to
    a terminal stdout goes above the bar instead of through it."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled and sys.stderr.isatty()
        self.progress: Any = None

    def __enter__(self) -> Any:
        if not self.enabled:
            return lambda _report: None
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("simulate"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
            TextColumn("[red]{task.fields[failing]}"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), redirect_stdout=sys.stdout.isatty(),
            redirect_stderr=False,
        )
        task = self.progress.add_task("sweep", total=self.total, failing="")
        self.progress.start()

        def advance(report: SweepReport) -> None:
            failing = (f"{report.failing_runs} failing, {report.violations} violations"
                       if report.failing_runs else "")
            self.progress.update(task, completed=report.next_index + len(report.arrived),
                                 failing=failing)

        return advance

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
