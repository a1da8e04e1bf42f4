"""The migration engine in the simulator: the unmodified app over simulated nodes under virtual
time, a client writing and deleting while a node is added (or drained), with a node crashed and
restarted mid-copy on some seeds. Invariants once the rebalance is done and the cluster settled:
no acknowledged write lost, no deleted document back, the documents listing and search agree
with the reference, each shard only on its owners, shards moved equal the plan's minimum.

Kept apart from `miroir.sim.simulation` (whose model assumes a fixed membership); a seed that
breaks an invariant becomes a case of its own below.
"""

from __future__ import annotations

import random

import attrs
import pytest
import trio

from miroir.cluster.rebalance import Rebalancer, RebalanceSettings
from miroir.sim.cluster import SimSpec, open_sim_cluster

SPEC = SimSpec(nodes=3, rf=1, shards=16)


async def settled(sim, answer, patience_s=30.0):
    """The Miroir task of a 202 answer, once finished (None when the write was refused)."""
    if answer.status != 202:
        return None
    uid = answer.body["taskUid"]
    with trio.move_on_after(patience_s):
        while True:
            task = (await sim.request("GET", f"/tasks/{uid}")).body
            if task["status"] in ("succeeded", "failed", "canceled"):
                return task
            await trio.sleep(0.05)
    return None


async def client(sim, rng, expected, uncertain, stop):
    """Updates and deletes; `expected` follows acknowledged ones, `uncertain` holds ids whose
    last write was not acknowledged (either outcome is allowed for them)."""
    version = 0
    while not stop.is_set():
        version += 1
        ids = rng.sample(range(120), 4)
        updates = [{"id": i, "v": version} for i in ids[:3]]
        for body, path, applied in (
            (updates, "/indexes/sim/documents", {i: version for i in ids[:3]}),
            ([ids[3]], "/indexes/sim/documents/delete-batch", {ids[3]: None}),
        ):
            task = await settled(sim, await sim.request("POST", path, body))
            for i, value in applied.items():
                if task is not None and task["status"] == "succeeded":
                    expected[i] = value
                    uncertain.discard(i)
                else:
                    uncertain.add(i)
        await trio.sleep(rng.uniform(0.01, 0.2))


async def run_case(seed, kind, crash):
    rng = random.Random(seed)
    async with open_sim_cluster(SPEC, seed=seed) as sim:
        state = sim.app.extensions["miroir"]
        state.config = attrs.evolve(state.config, rebalance=attrs.evolve(
            state.config.rebalance, enabled=True))
        await settled(sim, await sim.request("POST", "/indexes", {"uid": "sim", "primaryKey": "id"}))
        task = await settled(sim, await sim.request(
            "POST", "/indexes/sim/documents", [{"id": i, "v": 0} for i in range(120)]))
        assert task["status"] == "succeeded"
        expected: dict[int, int | None] = dict.fromkeys(range(120), 0)
        uncertain: set[int] = set()
        if kind == "add":
            sim.transport.add_node("n9")
            path, body = "/_miroir/nodes", {"id": "n9", "address": "http://n9.sim.invalid:7700",
                                            "group": 0}
        else:
            path, body = "/_miroir/nodes/n1/drain", None
        plan = (await sim.request("POST", path + "?dryRun=true", body)).body["plan"]
        started = await sim.request("POST", path, body)
        assert started.status == 200, started.body
        engine = Rebalancer(sim.cluster, RebalanceSettings(
            settle_ms=400, grace_ms=400, max_docs_per_second=40, page_size=10, poll_s=0.05))
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client, sim, random.Random(seed + 1), expected, uncertain, stop)
            if crash:
                victim = "n9" if kind == "add" else "n2"

                async def crash_and_restart():
                    await trio.sleep(rng.uniform(0.5, 1.5))
                    sim.transport.crash(victim)
                    await trio.sleep(rng.uniform(0.5, 2.0))
                    sim.transport.restart(victim)

                nursery.start_soon(crash_and_restart)
            with trio.fail_after(600):
                while True:
                    await engine.drive_once()
                    status = (await sim.request("GET", "/_miroir/rebalance")).body
                    if status["state"] in ("done", "failed"):
                        break
                    await trio.sleep(0.05)
            stop.set()
        assert status["state"] == "done", status["errors"]
        assert status["shardsTotal"] == plan["shardReplicasCopied"]  # moves = the plan's minimum
        await trio.sleep(SPEC.recovery_s() + 3.0)  # every node back and repaired
        listed = (await sim.request("GET", "/indexes/sim/documents?limit=1000")).body["results"]
        seen = {d["id"]: d["v"] for d in listed}
        for i, value in expected.items():
            if i in uncertain:
                continue
            assert seen.get(i) == value, f"seed {seed}: document {i} is {seen.get(i)}, acked {value}"
        search = (await sim.request("POST", "/indexes/sim/search", {"q": "", "limit": 1000})).body
        assert {h["id"] for h in search["hits"]} == set(seen)
        shard_map = sim.cluster.shard_map
        sim.transport.catch_up()
        for node in sim.cluster.all_nodes():
            engine_docs = sim.transport.engine(node)
            held = {doc.get("_miroir_shard") for doc in _documents(engine_docs)}
            assert held <= set(shard_map.shards_of(node)), f"seed {seed}: {node} holds {held}"


def _documents(engine):
    index = engine.indexes.get("sim")
    return [] if index is None else list(index.documents.values())


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
@pytest.mark.parametrize(("kind", "crash"), [("add", False), ("add", True), ("drain", True)])
async def test_a_rebalance_racing_clients_and_a_crash_keeps_every_acknowledged_write(
        autojump_clock, seed, kind, crash):
    await run_case(seed, kind, crash)
