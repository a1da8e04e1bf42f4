"""Sweeps: seed ranges, presets and matrix files; every run in its own process with the same
result whatever the number of processes; failing runs printed in sweep order with their replay
command; exit status 1 on any violation or unfinished run."""

from __future__ import annotations

from pathlib import Path

import pytest

from miroir.cli import main
from miroir.cli.simulate import SweepReport, failure_line
from miroir.sim import sweep
from miroir.sim.cluster import SimSpec
from miroir.sim.matrix import (
    DEPLOYMENTS,
    Deployment,
    MatrixError,
    load_matrix,
    parse_seeds,
    preset_deployments,
    shape_name,
    sweep_runs,
)
from miroir.sim.sweep import RunOutcome, run_one, run_sweep
from miroir.sim.workload import FAULT_MODES, FAULT_RATES, FAULTS, RunArgs

# ------------------------------------------------------------------------ what a sweep runs


def test_seed_ranges_include_both_ends_and_keep_order():
    assert parse_seeds("3..6") == [3, 4, 5, 6]
    assert parse_seeds("7") == [7]
    assert parse_seeds("91, 1..3,2,1041") == [91, 1, 2, 3, 1041]


@pytest.mark.parametrize("bad", ["", "a..b", "5..2", "-1..3", "1...3", "1..", "x"])
def test_bad_seed_ranges_are_refused(bad):
    with pytest.raises(MatrixError, match="--seeds"):
        parse_seeds(bad)


def test_presets_are_the_issue_shapes_and_valid_configs():
    assert {(s.nodes, s.groups, s.rf) for s in DEPLOYMENTS.values()} == {
        (3, 1, 2), (5, 2, 2), (6, 3, 1)}
    assert DEPLOYMENTS["5n-2g-rf2-16s"].shards == 16
    for name, spec in DEPLOYMENTS.items():
        spec.config()
        assert shape_name(spec) == name


def test_preset_lists_and_all():
    assert [d.name for d in preset_deployments(["all"])] == list(DEPLOYMENTS)
    assert [d.name for d in preset_deployments(["6n-3g-rf1,3n-rf2", "3n-rf2"])] == [
        "6n-3g-rf1", "3n-rf2"]
    with pytest.raises(MatrixError, match="unknown preset 'huge'"):
        preset_deployments(["huge"])


def test_every_fault_a_mode_injects_is_implemented():
    for mode in FAULT_MODES:
        for fault, rate in FAULT_RATES[mode]:
            assert fault in FAULTS and 0 < rate < 1


def test_matrix_file_names_presets_shapes_and_fault_modes(tmp_path):
    path = tmp_path / "matrix.yaml"
    path.write_text("deployments:\n  - 3n-rf2\n  - {nodes: 4, groups: 2, rf: 1}\n"
                    "  - {name: wide, nodes: 8, groups: 2, rf: 2, shards: 32}\n"
                    "faults: [chaos, wipe]\n")
    deployments, faults = load_matrix(path)
    assert deployments == [
        Deployment("3n-rf2", DEPLOYMENTS["3n-rf2"]),
        Deployment("4n-2g-rf1", SimSpec(nodes=4, groups=2, rf=1)),
        Deployment("wide", SimSpec(nodes=8, groups=2, rf=2, shards=32)),
    ]
    assert faults == ["chaos", "wipe"]


@pytest.mark.parametrize("text, complaint", [
    ("deployments: []\n", "non-empty"),
    ("deployments: [3n-rf2]\nseeds: 4\n", "unknown keys"),
    ("deployments: [{nodes: 0}]\n", "positive integers"),
    ("deployments: [{nodes: 3, colour: red}]\n", "positive integers"),
    ("deployments: [nope]\n", "unknown preset"),
    ("deployments: [3n-rf2, 3n-rf2]\n", "repeat"),
    ("deployments: [3n-rf2]\nfaults: [storms]\n", "faults"),
    ("deployments: [3n-rf2\n", "matrix"),
])
def test_bad_matrix_files_are_refused(tmp_path, text, complaint):
    path = tmp_path / "matrix.yaml"
    path.write_text(text)
    with pytest.raises(MatrixError, match=complaint):
        load_matrix(path)


def test_runs_are_seed_major_over_every_pair():
    deployments = preset_deployments(["3n-rf2,6n-3g-rf1"])
    runs = sweep_runs([5, 6], deployments, ["chaos", "none"], ops=10)
    assert [(r.index, r.args.seed, r.deployment, r.args.faults) for r in runs] == [
        (0, 5, "3n-rf2", "chaos"), (1, 5, "3n-rf2", "none"),
        (2, 5, "6n-3g-rf1", "chaos"), (3, 5, "6n-3g-rf1", "none"),
        (4, 6, "3n-rf2", "chaos"), (5, 6, "3n-rf2", "none"),
        (6, 6, "6n-3g-rf1", "chaos"), (7, 6, "6n-3g-rf1", "none"),
    ]
    assert runs[2].args == RunArgs(5, 10, "chaos", DEPLOYMENTS["6n-3g-rf1"])


# ------------------------------------------------------------------------------ processes


def _sweep(runs, jobs, **options):
    outcomes: list[RunOutcome] = []
    run_sweep(runs, jobs=jobs, on_outcome=outcomes.append, **options)
    return outcomes


def test_each_run_gives_the_same_outcome_whatever_the_number_of_processes():
    runs = sweep_runs([1, 2, 3], preset_deployments(["3n-rf2,6n-3g-rf1"]), ["chaos"], ops=40)
    one = sorted(_sweep(runs, 1), key=lambda o: o.index)
    two = sorted(_sweep(runs, 2), key=lambda o: o.index)
    assert [o.index for o in one] == list(range(len(runs)))
    assert one == two
    assert all(o.error is None and o.client_operations >= 40 and o.checks > 0 for o in one)
    assert len({o.digest for o in one}) == len(runs)  # the digest tells runs apart
    # ... and a child computes what this process computes for the same run.
    assert run_one(runs[3]) == one[3]


def test_a_run_over_its_time_limit_is_killed_and_reported():
    runs = sweep_runs([1], preset_deployments(["3n-rf2"]), ["chaos"], ops=100_000)
    (outcome,) = _sweep(runs, 1, run_timeout_s=0.5)
    assert outcome.failed and "killed" in outcome.error


def test_a_run_that_raises_is_a_failed_run(monkeypatch):
    def broken(args):
        raise RuntimeError("simulator bug")

    monkeypatch.setattr(sweep.workload, "run", broken)
    (run,) = sweep_runs([4], preset_deployments(["3n-rf2"]), ["none"], ops=5)
    outcome = run_one(run)
    assert outcome.failed and outcome.error.startswith("RuntimeError: simulator bug")
    assert outcome.first_problem().startswith("run did not finish: RuntimeError")


# ------------------------------------------------------------------------------- the CLI


def _outcome(index, seed, violations=(), error=None, ops=10):
    args = RunArgs(seed, ops, "chaos", DEPLOYMENTS["5n-2g-rf2-16s"])
    return RunOutcome(index, "5n-2g-rf2-16s", args, client_operations=ops, checks=100,
                      violation_count=len(violations), violations=tuple(violations),
                      error=error)


def test_failing_runs_print_in_sweep_order_whatever_order_they_end(tmp_path):
    lines: list[str] = []

    class Out:
        def write(self, text):
            lines.append(text)

        def flush(self):
            pass

    report = SweepReport(4, Out(), None)
    report.add(_outcome(2, 12, ["t=1.0 I8 readable after heal: planted"]))
    report.add(_outcome(1, 11, error="the process died (exit code -9)"))
    assert lines == []  # run 0 has not ended: nothing after it may print yet
    report.add(_outcome(0, 10))
    report.add(_outcome(3, 13))
    assert [line.split(":")[0] for line in lines] == [
        "FAIL seed 11 5n-2g-rf2-16s chaos", "FAIL seed 12 5n-2g-rf2-16s chaos"]
    assert "run did not finish: the process died" in lines[0]
    assert ("1 violation(s), first: t=1.0 I8 readable after heal: planted | replay: miroir "
            "simulate --seed 12 --ops 10 --faults chaos --nodes 5 --groups 2 --rf 2 --shards 16"
            ) in lines[1]
    summary = report.summary("title", 2.0, 2)
    assert "runs: 4 of 4, failing: 2" in summary and "violations: 1" in summary
    assert "client operations: 40" in summary and "invariant checks: 400" in summary
    assert "20 client operations/s overall" in summary


def test_failure_lines_are_cut_to_a_readable_width():
    line = failure_line(_outcome(0, 1, ["x" * 5000]))
    assert len(line) < 700 and line.endswith("--trace trace.txt")


def test_sweep_command_exits_one_on_a_violation(monkeypatch, capsys, tmp_path):
    def planted(runs, *, jobs, on_outcome, run_timeout_s):
        for run in reversed(runs):
            violations = ["t=2.0 I2 planted"] if run.args.seed == 8 else []
            on_outcome(RunOutcome(run.index, run.deployment, run.args, client_operations=3,
                                  checks=5, violation_count=len(violations),
                                  violations=tuple(violations)))

    monkeypatch.setattr(sweep, "run_sweep", planted)
    results = tmp_path / "results.jsonl"
    status = main(["simulate", "--seeds", "7..9", "--ops", "3", "--deployment", "all",
                   "--jobs", "3", "--results", str(results)])
    out = capsys.readouterr().out
    assert status == 1
    failing = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert [line.split(":")[0] for line in failing] == [
        f"FAIL seed 8 {name} chaos" for name in DEPLOYMENTS]
    assert "runs: 9 of 9, failing: 3" in out and "violations: 3" in out
    assert len(results.read_text().splitlines()) == 9


def test_a_clean_sweep_exits_zero(capsys):
    status = main(["simulate", "--seeds", "1..2", "--ops", "15", "--faults", "none",
                   "--deployment", "6n-3g-rf1", "--jobs", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0 and "FAIL" not in out
    assert "runs: 2 of 2, failing: 0" in out and "violations: 0" in out


@pytest.mark.parametrize("argv, complaint", [
    (["--seeds", "1..2", "--nodes", "4", "--deployment", "3n-rf2"], "not both"),
    (["--seeds", "2..1"], "--seeds"),
    (["--deployment", "all"], "need --seeds"),
    (["--seeds", "1..2", "--trace", "t.txt"], "one run"),
    (["--seeds", "1..2", "--jobs", "0"], "--jobs"),
    (["--seeds", "1..2", "--deployment", "nope"], "unknown preset"),
    (["--nodes", "0"], ">= 1"),
])
def test_bad_sweep_arguments_exit_two(capsys, argv, complaint):
    assert main(["simulate", *argv]) == 2
    assert complaint in capsys.readouterr().err


def test_one_run_on_a_preset(capsys):
    assert main(["simulate", "--seed", "2", "--ops", "10", "--faults", "none",
                 "--deployment", "6n-3g-rf1"]) == 0
    assert "deployment: 6 nodes, 3 group(s), RF=1, 8 shards" in capsys.readouterr().out


def test_the_release_matrix_covers_every_preset_under_chaos():
    path = Path(__file__).parents[2] / "simulations" / "release-matrix.yaml"
    deployments, faults = load_matrix(path)
    assert [d.name for d in deployments] == list(DEPLOYMENTS) and faults == ["chaos"]


def test_the_forkservers_warm_up_leaves_no_trace_in_the_process():
    """`miroir.sim.warm` runs a simulation on import (in a sweep's forkserver, before any fork):
    afterwards logging and the trio internals a run touches are as they were."""
    import importlib
    import logging
    import sys

    from trio._core import _run

    before = (logging.root.manager.disable, _run._ALLOW_DETERMINISTIC_SCHEDULING,
              _run.Deadlines.add)
    sys.modules.pop("miroir.sim.warm", None)
    importlib.import_module("miroir.sim.warm")
    assert (logging.root.manager.disable, _run._ALLOW_DETERMINISTIC_SCHEDULING,
            _run.Deadlines.add) == before
