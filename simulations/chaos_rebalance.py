"""The two rebalance rows of the chaos table (`simulations/chaos.py`): a node killed mid-
rebalance, and the process running the rebalance killed (another engine takes the lease).

Each starts from chaos.py's loaded deployment (3 nodes, RF=2, 8 shards, 40 documents), turns the
migration engine on in the app's config, adds node `n3` through `POST /_miroir/nodes`, and keeps
a client writing (updates and deletes through the app) while the engine runs. The simulator's
model assumes a fixed membership, so these rows check their own invariants once the rebalance is
done and the cluster settled, and count their violations: an acknowledged write not read back,
a deleted document read back, a document on a node that does not own its shard.

Must never: decide anything the engine decides; the engine is driven through its public
`drive_once` like the service loop does.
"""

from __future__ import annotations

import random
from typing import Any

import attrs
import trio

from miroir.cluster.rebalance import Rebalancer, RebalanceSettings
from miroir.core.node_state import NodeState
from miroir.sim.simulation import Simulation

ENGINE = RebalanceSettings(settle_ms=400, grace_ms=400, max_docs_per_second=20, page_size=4,
                           poll_s=0.05, lease_ttl_ms=2000)


async def _settled(sim, answer) -> bool:
    if answer.status != 202:
        return False
    with trio.move_on_after(30):
        while True:
            task = (await sim.request("GET", f"/tasks/{answer.body['taskUid']}")).body
            if task["status"] in ("succeeded", "failed", "canceled"):
                return task["status"] == "succeeded"
            await trio.sleep(0.05)
    return False


async def _client(sim, rng: random.Random, known: dict[int, Any], unsure: set[int],
                  stop: trio.Event) -> None:
    version = 1000
    while not stop.is_set():
        version += 1
        doc_id = rng.randrange(40)
        if rng.random() < 0.25:
            ok = await _settled(sim, await sim.request(
                "POST", "/indexes/sim/documents/delete-batch", [doc_id]))
            value = None
        else:
            ok = await _settled(sim, await sim.request(
                "POST", "/indexes/sim/documents", [{"id": doc_id, "year": version}]))
            value = version
        if ok:
            known[doc_id] = value
            unsure.discard(doc_id)
        else:
            unsure.add(doc_id)
        await trio.sleep(rng.uniform(0.02, 0.1))


async def _start(simulation: Simulation) -> dict[int, Any]:
    sim = simulation.sim
    state = sim.app.extensions["miroir"]
    state.config = attrs.evolve(state.config, rebalance=attrs.evolve(
        state.config.rebalance, enabled=True))
    listed = (await sim.request("GET", "/indexes/sim/documents?limit=1000")).body["results"]
    sim.transport.add_node("n3")
    answer = await sim.request("POST", "/_miroir/nodes",
                               {"id": "n3", "address": "http://n3.sim.invalid:7700", "group": 0})
    assert answer.status == 200, answer.body
    return {d["id"]: d["year"] for d in listed}


async def _drive(sim, engine: Rebalancer, patience_s: float = 300.0) -> dict[str, Any]:
    with trio.fail_after(patience_s):
        while True:
            await engine.drive_once()
            status = (await sim.request("GET", "/_miroir/rebalance")).body
            if status["state"] in ("done", "failed"):
                return status
            await trio.sleep(ENGINE.poll_s)


async def _violations(simulation: Simulation, known: dict[int, Any], unsure: set[int]) -> int:
    sim = simulation.sim
    await trio.sleep(simulation.spec.recovery_s() + 2.0)
    listed = (await sim.request("GET", "/indexes/sim/documents?limit=1000")).body["results"]
    seen = {d["id"]: d["year"] for d in listed}
    wrong = sum(seen.get(i) != value for i, value in known.items() if i not in unsure)
    shard_map = sim.cluster.shard_map
    sim.transport.catch_up()
    for node in sim.cluster.all_nodes():
        if sim.cluster.state_of(node) is NodeState.REMOVED:
            continue  # out of the cluster (a forced removal's dead node): never read again
        index = sim.transport.engine(node).indexes.get("sim")
        held = {d.get("_miroir_shard") for d in (index.documents.values() if index else ())}
        wrong += len(held - set(shard_map.shards_of(node)))
    return wrong


async def kill_node_mid_rebalance(simulation: Simulation, rng: random.Random):
    from simulations.chaos import Row

    sim = simulation.sim
    known = await _start(simulation)
    unsure: set[int] = set()
    stop = trio.Event()
    engine = Rebalancer(sim.cluster, ENGINE)
    copying_at = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_client, sim, random.Random(rng.random()), known, unsure, stop)

        async def kill_while_copying() -> None:
            nonlocal copying_at
            while (await sim.request("GET", "/_miroir/rebalance")).body["state"] != "copying":
                await trio.sleep(0.02)
            copying_at = trio.current_time()
            await trio.sleep(0.3)
            sim.transport.crash("n3")
            await trio.sleep(2.0)
            sim.transport.restart("n3")

        nursery.start_soon(kill_while_copying)
        status = await _drive(sim, engine)
        stop.set()
    took = trio.current_time() - copying_at
    wrong = await _violations(simulation, known, unsure)
    observed = (f"n3 killed 0.3 s into the copy, back 2 s later; rebalance {status['state']} "
                f"{took:.1f} s after the copy began, {status['shardsDone']}/"
                f"{status['shardsTotal']} shard replicas, {len(status['errors'])} errors "
                f"recorded; acknowledged writes lost, deletes undone or shards off-owner: {wrong}")
    return Row("kill the joining node mid-rebalance (engine on)",
               "the move pauses and resumes; nothing acknowledged lost", observed,
               status["state"] == "done" and wrong == 0, wrong)


async def kill_engine_mid_rebalance(simulation: Simulation, rng: random.Random):
    from simulations.chaos import Row

    sim = simulation.sim
    known = await _start(simulation)
    unsure: set[int] = set()
    stop = trio.Event()
    first = Rebalancer(sim.cluster, ENGINE)
    copy_page = first._write_documents
    pages = 0

    async def dies_on_the_third_page(*args: Any) -> None:
        nonlocal pages
        pages += 1
        if pages == 3:
            raise _ProcessKilled()
        await copy_page(*args)

    first._write_documents = dies_on_the_third_page
    store = sim.cluster.store
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_client, sim, random.Random(rng.random()), known, unsure, stop)
        release = store.release_lease
        store.release_lease = _never  # a killed process releases nothing
        try:
            while True:
                await first.drive_once()
                await trio.sleep(ENGINE.poll_s)
        except _ProcessKilled:
            pass
        finally:
            store.release_lease = release
        killed_at = trio.current_time()
        second = Rebalancer(sim.cluster, ENGINE)
        resumed_at = None
        take_lease = second._hold_lease

        async def noting_when_taken() -> bool:
            nonlocal resumed_at
            taken = await take_lease()
            if taken and resumed_at is None:
                resumed_at = trio.current_time()
            return taken

        second._hold_lease = noting_when_taken
        status = await _drive(sim, second)
        stop.set()
    wrong = await _violations(simulation, known, unsure)
    observed = (f"engine killed on its third page; another engine took the lease "
                f"{(resumed_at - killed_at) * 1000:.0f} ms later (lease {ENGINE.lease_ttl_ms} ms)"
                f" and finished: {status['state']}, {status['shardsDone']}/"
                f"{status['shardsTotal']} shard replicas; acknowledged writes lost, deletes "
                f"undone or shards off-owner: {wrong}")
    return Row("kill the process running the rebalance",
               f"another process takes the lease within {ENGINE.lease_ttl_ms} ms and resumes",
               observed,
               status["state"] == "done" and wrong == 0
               and resumed_at - killed_at <= ENGINE.lease_ttl_ms / 1000 + 2 * ENGINE.poll_s,
               wrong)


async def force_remove_dead_node(simulation: Simulation, rng: random.Random):
    from simulations.chaos import Row

    sim = simulation.sim
    state = sim.app.extensions["miroir"]
    state.config = attrs.evolve(state.config, rebalance=attrs.evolve(
        state.config.rebalance, enabled=True))
    listed = (await sim.request("GET", "/indexes/sim/documents?limit=1000")).body["results"]
    known: dict[int, Any] = {d["id"]: d["year"] for d in listed}
    unsure: set[int] = set()
    sim.transport.crash("n1")  # dead for good
    answer = await sim.request("DELETE", "/_miroir/nodes/n1?force=true")
    assert answer.status == 200, answer.body
    stop = trio.Event()
    engine = Rebalancer(sim.cluster, ENGINE)
    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_client, sim, random.Random(rng.random()), known, unsure, stop)
        status = await _drive(sim, engine)
        stop.set()
    took = trio.current_time() - started
    wrong = await _violations(simulation, known, unsure)
    observed = (f"n1 killed, then removed with ?force=true; rebalance {status['state']} in "
                f"{took:.1f} s, {status['shardsDone']}/{status['shardsTotal']} shard replicas "
                f"re-created from survivors, lost replicas {len(status.get('lost', []))}; "
                f"acknowledged writes lost, deletes undone or shards off-owner: {wrong}")
    return Row("force-remove a dead node at RF=2 (engine on)",
               "its replicas re-created from survivors; nothing acknowledged lost", observed,
               status["state"] == "done" and not status.get("lost") and wrong == 0, wrong)


class _ProcessKilled(Exception):
    pass


async def _never(*_args: Any) -> bool:
    return False
