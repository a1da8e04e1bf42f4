"""Swaps in the simulator: the unmodified app over simulated nodes under virtual time, one task
swapping `live` and `staging` again and again while a reader searches `live`, a writer updates
its documents and (on some seeds) a node crashes and comes back.

`live` starts with 60 blue documents and `staging` with the same 60 ids in green, so an answer
that mixed the two indexes would show both colours. Invariants: every search answer is one
colour (never half-swapped), complete unless the degraded header names missing shards; every
acknowledged swap task succeeded or failed as a whole; once settled, `live` holds the colour
the number of succeeded swaps says, with every document, and each acknowledged update is in the
index it was written to.
"""

from __future__ import annotations

import random

import pytest
import trio

from miroir.cluster.layouts import CHECK_INTERVAL_S
from miroir.sim.cluster import SimSpec, open_sim_cluster

SPEC = SimSpec(nodes=3, rf=2, shards=8)
IDS = range(60)


async def settled(sim, answer, patience_s=30.0):
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


class Race:
    """The racing client jobs and what they saw."""

    def __init__(self, sim, rng: random.Random, seed: int) -> None:
        self.sim, self.rng, self.seed = sim, rng, seed
        self.swaps = {"succeeded": 0, "failed": 0, "unanswered": 0}
        self.answers = {"complete": 0, "degraded": 0, "refused": 0}
        self.acked: dict[str, dict[int, int]] = {"blue": {}, "green": {}}
        self.stop = trio.Event()

    async def swapper(self) -> None:
        while not self.stop.is_set():
            task = await settled(self.sim, await self.sim.request(
                "POST", "/swap-indexes", [{"indexes": ["live", "staging"]}]))
            if task is None:
                self.swaps["unanswered"] += 1
                continue
            assert task["status"] in ("succeeded", "failed"), task
            self.swaps[task["status"]] += 1
            await trio.sleep(self.rng.uniform(0.0, 0.3))

    async def reader(self) -> None:
        while not self.stop.is_set():
            answer = await self.sim.request("POST", "/indexes/live/search", {"limit": 100})
            if answer.status != 200:
                self.answers["refused"] += 1
                continue
            colors = {hit["color"] for hit in answer.body["hits"]}
            assert len(colors) <= 1, f"seed {self.seed}: a half-swapped answer {colors}"
            if answer.degraded:
                self.answers["degraded"] += 1
            else:
                assert len(answer.body["hits"]) == len(IDS), answer.body
                self.answers["complete"] += 1
            await trio.sleep(self.rng.uniform(0.0, 0.05))

    async def writer(self) -> None:
        version = 0
        while not self.stop.is_set():
            version += 1
            doc_id = self.rng.choice(IDS)
            # A partial update keeps the colour: it lands in whichever index `live` is.
            task = await settled(self.sim, await self.sim.request(
                "PUT", "/indexes/live/documents", [{"id": doc_id, "v": version}]))
            if task is not None and task["status"] == "succeeded":
                landed = await self.sim.request("GET", f"/indexes/live/documents/{doc_id}")
                if landed.status == 200 and landed.body["v"] == version:
                    self.acked[landed.body["color"]][doc_id] = version
            await trio.sleep(self.rng.uniform(0.0, 0.2))


async def run_case(seed: int, crash: bool) -> None:
    rng = random.Random(seed)
    async with open_sim_cluster(SPEC, seed=seed) as sim:
        for uid, color in (("live", "blue"), ("staging", "green")):
            await settled(sim, await sim.request("POST", "/indexes",
                                                 {"uid": uid, "primaryKey": "id"}))
            task = await settled(sim, await sim.request(
                "POST", f"/indexes/{uid}/documents",
                [{"id": i, "color": color, "v": 0} for i in IDS]))
            assert task["status"] == "succeeded", task
        race = Race(sim, rng, seed)
        async with trio.open_nursery() as nursery:
            for job in (race.swapper, race.reader, race.writer):
                nursery.start_soon(job)
            if crash:
                victim = rng.choice(SPEC.node_ids())
                await trio.sleep(rng.uniform(0.5, 1.5))
                sim.transport.crash(victim)
                await trio.sleep(rng.uniform(0.5, 2.0))
                sim.transport.restart(victim)
            await trio.sleep(8.0)
            race.stop.set()
        await trio.sleep(SPEC.recovery_s() + CHECK_INTERVAL_S * 2)
        assert race.swaps["succeeded"] >= 3, race.swaps
        assert race.answers["complete"] >= 10, race.answers
        live_color = "blue" if race.swaps["succeeded"] % 2 == 0 else "green"
        for uid, color in (("live", live_color),
                           ("staging", "green" if live_color == "blue" else "blue")):
            listed = (await sim.request("GET", f"/indexes/{uid}/documents?limit=1000")).body
            assert {d["color"] for d in listed["results"]} == {color}, (seed, uid, race.swaps)
            assert {d["id"] for d in listed["results"]} == set(IDS)
            versions = {d["id"]: d["v"] for d in listed["results"]}
            for doc_id, version in race.acked[color].items():
                assert versions[doc_id] >= version, (seed, uid, doc_id)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("crash", [False, True])
async def test_swaps_racing_reads_writes_and_a_crash_are_never_half_applied(
        autojump_clock, seed, crash):
    await run_case(seed, crash)
