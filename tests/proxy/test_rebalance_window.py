"""The residual window of the migration engine, measured with two proxy processes over one store.

The window: after the engine's last compare and before every process routes by the cutover, a
process still dual-writing under the migration epoch acknowledges a write on the old owners'
quorum alone; if the write missed the new owner (it failed there), the new owner is cut over
without it and the write is lost. `residual_window` puts writes from a lagging process exactly
there (the new owner refusing them) and counts what it acknowledged and what reads miss after the
cutover. Without the cutting phase (`RebalanceSettings.cutting_phase=False`, the previous
engine) every such write is lost; with it, the lagging process must first route by the cutting
epoch (which requires the new owner's acknowledgement) before the last compare runs, so the same
writes are refused (503) and none is lost.
"""

from __future__ import annotations

import attrs

from miroir.cluster.rebalance import Rebalancer, start_rebalance
from miroir.cluster.topology_sync import TopologyFollower, announce
from miroir.core import membership
from miroir.core.placement import shard_for_key
from tests.proxy.harness import running_proxies
from tests.proxy.test_rebalance_engine import FAST, add_devnode, fill

WINDOW_WRITES = 12


async def residual_window(cutting_phase: bool) -> dict[str, int]:
    async with running_proxies(2, nodes=3, shards=16) as (a, b):
        await fill(a, 60)
        add_devnode(a, "n9")
        await start_rebalance(a.cluster, membership.add_node(
            a.cluster.durable_topology, {"id": "n9", "address": "http://n9.invalid:1", "group": 0}),
            a.cluster.now_ms())

        async def b_follows() -> None:  # process B's follower, one interval
            await TopologyFollower(b.cluster, 1.0).check_once()
            await announce(b.cluster, 60_000)

        await b_follows()
        shard_map = a.cluster.shard_map
        moving = [i for i in range(1000, 3000)
                  if shard_map.gains(0, shard_for_key(str(i), 16))][:WINDOW_WRITES]
        engine = Rebalancer(a.cluster, attrs.evolve(FAST, cutting_phase=cutting_phase))
        cut_over = engine._cut_over
        seen: dict[str, int] = {"sent": 0, "acknowledged": 0, "refused": 0}
        acknowledged: list[int] = []

        async def writes_in_the_window(*args):
            # after the last compare, before the cutover: n9 refuses writes, B still writes
            a.transport.down.add("n9")
            for doc_id in moving:
                seen["sent"] += 1
                status, answer, _ = await b.send(
                    "POST", "/indexes/m/documents", [{"id": doc_id, "v": 99, "text": "late"}])
                if status == 202 and (await b.wait_task(answer["taskUid"]))["status"] == \
                        "succeeded":
                    seen["acknowledged"] += 1
                    acknowledged.append(doc_id)
                else:
                    seen["refused"] += 1
            a.transport.down.discard("n9")
            await cut_over(*args)

        engine._cut_over = writes_in_the_window
        for _ in range(200):
            state = await engine.drive_once()
            if state in ("done", "failed"):
                break
            await b_follows()
        assert state == "done"
        await b_follows()
        lost = 0
        for doc_id in acknowledged:
            status, found, _ = await a.send("GET", f"/indexes/m/documents/{doc_id}")
            lost += status != 200 or found.get("v") != 99
        return {**seen, "lost": lost}


async def test_without_the_cutting_phase_the_window_loses_acknowledged_writes():
    measured = await residual_window(cutting_phase=False)
    assert measured["sent"] == WINDOW_WRITES
    assert measured["acknowledged"] == WINDOW_WRITES and measured["lost"] == WINDOW_WRITES


async def test_the_cutting_phase_closes_the_window():
    measured = await residual_window(cutting_phase=True)
    assert measured["sent"] == WINDOW_WRITES
    assert measured["acknowledged"] == 0 and measured["refused"] == WINDOW_WRITES
    assert measured["lost"] == 0
