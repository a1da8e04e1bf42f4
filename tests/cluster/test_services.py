"""`run_services`: it starts exactly the services a `Services` names, in the documented order,
and every one of them reads time from the cluster's clock."""

from __future__ import annotations

import trio

from miroir.cluster.runtime import Cluster
from miroir.cluster.services import RepairSettings, Services, run_services
from miroir.config import HealthConfig
from miroir.core.tasks import SUCCEEDED, NodeTask, Task
from miroir.core.topology import Node, Topology
from miroir.store.memory import MemoryStore
from miroir.transport.fake import Answer, FakeTransport

TOPOLOGY = Topology(shards=2, replication_factor=1, replica_groups=1,
                    nodes=(Node("n1", "http://n1.invalid", 0),))
# Far from any wall clock: a service that read the host's clock instead would be seen.
CLOCK_MS = 3_000_000_000_000


class FixedClock:
    def now_ms(self) -> int:
        return CLOCK_MS


class RecordingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__(task_ttl_ms=1000)
        self.pruned_at: list[int] = []

    async def prune_tasks(self, now: int) -> int:
        self.pruned_at.append(now)
        return await super().prune_tasks(now)


def cluster_over(store: MemoryStore) -> Cluster:
    # Every node call answers like a finished node task (and 2xx, so like a healthy node).
    transport = FakeTransport(default=Answer(200, json={"uid": 7, "status": SUCCEEDED}))
    return Cluster(TOPOLOGY, transport, store, clock=FixedClock())


async def test_an_empty_description_starts_nothing(autojump_clock):
    cluster = cluster_over(MemoryStore())
    async with trio.open_nursery() as nursery:
        running = run_services(cluster, Services(), nursery)
        assert nursery.child_tasks == frozenset()
    assert (running.repair_worker, running.health_checker) == (None, None)


async def test_every_service_starts_in_order_and_reads_the_cluster_clock(autojump_clock):
    store = RecordingStore()
    old = Task(uid=await store.allocate_task_uid(), type="indexCreation", status=SUCCEEDED,
               enqueued_at=CLOCK_MS - 5000, finished_at=CLOCK_MS - 5000, index_uid="old")
    await store.put_task(old)
    pending = Task(uid=await store.allocate_task_uid(), type="documentAdditionOrUpdate",
                   enqueued_at=CLOCK_MS - 100, index_uid="movies", node_tasks={"n1": NodeTask(7)})
    await store.put_task(pending)
    cluster = cluster_over(store)
    services = Services(task_poll_interval_s=0.5, prune_interval_s=10.0,
                        repair=RepairSettings(retry_s=1.0, sweep_s=2.0),
                        health=HealthConfig(interval_ms=1000, timeout_ms=300))
    async with trio.open_nursery() as nursery:
        running = run_services(cluster, services, nursery)
        names = [task.name.rsplit(".", 1)[-1] for task in nursery.child_tasks]
        assert sorted(names) == ["poll_tasks_forever", "prune_periodically", "run", "run"]
        assert running.repair_worker is not None and running.health_checker is not None
        # The repair worker watches node states from the start.
        assert running.repair_worker.observe in cluster.state_observers
        assert (running.repair_worker.retry_s, running.repair_worker.sweep_s) == (1.0, 2.0)
        await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert store.pruned_at == [CLOCK_MS]
    assert await store.get_task(old.uid) is None
    polled = await store.get_task(pending.uid)
    assert (polled.status, polled.finished_at) == (SUCCEEDED, CLOCK_MS)
    assert running.health_checker.rounds == 1
    assert cluster.last_seen_ms["n1"] == CLOCK_MS
