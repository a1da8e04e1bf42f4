"""The simulated cluster with its index on a shard count of its own (`SimSpec.index_shards`:
the index layouts' `nodeShards`, as a reshard leaves it) other than the topology's: every
invariant of the simulator (I1-I13) and of the rebalancer (R1-R3) holds, with the checks'
placement and `_miroir_shard` following the index's S.

One fixed program through every client operation, fault and membership change per shape, and
the state machine of `test_sim_rebalance` over these shapes (a few examples by default; more
with MIROIR_SIM_EXAMPLES or the `explore` profile)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import initialize

from miroir.core.placement import shard_for_key
from miroir.sim.cluster import SimSpec
from miroir.sim.membership import Membership
from tests.properties.test_sim_rebalance import RebalancingCluster, _start_soon, run_program

# The topology's S is 4; the index has 8 (more shards than the fleet's) or 2 (fewer).
SHAPES = (SimSpec(nodes=3, groups=1, rf=2, shards=4, index_shards=8),
          SimSpec(nodes=4, groups=2, rf=1, shards=4, index_shards=2))

PROGRAM = [
    *[("write", {"doc_ids": [d, d + 1], "words": ["red"], "genre": "drama", "replace": True})
      for d in range(0, 12, 2)],
    ("search", {"words": ["red"], "genre": None}),
    ("add_node", {"group": 0}),
    ("delete", {"doc_ids": [1]}),
    ("crash", {"index": 0}),
    ("advance", {"seconds": 0.5}),
    ("write", {"doc_ids": [1, 3], "words": ["sun"], "genre": "comedy", "replace": False}),
    ("restart", {"index": 0, "wipe": True}),
    ("checkpoint", {}),
    ("change_settings", {"patch": {"filterableAttributes": ["genre"]}}),
    ("search", {"words": [], "genre": "drama"}),
    ("drain_node", {"index": 1}),
    ("write", {"doc_ids": [4, 9], "words": ["night"], "genre": "horror", "replace": True}),
    ("delete", {"doc_ids": [2]}),
    ("checkpoint", {}),
    ("forget_drained_node", {}),
    ("add_group", {"size": 2}),
    ("write", {"doc_ids": [5], "words": ["wolf"], "genre": "drama", "replace": True}),
    ("checkpoint", {}),
]


@pytest.mark.parametrize("shape", SHAPES, ids=["index-8s-on-4s-rf2", "index-2s-on-4s-2g"])
def test_every_operation_and_membership_change_on_an_index_of_its_own_s(shape):
    report = run_program(shape, 5, PROGRAM)
    assert not report.violations, report.violations
    for kind in ("add_node", "drain_node", "add_group"):
        assert report.operations[kind] == 1, (kind, report.outcomes)
    assert report.checks["R1 a rebalance finishes done once faults heal"] == 3
    assert report.checks["R2 shard replicas copied == the plan's minimum"] >= 3
    assert report.checks["R3 a node holds only the shards it owns"] > 0
    assert report.checks["I8 readable after heal"] > 0
    assert report.checks["I9 search equals reference"] > 0
    assert report.checks["I10 repaired after heal"] > 0


def test_the_nodes_hold_the_index_by_its_own_s():
    """Not vacuous: the documents really are hashed by the index's S, beyond the topology's."""
    state = RebalancingCluster()
    try:
        state.start(shape=SHAPES[0], seed=3)
        state.write(doc_ids=list(range(24)), words=["red"], genre="drama", replace=True)
        state.checkpoint()

        async def shard_fields():
            transport = state.simulation.sim.transport
            transport.catch_up()
            return {doc_id: document["_miroir_shard"]
                    for node in state.simulation.node_ids()
                    for doc_id, document in transport.engine(node).indexes["sim"].documents.items()}

        held = state.runner.call(shard_fields)
        assert held == {str(i): shard_for_key(str(i), 8) for i in range(24)}
        assert max(held.values()) >= 4
        assert not state.simulation.report.violations
    finally:
        state.teardown()


class NodeShardsCluster(RebalancingCluster):
    @initialize(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16))
    def start(self, shape: SimSpec, seed: int) -> None:
        super(RebalancingCluster, self).start(shape, seed)
        self.membership = Membership(self.simulation)
        self.runner.call(_start_soon, self.runner.nursery, self.membership.run_engine)


_EXAMPLES = int(os.environ.get("MIROIR_SIM_EXAMPLES", "0")) or (
    200 if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else 4)
NodeShardsCluster.TestCase.settings = settings(
    max_examples=_EXAMPLES, stateful_step_count=20, deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate] + (
        [Phase.shrink] if os.environ.get("MIROIR_SIM_SHRINK") else []),
    suppress_health_check=[HealthCheck.too_slow])
TestNodeShardsCluster = pytest.mark.filterwarnings("ignore")(NodeShardsCluster.TestCase)


@pytest.mark.parametrize("shape", SHAPES, ids=["index-8s-on-4s-rf2", "index-2s-on-4s-2g"])
def test_a_rebalance_leaves_every_owner_of_the_index_complete_before_any_reconcile(shape):
    """Sharper than the checkpoint (whose reconciler pass would heal an incomplete copy): right
    after the rebalance settles, with no fault injected, every owner holds exactly the
    documents of the index's shards it owns at the index's S."""
    state = RebalancingCluster()
    try:
        state.start(shape=shape, seed=9)
        state.write(doc_ids=list(range(30)), words=["red"], genre="drama", replace=True)
        state.add_node(group=0)
        state.write(doc_ids=[3, 31], words=["sun"], genre="comedy", replace=True)
        state.delete(doc_ids=[4])
        simulation = state.simulation

        async def holdings():
            await state.membership.settle()
            await simulation._wait_tasks()
            transport = simulation.sim.transport
            transport.catch_up()
            return {node: set(transport.engine(node).indexes["sim"].documents)
                    for node in simulation.node_ids()}

        held = state.runner.call(holdings)
        present = {i for i, version in simulation.model.newest.items() if version != b"<absent>"}
        assert "4" not in present and "31" in present
        for node, ids in held.items():
            group = simulation.group_of(node)
            owned = {s for s in range(simulation.shards) if node in simulation.owners[(group, s)]}
            assert ids == {i for i in present if simulation.shard_of(i) in owned}, node
        assert not simulation.report.violations, simulation.report.violations
    finally:
        state.teardown()
