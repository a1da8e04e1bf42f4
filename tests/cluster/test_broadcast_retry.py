"""Node-write retries on the writes that go to every node: delete by filter, delete all, and
the steps of a settings change (`miroir.cluster.broadcast`, `miroir.cluster.settings_sync`).

As in `test_write_retry`, each node is a devnode engine behind `SimTransport`, the ground truth
of what it enqueued; here a call's fate is scripted per route (the first call to a node whose
method and path match a rule takes its fate), so a settings change's reads are left alone and
only its PATCH loses its answer. The tests that show a lost answer no longer fails the write
run once with retries off as well."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

from miroir.cluster import broadcast
from miroir.cluster.runtime import Cluster, ClusterSettings
from miroir.cluster.write_retry import RetryAs
from miroir.cluster.writes import quorum_targets
from miroir.core.routing import SHARD_FIELD
from miroir.core.topology import Node, Topology
from miroir.core.write_retry import TAG_PREFIX
from miroir.sim.transport import SimTransport
from miroir.store.memory import MemoryStore

INDEX = "idx"
TIMEOUT_MS = 500


@attrs.define
class RouteFaults:
    """A node's fault model: `rules` (method, path prefix, fate, latency), each taken by the
    first call that matches it; every other call is `ok`."""

    rules: list[tuple[str, str, str, float]] = attrs.field(factory=list)
    current: tuple[str, str] = ("", "")
    task_delay: tuple[float, float] = (0.0, 0.0)
    task_duration: tuple[float, float] = (0.001, 0.001)

    def sample_call(self, _rng):
        method, path = self.current
        for index, (m, prefix, fate, latency) in enumerate(self.rules):
            if m == method and path.startswith(prefix):
                del self.rules[index]
                return fate, latency
        return "ok", 0.002


class RouteTransport(SimTransport):
    def _begin(self, node_id, method, path, *rest):  # every call starts here, fate drawn
        self.nodes[node_id].faults.current = (method, path)
        return super()._begin(node_id, method, path, *rest)


def cluster_of_two(retries: int = 2) -> tuple[Cluster, RouteTransport]:
    """Two nodes, one group, RF 2, one shard; the index exists on both, `genre` filterable."""
    transport = RouteTransport(seed=0)
    nodes = (Node("n0", "sim://n0", 0), Node("n1", "sim://n1", 0))
    for node in nodes:
        transport.add_node(node.id, faults=RouteFaults())
        engine = transport.engine(node.id)
        engine.create_index(INDEX, "id")
        engine.update_settings(INDEX, {"filterableAttributes": ["genre", SHARD_FIELD]})
    transport.catch_up()
    topology = Topology(shards=1, replication_factor=2, replica_groups=1, nodes=nodes)
    cluster = Cluster(topology, transport, MemoryStore(),
                      ClusterSettings(node_timeout_ms=TIMEOUT_MS, write_retries=retries))
    return cluster, transport


def fail(transport: RouteTransport, node: str, method: str, prefix: str, *fates: str,
         latency: float = 0.002) -> None:
    transport.nodes[node].faults.rules.extend((method, prefix, f, latency) for f in fates)


def tasks_of(transport: SimTransport, node: str, task_type: str) -> list:
    transport.catch_up()
    return [t for t in transport.engine(node).tasks.values() if t.type == task_type]


def outcomes(cluster: Cluster) -> list[str]:
    seen: list[str] = []
    cluster.write_retries.observers.append(seen.append)
    return seen


def run(test):
    trio.run(test, clock=trio.testing.MockClock(autojump_threshold=0))


async def delete_by_filter(cluster: Cluster):
    return await broadcast.delete_documents_by_filter(
        cluster, INDEX, {"filter": "genre = drama"},
        {"providedIds": 0, "deletedDocuments": None, "originalFilter": '"genre = drama"'})


DELETES = {
    "filter": ("POST", f"/indexes/{INDEX}/documents/delete", delete_by_filter),
    "all": ("DELETE", f"/indexes/{INDEX}/documents",
            lambda cluster: broadcast.delete_all_documents(cluster, INDEX)),
}


@pytest.mark.parametrize("retries", [2, 0])
@pytest.mark.parametrize("kind", sorted(DELETES))
def test_a_delete_whose_answer_was_lost_is_adopted_never_enqueued_twice(kind, retries):
    async def main():
        cluster, transport = cluster_of_two(retries)
        seen = outcomes(cluster)
        method, prefix, send = DELETES[kind]
        fail(transport, "n1", method, prefix, "lost_reply")
        task = await send(cluster)
        enqueued = tasks_of(transport, "n1", "documentDeletion")
        assert len(enqueued) == 1  # the node took the first attempt: never a second
        if retries == 0:  # without retries the Miroir task cannot follow n1's part
            assert seen == [] and not task.node_tasks["n1"].acknowledged
            return
        assert seen == ["adopted"]
        assert enqueued[0].custom_metadata.startswith(TAG_PREFIX)
        # The Miroir task follows the adopted node task, as if the answer had arrived.
        assert task.node_tasks["n1"].task_uid == enqueued[0].uid

    run(main)


@pytest.mark.parametrize("kind", sorted(DELETES))
def test_a_delete_that_failed_before_reaching_the_node_is_sent_again(kind):
    async def main():
        cluster, transport = cluster_of_two()
        seen = outcomes(cluster)
        method, prefix, send = DELETES[kind]
        fail(transport, "n1", method, prefix, "stall")  # never delivered: the lookup finds none
        task = await send(cluster)
        assert seen == ["sent", "acked"]
        enqueued = tasks_of(transport, "n1", "documentDeletion")
        assert len(enqueued) == 1 and task.node_tasks["n1"].task_uid == enqueued[0].uid

    run(main)


@pytest.mark.parametrize("kind", sorted(DELETES))
def test_a_delete_is_not_resent_over_a_later_document_write_to_the_node(kind):
    async def main():
        cluster, transport = cluster_of_two()
        seen = outcomes(cluster)
        method, prefix, send = DELETES[kind]
        # The delete's call to n1 fails late (0.3 s); a document write sent meanwhile reaches
        # n1 first: resending the delete would delete the newer document on n1 only.
        fail(transport, "n1", method, prefix, "error", latency=0.3)
        done = {}

        async def delete():
            done["delete"] = await send(cluster)

        async def write_later():
            await trio.sleep(0.05)
            batch = [{"id": 1, "genre": "drama", SHARD_FIELD: 0}]
            done["write"] = await cluster.quorum_write(
                ["n0", "n1"], "POST", f"/indexes/{INDEX}/documents?primaryKey=id",
                lambda _node: batch, quorum_targets(cluster.shard_map, [0]),
                retry_as=RetryAs(INDEX, "documentAdditionOrUpdate",
                                 {"n0": frozenset({0}), "n1": frozenset({0})}, 10_000))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(delete)
            nursery.start_soon(write_later)
        assert "skipped_order" in seen and "sent" not in seen
        assert not done["write"].verdict.missed
        await trio.sleep(0.1)
        transport.catch_up()
        assert len(tasks_of(transport, "n1", "documentDeletion")) == 0
        assert "1" in transport.engine("n1").indexes[INDEX].documents

    run(main)


@pytest.mark.parametrize("retries", [2, 0])
def test_a_settings_step_whose_answer_was_lost_is_adopted_never_enqueued_twice(retries):
    async def main():
        cluster, transport = cluster_of_two(retries)
        await broadcast.create_index(cluster, "fresh", "id")  # commits its first version
        before = len(tasks_of(transport, "n1", "settingsUpdate"))
        seen = outcomes(cluster)
        fail(transport, "n1", "PATCH", "/indexes/fresh/settings", "lost_reply")
        task = await broadcast.update_settings(cluster, "fresh", {"sortableAttributes": ["year"]})
        changes = [t for t in tasks_of(transport, "n1", "settingsUpdate")[before:]
                   if t.details == {"sortableAttributes": ["year"]}]
        assert len(changes) == 1  # n1 applied the change once
        if retries == 0:  # the lost answer fails the change, which is rolled back
            assert task.error is not None and seen == []
            return
        assert seen == ["adopted"]
        assert task.error is None and task.node_tasks["n1"].task_uid == changes[0].uid
        for node in ("n0", "n1"):
            held = transport.engine(node).indexes["fresh"].settings
            assert held["sortableAttributes"] == ["year"]

    run(main)


def test_a_settings_step_lookup_adopts_only_a_task_whose_details_are_the_body_sent():
    """The node's newest settings task is someone else's (different details): not adopted;
    the step is sent again, once."""
    async def main():
        cluster, transport = cluster_of_two()
        await broadcast.create_index(cluster, "fresh", "id")
        seen = outcomes(cluster)
        fail(transport, "n1", "PATCH", "/indexes/fresh/settings", "drop")  # never delivered
        task = await broadcast.update_settings(cluster, "fresh", {"sortableAttributes": ["year"]})
        assert task.error is None
        assert seen == ["sent", "acked"]
        changes = [t for t in tasks_of(transport, "n1", "settingsUpdate")
                   if t.details == {"sortableAttributes": ["year"]}]
        assert len(changes) == 1

    run(main)
