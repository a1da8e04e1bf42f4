"""The pure rules behind repair: the `rejoin` transition, and how a lost node task counts."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from miroir.cluster.tasks import _with_lost_parts
from miroir.core.node_state import ELIGIBILITY, NodeEvent, NodeState, next_state
from miroir.core.tasks import FAILED, SUCCEEDED, NodeTask, Task, aggregate_status


def test_rejoin_sends_every_live_or_failed_node_to_joining_which_serves_no_reads():
    for state in (NodeState.ACTIVE, NodeState.HEALTHY, NodeState.DEGRADED, NodeState.FAILED,
                  NodeState.JOINING):
        assert next_state("n1", state, NodeEvent.REJOIN) is NodeState.JOINING
    joining = ELIGIBILITY[NodeState.JOINING]
    assert joining.takes_writes and not joining.serves_reads
    assert next_state("n1", NodeState.JOINING, NodeEvent.CAUGHT_UP) is NodeState.ACTIVE


NODES = ("a", "b", "c", "d")
statuses = st.sampled_from(["enqueued", "processing", SUCCEEDED, FAILED])


@st.composite
def scenarios(draw):
    """Node parts of one task, a placement (shard -> owners), and the nodes that lost theirs."""
    parts = {
        node: NodeTask(draw(st.integers(0, 9)), draw(statuses))
        for node in draw(st.sets(st.sampled_from(NODES), min_size=1))
    }
    owners = {
        shard: draw(st.lists(st.sampled_from(NODES), min_size=1, max_size=3, unique=True))
        for shard in range(draw(st.integers(1, 4)))
    }
    unfinished = sorted(n for n, nt in parts.items() if nt.status not in (SUCCEEDED, FAILED))
    lost = draw(st.lists(st.sampled_from(unfinished), unique=True)) if unfinished else []
    return parts, owners, lost


def apply(parts, owners, lost):
    task = Task(uid=1, type="documentAdditionOrUpdate", enqueued_at=0, node_tasks=parts)
    return _with_lost_parts(
        task, lost,
        lambda node: [s for s, nodes in owners.items() if node in nodes],
        lambda shard: [(0, n) for n in owners[shard]],
    )


@given(scenarios())
@example(({"a": NodeTask(1, "enqueued"), "b": NodeTask(2, SUCCEEDED)}, {0: ["a", "b"]}, ["a"]))
@example(({"a": NodeTask(1, "enqueued")}, {0: ["a"]}, ["a"]))
def test_a_lost_part_is_final_and_fails_the_task_only_when_a_shard_has_no_other_copy(scenario):
    parts, owners, lost = scenario
    after = apply(parts, owners, lost).node_tasks
    for node in lost:
        # Final: failed with the lost code, so no poller ever waits for it again.
        assert after[node].status == FAILED
        assert after[node].error["code"] == "miroir_node_task_lost"
        shards = [s for s, nodes in owners.items() if node in nodes]
        kept_elsewhere = all(
            any(o not in lost and o in parts and parts[o].status != FAILED for o in owners[s])
            for s in shards
        )
        # Left out of the aggregate (like a node that never acknowledged) exactly when every
        # shard of the node has an acknowledged, not-failed, not-lost part elsewhere...
        left_out = not after[node].acknowledged
        if left_out:
            assert kept_elsewhere
        elif kept_elsewhere:
            # ...unless every other part was left out too and this one carries the error.
            assert [n for n, nt in after.items() if nt.acknowledged] == [node]
    status, error = aggregate_status(after)
    if any(after[n].acknowledged for n in lost):
        assert status == FAILED
    if status == FAILED and error["code"] == "miroir_no_quorum":
        assert not lost  # a lost part never reads as "nobody acknowledged"
