"""The `rejoin` transition repair relies on. (How a lost node task counts is a law of
`miroir.core.tasks`: tests/properties/test_tasks.py; where a returning node copies from is one of
`miroir.core.replicas`: tests/properties/test_replicas.py.)"""

from __future__ import annotations

from miroir.core.node_state import ELIGIBILITY, NodeEvent, NodeState, next_state


def test_rejoin_sends_every_live_or_failed_node_to_joining_which_serves_no_reads():
    for state in (NodeState.ACTIVE, NodeState.HEALTHY, NodeState.DEGRADED, NodeState.FAILED,
                  NodeState.JOINING):
        assert next_state("n1", state, NodeEvent.REJOIN) is NodeState.JOINING
    joining = ELIGIBILITY[NodeState.JOINING]
    assert joining.takes_writes and not joining.serves_reads
    assert next_state("n1", NodeState.JOINING, NodeEvent.CAUGHT_UP) is NodeState.ACTIVE
