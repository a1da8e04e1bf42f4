"""The fixed CI sweep: a few seeds on every deployment preset under `--faults chaos`, through the
same command a person runs. Any invariant violation (or a run that does not finish) fails the
build, with each failing run's first violation and replay command in the message.

The seeds of issue #19 (docs/simulation.md, "Known failing seeds") are fixed and replayed by
tests/sim/test_issue19_seeds.py, with the exact shapes the issue gives. Cost: 15
runs of 300 operations with 2 processes, about 20 s of wall clock on the team's 2-core machine
when nothing else runs (see docs/simulation.md, "The CI sweep").
"""

from __future__ import annotations

from miroir.cli import main

CI_SEEDS = "1..5"
CI_OPS = 300


def test_ci_sweep_finds_no_violation(capsys):
    status = main(["simulate", "--seeds", CI_SEEDS, "--ops", str(CI_OPS), "--faults", "chaos",
                   "--deployment", "all", "--jobs", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert "runs: 15 of 15" in out, out
    assert status == 0, out
