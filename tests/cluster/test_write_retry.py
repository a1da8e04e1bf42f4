"""Node-write retries (`miroir.cluster.write_retry`) over simulated nodes with scripted fates.

Each node is a devnode engine behind `SimTransport`; each call to it takes the next fate of its
script (ok, error, stall, lost_reply: the transport's vocabulary), so what a node enqueued is
read from its engine, the ground truth. The tests that show a transient failure no longer
costs quorum run once with retries off as well, and fail there.
"""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

from miroir.cluster.runtime import Cluster, ClusterSettings
from miroir.cluster.write_retry import RetryAs, client_key
from miroir.cluster.writes import quorum_targets
from miroir.core.routing import SHARD_FIELD
from miroir.core.topology import Node, Topology
from miroir.core.write_retry import TAG_PREFIX
from miroir.sim.transport import SimTransport
from miroir.store.memory import MemoryStore

INDEX = "idx"
PATH = f"/indexes/{INDEX}/documents?primaryKey=id"
TIMEOUT_MS = 500


@attrs.define
class ScriptedFaults:
    """A node's fault model that plays `script` (fate, latency) call by call, then `ok`."""

    script: list[tuple[str, float]] = attrs.field(factory=list)
    task_delay: tuple[float, float] = (0.0, 0.0)
    task_duration: tuple[float, float] = (0.001, 0.001)

    def sample_call(self, _rng):
        return self.script.pop(0) if self.script else ("ok", 0.002)


def two_node_cluster(retries: int = 2) -> tuple[Cluster, SimTransport]:
    """Two nodes, one group, RF 2, one shard: a write needs both nodes' acknowledgements."""
    transport = SimTransport(seed=0)
    nodes = (Node("n0", "sim://n0", 0), Node("n1", "sim://n1", 0))
    for node in nodes:
        transport.add_node(node.id, faults=ScriptedFaults())
        transport.engine(node.id).create_index(INDEX, "id")
    topology = Topology(shards=1, replication_factor=2, replica_groups=1, nodes=nodes)
    cluster = Cluster(topology, transport, MemoryStore(),
                      ClusterSettings(node_timeout_ms=TIMEOUT_MS, write_retries=retries))
    return cluster, transport


def script(transport: SimTransport, node: str, *fates: tuple[str, float]) -> None:
    transport.nodes[node].faults.script[:] = list(fates)


async def write(cluster: Cluster, documents: list[dict]):
    batch = [{**d, SHARD_FIELD: 0} for d in documents]
    nodes = ["n0", "n1"]
    return await cluster.quorum_write(
        nodes, "POST", PATH, lambda _node: batch, quorum_targets(cluster.shard_map, [0]),
        retry_as=RetryAs(INDEX, "documentAdditionOrUpdate", {n: frozenset({0}) for n in nodes},
                         await cluster.store.allocate_task_uid()))


def write_tasks(transport: SimTransport, node: str) -> list:
    transport.catch_up()
    return [t for t in transport.engine(node).tasks.values()
            if t.type == "documentAdditionOrUpdate"]


def outcomes(cluster: Cluster) -> list[str]:
    seen: list[str] = []
    cluster.write_retries.observers.append(seen.append)
    return seen


def run(test):
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))


@pytest.mark.parametrize("retries", [2, 0])
def test_a_node_error_is_resent_and_the_write_keeps_its_quorum(retries):
    async def main():
        cluster, transport = two_node_cluster(retries)
        seen = outcomes(cluster)
        script(transport, "n1", ("error", 0.002))
        result = await write(cluster, [{"id": 1, "v": "a"}])
        if retries == 0:  # without retries the transient error costs the pair its quorum
            assert result.verdict.missed and seen == []
            return
        assert not result.verdict.missed, result.verdict
        assert seen == ["sent", "acked"]
        assert len(write_tasks(transport, "n1")) == 1
        await trio.sleep(0.1)
        transport.catch_up()
        assert transport.engine("n1").indexes[INDEX].documents["1"]["v"] == "a"

    run(main)


@pytest.mark.parametrize("retries", [2, 0])
def test_a_lost_answer_is_adopted_not_enqueued_twice(retries):
    async def main():
        cluster, transport = two_node_cluster(retries)
        seen = outcomes(cluster)
        script(transport, "n1", ("lost_reply", 0.002))
        result = await write(cluster, [{"id": 1, "v": "a"}])
        enqueued = write_tasks(transport, "n1")
        assert len(enqueued) == 1  # the node applied the first attempt: never a second
        if retries == 0:
            assert result.verdict.missed
            return
        assert not result.verdict.missed
        assert seen == ["adopted"]
        assert result.results["n1"].json()["taskUid"] == enqueued[0].uid
        assert enqueued[0].custom_metadata.startswith(TAG_PREFIX)

    run(main)


def test_a_stalled_write_is_looked_up_then_resent_within_the_write_deadline():
    async def main():
        cluster, transport = two_node_cluster()
        seen = outcomes(cluster)
        script(transport, "n1", ("stall", 0.002))  # never delivered: the lookup finds nothing
        started = trio.current_time()
        result = await write(cluster, [{"id": 1, "v": "a"}])
        assert not result.verdict.missed
        assert seen == ["sent", "acked"]
        assert len(write_tasks(transport, "n1")) == 1
        assert trio.current_time() - started <= cluster.write_retries.write_deadline_s

    run(main)


def test_a_lookup_that_fails_means_no_resend():
    async def main():
        cluster, transport = two_node_cluster()
        seen = outcomes(cluster)
        # The write's answer is lost; so is the lookup's: the node may hold the task.
        script(transport, "n1", ("lost_reply", 0.002), ("stall", 0.002))
        result = await write(cluster, [{"id": 1, "v": "a"}])
        assert result.verdict.missed
        assert seen == ["lookup_failed"]
        assert len(write_tasks(transport, "n1")) == 1

    run(main)


def test_a_retry_never_goes_over_a_later_write_of_the_same_shard():
    async def main():
        cluster, transport = two_node_cluster()
        seen = outcomes(cluster)
        # Write A's call to n1 fails late (0.3 s); write B, sent meanwhile, reaches n1 first.
        script(transport, "n1", ("error", 0.3), ("ok", 0.002))
        results = {}

        async def one(name, doc, delay):
            await trio.sleep(delay)
            results[name] = await write(cluster, [doc])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "A", {"id": 1, "v": "old"}, 0)
            nursery.start_soon(one, "B", {"id": 1, "v": "new"}, 0.05)
        assert "skipped_order" in seen and "sent" not in seen
        assert results["A"].verdict.missed and not results["B"].verdict.missed
        await trio.sleep(0.1)
        transport.catch_up()
        for node in ("n0", "n1"):
            assert transport.engine(node).indexes[INDEX].documents["1"]["v"] == "new"

    run(main)


def test_the_clients_retry_with_the_same_key_adopts_the_nodes_tasks():
    async def main():
        cluster, transport = two_node_cluster(retries=1)
        seen = outcomes(cluster)
        # n1 fails both attempts of the first request: the pair misses quorum (a 503).
        script(transport, "n1", ("error", 0.002), ("error", 0.002))
        with client_key("client-key-1"):
            first = await write(cluster, [{"id": 1, "v": "a"}])
            assert first.verdict.missed
            second = await write(cluster, [{"id": 1, "v": "a"}])
        assert not second.verdict.missed
        assert "cached" in seen
        # n0 enqueued the write once, though the client sent it twice.
        assert len(write_tasks(transport, "n0")) == 1
        assert len(write_tasks(transport, "n1")) == 1
        # The same body without the key is a new write: sent again.
        await write(cluster, [{"id": 1, "v": "a"}])
        assert len(write_tasks(transport, "n0")) == 2

    run(main)
