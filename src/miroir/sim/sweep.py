"""Sweeps: many seeded simulations, each in a fresh process, N at a time.

Owns running a list of `SweepRun`s (from `miroir.sim.matrix`) and collecting one `RunOutcome`
per run; the CLI (`miroir simulate --seeds`) owns the output. Must never share state between
two runs, or let the number of processes change what a run does.

Theory of operation
-------------------
A run is a function of its `RunArgs` alone (seeded workload, seeded scheduler, virtual time;
see `miroir.sim.cluster`), but only in a process that starts clean: trio's scheduler RNG and
deadline tie-break are process globals while a run is active, and a crash inside one run must
not take others down. So every run gets its own process, forked from a multiprocessing
*forkserver* that imported the simulator once (`set_forkserver_preload`) and ran one tiny
simulation (`miroir.sim.warm`): a child starts in milliseconds instead of re-importing Quart, the
app and the devnode (~1.4 s of CPU each on the team's machine) and compiling their routes, and
still owns a fresh copy of every global. At most `jobs` children run at
once; each sends back one small `RunOutcome` through a pipe and exits. A child that dies
without answering, raises, or outlives `run_timeout_s` (wall clock, killed) is a failed run
with an `error`, never a hang of the sweep.

Results arrive in completion order; `RunOutcome.index` is the run's place in the sweep, so a
caller can print in sweep order whatever `jobs` is. `digest` is a hash of the run's
deterministic summary text (`workload.summary`), so two sweeps can be compared run by run.

Children run with logging disabled: the app's warnings (a repair that could not finish yet,
...) are expected under faults and would bury the progress display; replaying one seed with
`miroir simulate --seed N` shows them.
"""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

import attrs

from miroir.sim import workload
from miroir.sim.matrix import SweepRun
from miroir.sim.workload import RunArgs

# Violations kept per run (the count is always exact); enough to group failures by cause.
KEPT_VIOLATIONS = 5
DEFAULT_RUN_TIMEOUT_S = 600.0


@attrs.frozen
class RunOutcome:
    index: int
    deployment: str
    args: RunArgs
    client_operations: int = 0
    checks: int = 0
    violation_count: int = 0
    violations: tuple[str, ...] = ()
    virtual_s: float = 0.0
    digest: str = ""
    error: str | None = None  # the run did not finish: an exception, a dead child, a timeout

    @property
    def failed(self) -> bool:
        return self.violation_count > 0 or self.error is not None

    def first_problem(self) -> str:
        if self.error is not None:
            return f"run did not finish: {self.error}"
        return self.violations[0] if self.violations else ""

    def to_json(self) -> dict[str, Any]:
        spec = self.args.spec
        return {
            "seed": self.args.seed, "deployment": self.deployment, "faults": self.args.faults,
            "ops": self.args.ops, "nodes": spec.nodes, "groups": spec.groups, "rf": spec.rf,
            "shards": spec.shards, "index_shards": spec.index_shards,
            "client_operations": self.client_operations,
            "checks": self.checks, "violation_count": self.violation_count,
            "violations": list(self.violations), "virtual_s": round(self.virtual_s, 6),
            "digest": self.digest, "error": self.error,
            "replay": self.args.replay_command(),
        }


def run_one(run: SweepRun) -> RunOutcome:
    """One run in this process (what each child does)."""
    try:
        result = workload.run(run.args)
    except Exception as error:  # noqa: BLE001 - a simulator crash is a finding, reported
        where = traceback.extract_tb(error.__traceback__)[-1]
        return RunOutcome(run.index, run.deployment, run.args,
                          error=f"{type(error).__name__}: {error} ({where.filename}:"
                                f"{where.lineno})")
    report = result.report
    return RunOutcome(
        run.index, run.deployment, run.args,
        client_operations=result.client_operations,
        checks=sum(report.checks.values()),
        violation_count=len(report.violations),
        violations=tuple(report.violations[:KEPT_VIOLATIONS]),
        virtual_s=result.virtual_s,
        digest=hashlib.sha1(workload.summary(result).encode()).hexdigest()[:16],
    )


def _child(run: SweepRun, sender: Connection) -> None:
    logging.disable(logging.CRITICAL)
    sender.send(run_one(run))
    sender.close()


def run_sweep(
    runs: Sequence[SweepRun],
    *,
    jobs: int,
    on_outcome: Callable[[RunOutcome], None],
    run_timeout_s: float | None = DEFAULT_RUN_TIMEOUT_S,
) -> None:
    """Run every run in its own process, `jobs` at a time; `on_outcome` is called in this
    process as each one ends (completion order). Children still running when this returns
    early (an exception, ^C) are killed."""
    if jobs < 1:
        raise ValueError("jobs must be >= 1")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "miroir.sim.warm"])
    waiting = list(reversed(runs))
    running: dict[Connection, tuple[SweepRun, Any, float]] = {}
    try:
        while waiting or running:
            while waiting and len(running) < jobs:
                run = waiting.pop()
                receiver, sender = context.Pipe(duplex=False)
                process = context.Process(target=_child, args=(run, sender), daemon=True,
                                          name=f"miroir-simulate-{run.args.seed}")
                process.start()
                sender.close()  # the child holds the only writer: its exit is our EOF
                running[receiver] = (run, process, time.monotonic())
            for receiver in wait(list(running), timeout=1.0):
                run, process, _ = running.pop(receiver)
                try:
                    outcome = receiver.recv()
                except EOFError:
                    process.join()
                    outcome = RunOutcome(run.index, run.deployment, run.args,
                                         error=f"the process died (exit code "
                                               f"{process.exitcode})")
                receiver.close()
                process.join()
                on_outcome(outcome)
            if run_timeout_s is not None:
                now = time.monotonic()
                for receiver, (run, process, started) in list(running.items()):
                    if now - started > run_timeout_s:
                        process.kill()
                        process.join()
                        receiver.close()
                        del running[receiver]
                        on_outcome(RunOutcome(
                            run.index, run.deployment, run.args,
                            error=f"still running after {run_timeout_s:.0f} s of wall "
                                  "clock (killed)"))
    finally:
        for receiver, (_, process, _) in running.items():
            process.kill()
            process.join()
            receiver.close()
