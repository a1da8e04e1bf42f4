"""The simulated cluster's state machine with membership rules: add a node, drain one, remove one
(forget a drained one, or force an active one out), add a replica group, racing every client
operation and fault of `tests/properties/test_sim_cluster.py`, with the migration engine running
in the simulated proxy (`miroir.sim.membership`).

Invariants: the simulator's (I1-I12; I8 is "no acknowledged write lost, no deleted document
back", I9 "merged search equals the reference"), checked at every checkpoint after the rebalance
finished, and R1-R3 (finishes once faults heal, copies the plan's minimum, old copies gone).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule

from miroir.sim.cluster import SimSpec
from miroir.sim.membership import Membership
from tests.properties.test_sim_cluster import (
    SimulatedCluster,
)

# Small enough that a copy finishes in a few virtual seconds.
SHAPES = (SimSpec(nodes=3, groups=1, rf=2, shards=4), SimSpec(nodes=4, groups=2, rf=1, shards=4))


class RebalancingCluster(SimulatedCluster):
    membership: Membership | None = None

    @initialize(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16))
    def start(self, shape: SimSpec, seed: int) -> None:
        super().start(shape, seed)
        self.membership = Membership(self.simulation)
        self.runner.call(_start_soon, self.runner.nursery, self.membership.run_engine)

    def nodes(self) -> list[str]:
        return self.membership.fault_targets()

    # ------------------------------------------------------------------ membership rules

    @rule(group=st.integers(0, 3))
    def add_node(self, group):
        self.runner.call(self.membership.add_node, group)

    @rule(index=st.integers(0, 7))
    def drain_node(self, index):
        self.runner.call(self.membership.drain, self.node(index))

    @rule()
    def forget_drained_node(self):
        self.runner.call(self.membership.forget)

    @rule(index=st.integers(0, 7))
    def force_remove_node(self, index):
        self.runner.call(self.membership.force_remove, self.node(index))

    @rule(size=st.integers(1, 2))
    def add_group(self, size):
        self.runner.call(self.membership.add_group, size)

    # ------------------------------------------------------- checkpoints settle rebalances

    @rule()
    def checkpoint(self):
        self.runner.call(self.membership.settle)
        super().checkpoint()

    def teardown(self):
        if self.membership is not None:
            self.runner.call(self.membership.settle)
        super().teardown()


async def _start_soon(nursery, fn):
    nursery.start_soon(fn)


# An example moves shards several times over up to 20 steps; shrinking one costs minutes, so
# the default run reports a failing program as found (MIROIR_SIM_SHRINK=1 shrinks it).
_EXAMPLES = int(os.environ.get("MIROIR_SIM_EXAMPLES", "0")) or (
    200 if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else 8)
_PHASES = [Phase.explicit, Phase.reuse, Phase.generate] + (
    [Phase.shrink] if os.environ.get("MIROIR_SIM_SHRINK") else [])
RebalancingCluster.TestCase.settings = settings(
    max_examples=_EXAMPLES,
    stateful_step_count=20,
    deadline=None,
    phases=_PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRebalancingCluster = pytest.mark.filterwarnings("ignore")(RebalancingCluster.TestCase)


def run_program(shape, seed, steps):
    """Replay a program of (rule, kwargs) on a fresh machine, then its teardown checkpoint."""
    state = RebalancingCluster()
    try:
        state.start(shape=shape, seed=seed)
        report = state.simulation.report
        for name, kwargs in steps:
            getattr(state, name)(**kwargs)
            state.no_invariant_was_violated()
    finally:
        state.teardown()
    return report


@pytest.mark.parametrize("shape", SHAPES, ids=["rf2", "two-groups"])
def test_every_membership_change_racing_writes_and_a_crash(shape):
    """A fixed program through every rule: each change while writes, deletes and a crash race
    it, a checkpoint after each."""
    writes = [("write", {"doc_ids": [d, d + 1], "words": ["red"], "genre": "drama",
                         "replace": True}) for d in range(0, 8, 2)]
    steps = [
        *writes,
        ("add_node", {"group": 0}),
        ("delete", {"doc_ids": [1]}),
        ("crash", {"index": 0}),
        ("advance", {"seconds": 0.5}),
        ("write", {"doc_ids": [1, 3], "words": ["sun"], "genre": "comedy", "replace": False}),
        ("restart", {"index": 0, "wipe": False}),
        ("checkpoint", {}),
        ("drain_node", {"index": 1}),
        ("write", {"doc_ids": [4, 9], "words": ["night"], "genre": "horror", "replace": True}),
        ("delete", {"doc_ids": [2]}),
        ("checkpoint", {}),
        ("forget_drained_node", {}),
        ("add_group", {"size": 2}),
        ("write", {"doc_ids": [5], "words": ["wolf"], "genre": "drama", "replace": True}),
        ("checkpoint", {}),
        ("force_remove_node", {"index": 0}),
        ("write", {"doc_ids": [6, 7], "words": ["stone"], "genre": "drama", "replace": True}),
        ("checkpoint", {}),
    ]
    report = run_program(shape, 7, steps)
    assert not report.violations
    for kind in ("add_node", "drain_node", "add_group", "force_remove"):
        assert report.operations[kind] == 1, (kind, report.outcomes)
    assert not [o for o in report.outcomes if "refused" in o], report.outcomes
    # every change was checked where it ended: finished, minimal, old copies gone
    assert report.checks["R1 a rebalance finishes done once faults heal"] == 4
    assert report.checks["R3 a node holds only the shards it owns"] > 0
    assert report.checks["I8 readable after heal"] > 0
    assert report.checks["I9 search equals reference"] > 0


def test_an_engine_that_forgets_the_old_copies_is_caught(monkeypatch):
    """The R invariants are not vacuous: an engine that skips its grace deletion is caught."""
    from miroir.cluster.rebalance import Rebalancer

    async def forgets(self):
        return None

    monkeypatch.setattr(Rebalancer, "_delete_old_copies", forgets)
    state = RebalancingCluster()
    try:
        state.start(shape=SHAPES[0], seed=1)
        state.write(doc_ids=list(range(8)), words=["red"], genre="drama", replace=True)
        state.add_node(group=0)
        state.checkpoint()
        assert any("R3 a node holds only the shards it owns" in v
                   for v in state.simulation.report.violations)
    finally:
        state.simulation.report.violations.clear()
        state.teardown()


def test_regression_a_drain_does_not_undo_a_settings_change_racing_it():
    """Found by the machine (seed 11219): draining n2 made n0 and n1 gain shards, and the
    engine "provisioned" them, existing members already serving the index, with the settings
    committed at that moment, overwriting a client's settings change that was being applied
    node by node; their recorded settings version stayed the new one, so searches read them
    and answered 400 for a facet the client had made filterable (I9). Members that already
    serve the index are no longer provisioned."""
    steps = [
        ("advance", {"seconds": 0.8231129643824826}),
        ("tamper_settings", {"index": 0, "patch": {"filterableAttributes": ["genre"]}}),
        ("delete", {"doc_ids": [9, 7]}),
        ("drain_node", {"index": 2}),
        ("tamper_settings", {"index": 3, "patch": {"filterableAttributes": ["genre", "year"],
                                                   "sortableAttributes": ["year"]}}),
        ("change_settings", {"patch": {"searchableAttributes": ["*"],
                                       "filterableAttributes": []}}),
        ("advance", {"seconds": 0.001}),
        ("change_settings", {"patch": {"filterableAttributes": ["genre"]}}),
        ("delete", {"doc_ids": [2]}),
        ("delete", {"doc_ids": [6, 5]}),
    ]
    report = run_program(SHAPES[0], 11219, steps)
    assert report.checks["I9 search equals reference"] > 0


def test_regression_a_group_smaller_than_rf_is_refused():
    """Found by the machine (seeds 899 and 4903, RF = 2): `POST /_miroir/groups` with one node
    made a group whose shards had one owner each, so no write to it could ever meet quorum
    (floor(RF/2)+1 = 2): every write came back degraded for that group with no fault (I3, I6).
    A group, and what a drain or a forced removal leaves of one, needs at least RF nodes."""
    steps = [
        ("add_group", {"size": 1}),
        ("write", {"doc_ids": [5], "words": ["night"], "genre": "drama", "replace": True}),
        ("delete", {"doc_ids": [5]}),
        ("checkpoint", {}),
    ]
    report = run_program(SHAPES[0], 4903, steps)
    assert report.outcomes["add_group refused miroir_invalid_group"] == 1


def test_regression_a_drained_node_is_forgotten_only_once_its_drain_settled():
    """Found by the machine (seed 1078, 4 nodes in 2 groups, RF 1, with the index on its own
    shard count and without): the drain finished in the background and `forget_drained_node`
    forgot the node before any checkpoint had settled the change, so the simulation still
    expected the node and asked the cluster for its state (TopologyError in the harness). A
    drained node becomes forgettable when its change settles."""
    steps = [
        ("drain_node", {"index": 0}),
        ("drain_node", {"index": 2}),
        ("advance", {"seconds": 0.548837338191018}),
        ("search", {"genre": None, "words": ["light"]}),
        ("heal", {"index": 2}),
        ("delete", {"doc_ids": [5]}),
        ("heal", {"index": 2}),
        ("forget_drained_node", {}),
        ("checkpoint", {}),
        ("forget_drained_node", {}),
    ]
    report = run_program(SHAPES[1], 1078, steps)
    assert not report.violations, report.violations
    assert report.checks["R1 a rebalance finishes done once faults heal"] == 1
