"""The reshard engine (`miroir.cluster.reshard`) against in-process devnodes, driven by hand:
a reshard 4 -> 16 (and 4 -> 6 over two groups, 4 -> 3 at RF 2) with writes, deletes and a settings change racing every state loses nothing
and every search equals a single-node reference afterwards; a rollback during the grace period
flips back losing nothing written meanwhile; an engine restarted mid-copy on a SQLite store
resumes at the next shard; a mirror that missed writes is repaired by the comparison; a
required mirror refuses a write it could not take."""

from __future__ import annotations

import random

import pytest
import trio

from miroir.cluster import settings_sync
from miroir.cluster.reshard import Resharder, ReshardSettings
from miroir.cluster.runtime import Cluster
from miroir.cluster.topology_sync import announce
from miroir.core.placement import shard_for_key
from miroir.core.routing import SHARD_FIELD
from miroir.store.factory import open_store
from tests.proxy.harness import running_proxies, running_proxy
from tests.proxy.test_search import (
    SETTINGS,
    assert_same_as_reference,
    corpus,
    proxy_and_reference,
    random_query,
    write_both,
)

FAST = ReshardSettings(grace_ms=0, settle_ms=0, page_size=25, max_docs_per_second=10**6,
                       poll_s=0.0)
# With client writes racing: a write that resolved the index just before the flip (or read a
# mirror just before it was dropped) is still in flight for a few ms.
RACING = ReshardSettings(grace_ms=300, settle_ms=300, page_size=25, max_docs_per_second=10**6,
                         poll_s=0.0)


async def start(h, uid, shards):
    status, answer, _ = await h.send("POST", f"/_miroir/indexes/{uid}/reshard", {"shards": shards})
    assert status == 202, answer
    return answer["reshardId"]


async def state_of(h, reshard_id):
    return (await h.send("GET", f"/_miroir/reshards/{reshard_id}"))[1]


async def drive_until(engine, h, reshard_id, states, *, limit=2000):
    """Drive the engine (yielding to the client traffic between passes) until the reshard is
    in one of `states`."""
    for _ in range(limit):
        await engine.drive_once()
        shown = await state_of(h, reshard_id)
        if shown["state"] in states:
            return shown
        await trio.sleep(0.001)
    raise AssertionError(f"reshard stuck in {shown['state']}: {shown['errors']}")


async def node_documents(h, node, index):
    answer = await h.cluster.call(node, "POST", f"/indexes/{index}/documents/fetch",
                                  {"limit": 100_000})
    return answer.json()["results"] if answer.ok else None


async def assert_laid_out(h, index, shards, expected_ids):
    """Every document of node-side `index` is on every owner of shard_for_key(id, shards) (each
    replica, each group), with that `_miroir_shard`, and nowhere else; together they are
    `expected_ids`."""
    shard_map = h.cluster.shard_map_for(index)
    assert shard_map.shards == shards
    held = {}
    for node in h.cluster.all_nodes():
        for document in await node_documents(h, node, index) or []:
            shard = shard_for_key(str(document["id"]), shards)
            assert document[SHARD_FIELD] == shard
            held.setdefault(document["id"], set()).add(node)
    assert set(held) == set(expected_ids)
    for doc_id, nodes in held.items():
        owners = {n for _, n in shard_map.write_targets(shard_for_key(str(doc_id), shards))}
        assert nodes == owners, doc_id


async def node_indexes(h):
    return {node: sorted(i["uid"] for i in
                         (await h.cluster.call(node, "GET", "/indexes")).json()["results"])
            for node in h.cluster.all_nodes()}


class Traffic:
    """Writes through Miroir and to the reference, one at a time, until stopped; `ids` follows
    what exists."""

    def __init__(self, h, ref, uid, ids, seed):
        self.h, self.ref, self.uid, self.ids = h, ref, uid, ids
        self.rng = random.Random(seed)
        self.rounds = 0
        self.next_id = max(ids) + 1

    async def run(self, stop: trio.Event, settings_change: bool = True) -> None:
        while not stop.is_set():
            self.rounds += 1
            kind = self.rng.random()
            if settings_change and self.rounds == 2:  # at least one, early
                await write_both(self.h, self.ref, "PATCH", f"/indexes/{self.uid}/settings",
                                 {"stopWords": ["the"], "synonyms": {"sun": ["light"]}})
            elif kind < 0.45:
                new = corpus(self.rng.randint(1, 4), self.rng.randint(0, 10**6))
                for document in new:
                    document["id"] = self.rng.choice(sorted(self.ids)) \
                        if self.rng.random() < 0.5 else self._fresh()
                    self.ids.add(document["id"])
                await write_both(self.h, self.ref, "POST", f"/indexes/{self.uid}/documents",
                                 new)
            elif kind < 0.75:
                gone = self.rng.sample(sorted(self.ids), min(3, len(self.ids)))
                await write_both(self.h, self.ref, "POST",
                                 f"/indexes/{self.uid}/documents/delete-batch", gone)
                self.ids -= set(gone)
            elif kind < 0.9:
                year = self.rng.randint(1980, 2020)
                await write_both(self.h, self.ref, "POST",
                                 f"/indexes/{self.uid}/documents/delete",
                                 {"filter": f"year = {year}"})
                # which ids the filter took: read the reference
                _, listed = await self.ref.send("POST", f"/indexes/{self.uid}/documents/fetch",
                                                {"limit": 100_000})
                self.ids = {d["id"] for d in listed["results"]}
            elif settings_change and self.rounds % 7 == 0:
                await write_both(self.h, self.ref, "PATCH", f"/indexes/{self.uid}/settings",
                                 {"stopWords": self.rng.sample(["red", "blue", "the"], 1)})
            await trio.sleep(0)

    def _fresh(self) -> int:
        self.next_id += 1
        return self.next_id


@pytest.mark.parametrize(("layout", "target"), [
    ({"nodes": 3}, 16),
    ({"nodes": 4, "replica_groups": 2}, 6),  # two groups, a count that is no multiple
    ({"nodes": 3, "replication_factor": 2}, 3),  # two replicas per shard, fewer shards
])
async def test_a_reshard_with_racing_writes_loses_nothing_and_searches_equal_the_reference(
        layout, target):
    async with proxy_and_reference(shards=4, **layout) as (h, ref):
        await write_both(h, ref, "POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        await write_both(h, ref, "PATCH", "/indexes/movies/settings", SETTINGS)
        await write_both(h, ref, "POST", "/indexes/movies/documents", corpus(400, seed=7))
        reshard_id = await start(h, "movies", target)
        traffic = Traffic(h, ref, "movies", set(range(400)), seed=3)
        engine = Resharder(h.cluster, RACING)
        stop = trio.Event()
        seen_states = []
        engine.observers.append(lambda entry: seen_states.append(entry["state"]))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(traffic.run, stop)
            shown = await drive_until(engine, h, reshard_id, ("done", "failed"))
            stop.set()
        assert shown["state"] == "done", shown["errors"]
        assert {"copying", "verifying", "grace", "done"} <= set(seen_states)
        assert traffic.rounds > 5  # writes did race the reshard
        assert shown["documentsCopied"] > 300 and shown["finishedAtMs"] is not None
        assert shown["documentsCopied"] <= shown["documentsTotal"]
        layouts = await h.cluster.layouts.refresh()
        shadow = layouts.node_index("movies")
        assert shadow == f"movies--s{target}-1" and not layouts.mirrors
        # The old node-side index is gone everywhere; clients see only `movies`.
        assert all(names == [shadow] for names in (await node_indexes(h)).values())
        listed = (await h.send("GET", "/indexes"))[1]
        assert [i["uid"] for i in listed["results"]] == ["movies"]
        await assert_laid_out(h, shadow, target, traffic.ids)
        rng = random.Random(11)
        for _ in range(25):
            await assert_same_as_reference(h, ref, "movies", random_query(rng))
        # Writes after the reshard land by the new S.
        await write_both(h, ref, "POST", "/indexes/movies/documents", [{"id": 10_000,
                                                                        "title": "after"}])
        await assert_laid_out(h, shadow, target, traffic.ids | {10_000})


async def test_a_rollback_during_grace_flips_back_and_loses_nothing_written_meanwhile():
    async with proxy_and_reference(nodes=3, shards=4) as (h, ref):
        await write_both(h, ref, "POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        await write_both(h, ref, "PATCH", "/indexes/movies/settings", SETTINGS)
        await write_both(h, ref, "POST", "/indexes/movies/documents", corpus(150, seed=5))
        reshard_id = await start(h, "movies", 6)
        engine = Resharder(h.cluster, ReshardSettings(grace_ms=3_600_000, settle_ms=300,
                                                      page_size=40, max_docs_per_second=10**6,
                                                      poll_s=0))
        await drive_until(engine, h, reshard_id, ("grace",))
        assert (await h.cluster.layouts.refresh()).node_index("movies") == "movies--s6-1"
        # Writes in the grace period go to the shadow and are mirrored back to the old index.
        traffic = Traffic(h, ref, "movies", set(range(150)), seed=9)
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(traffic.run, stop, False)
            while traffic.rounds < 12:
                await trio.sleep(0.001)
            status, answer, _ = await h.send("POST", f"/_miroir/reshards/{reshard_id}/rollback")
            assert status == 202, answer
            shown = await drive_until(engine, h, reshard_id, ("rolledBack",))
            stop.set()
        assert shown["finishedAtMs"] is not None
        layouts = await h.cluster.layouts.refresh()
        assert layouts.node_index("movies") == "movies" and not layouts.mirrors
        assert all(names == ["movies"] for names in (await node_indexes(h)).values())
        await assert_laid_out(h, "movies", 4, traffic.ids)
        rng = random.Random(12)
        for _ in range(15):
            await assert_same_as_reference(h, ref, "movies", random_query(rng))


class Crash(Exception):
    pass


async def test_an_engine_restarted_mid_copy_on_sqlite_resumes_at_the_next_shard(tmp_path):
    path = str(tmp_path / "miroir.sqlite3")
    store = await open_store({"backend": "sqlite", "path": path})
    async with running_proxy(nodes=3, shards=4, store=store) as h:
        await h.send("POST", "/indexes", {"uid": "m", "primaryKey": "id"})
        written = (await h.send("POST", "/indexes/m/documents",
                                [{"id": i, "v": i} for i in range(200)]))[1]
        assert (await h.wait_task(written["taskUid"]))["status"] == "succeeded"
        reshard_id = await start(h, "m", 8)
        first = Resharder(h.cluster, FAST)

        def crash_after_two_shards(entry):
            if len(entry.get("shardsCopied", ())) == 2:
                raise Crash()

        first.observers.append(crash_after_two_shards)
        try:
            await first.drive_once()
            raise AssertionError("the first engine should have crashed mid-copy")
        except Crash:
            pass
        copied_before = (await state_of(h, reshard_id))["documentsCopied"]
        assert (await state_of(h, reshard_id))["state"] == "copying" and copied_before > 0
        # A new process: its own store connection and cluster, nothing in memory.
        store2 = await open_store({"backend": "sqlite", "path": path})
        try:
            cluster2 = Cluster(h.cluster.topology, h.transport, store2)
            second = Resharder(cluster2, FAST)
            for _ in range(50):
                if await second.drive_once() == "done":
                    break
            shown = await state_of(h, reshard_id)
            assert shown["state"] == "done", shown["errors"]
            # Resumed, not started over: every document copied once (no traffic: no re-copies).
            assert shown["documentsCopied"] == 200
        finally:
            await store2.close()
        await h.cluster.layouts.refresh()
        await assert_laid_out(h, "m--s8-1", 8, range(200))


async def test_mirror_writes_the_shadow_missed_are_counted_and_repaired():
    async with running_proxy(nodes=3, shards=4) as h:
        await h.send("POST", "/indexes", {"uid": "m", "primaryKey": "id"})
        written = (await h.send("POST", "/indexes/m/documents",
                                [{"id": i, "v": 0} for i in range(60)]))[1]
        await h.wait_task(written["taskUid"])
        reshard_id = await start(h, "m", 8)
        engine = Resharder(h.cluster, FAST)
        # Held in `waiting` (the mirror on, optional) by a process that has not announced it.
        await h.store.put_process_record("proc-other", {"epoch": 1, "layouts": 0},
                                         h.cluster.now_ms(), 60_000)
        assert await engine.drive_once() == "waiting"
        # Writes now: the shadow refuses them on n1 (a sick node), the old index takes them.
        h.transport.refuse = lambda node, method, path: node == "n1" and "m--s8-1" in path \
            and method == "POST"
        answer = (await h.send("POST", "/indexes/m/documents",
                               [{"id": i, "v": 1} for i in range(60, 90)]))[1]
        assert (await h.wait_task(answer["taskUid"]))["status"] == "succeeded"
        deleted = (await h.send("POST", "/indexes/m/documents/delete-batch", [0, 1, 2]))[1]
        assert (await h.wait_task(deleted["taskUid"]))["status"] == "succeeded"
        shown = await state_of(h, reshard_id)
        assert any("missed the new layout" in e for e in shown["errors"]), shown
        h.transport.refuse = lambda node, method, path: False
        await h.store.delete_process_record("proc-other")
        shown = await drive_until(engine, h, reshard_id, ("done", "failed"))
        assert shown["state"] == "done", shown["errors"]
        await h.cluster.layouts.refresh()
        await assert_laid_out(h, "m--s8-1", 8, range(3, 90))


async def test_a_required_mirror_refuses_a_write_the_shadow_could_not_take():
    async with running_proxy(nodes=3, shards=4) as h:
        await h.send("POST", "/indexes", {"uid": "m", "primaryKey": "id"})
        written = (await h.send("POST", "/indexes/m/documents",
                                [{"id": i} for i in range(30)]))[1]
        await h.wait_task(written["taskUid"])
        reshard_id = await start(h, "m", 8)
        engine = Resharder(h.cluster, FAST)
        # Held in `verifying`: another live process announced the mirror, not that it is
        # required.
        await h.store.put_process_record("proc-other", {"epoch": 1, "layouts": 0},
                                         h.cluster.now_ms(), 60_000)
        assert await engine.drive_once() == "waiting"
        record = (await h.store.get_record("reshards")).value["reshards"][0]
        await h.store.put_process_record("proc-other", {"epoch": 1,
                                                        "layouts": record["mirrorVersion"]},
                                         h.cluster.now_ms(), 60_000)
        assert await engine.drive_once() == "verifying"
        assert await engine.drive_once() == "verifying"
        assert (await h.cluster.layouts.refresh()).mirror_of("m").required
        h.transport.refuse = lambda node, method, path: "m--s8-1" in path and method == "POST"
        status, answer, _ = await h.send("POST", "/indexes/m/documents", [{"id": 1000}])
        assert (status, answer["code"]) == (503, "miroir_no_quorum"), answer
        h.transport.refuse = lambda node, method, path: False
        await h.store.delete_process_record("proc-other")
        shown = await drive_until(engine, h, reshard_id, ("done",))
        assert record["shadow"] == "m--s8-1" and shown["state"] == "done"


async def test_the_engine_waits_for_every_process_to_mirror_and_loses_no_write_of_a_stale_one():
    """Two proxy processes; B follows the layouts only when told (as if its follower were
    slow). The engine copies nothing while B routes without the mirror, does not flip while B
    does not require it, and every write sent through B in between is in the new layout."""
    async with running_proxies(2, nodes=3, shards=4) as (a, b):
        b.cluster.layouts.check_interval_s = 3600  # B re-reads only in `catch_up`
        ttl = 60_000

        async def catch_up():
            await b.cluster.layouts.refresh()
            await announce(b.cluster, ttl)

        await a.send("POST", "/indexes", {"uid": "m", "primaryKey": "id"})
        written = (await a.send("POST", "/indexes/m/documents", [{"id": i} for i in range(60)]))[1]
        await a.wait_task(written["taskUid"])
        await catch_up()
        reshard_id = await start(a, "m", 8)
        engine = Resharder(a.cluster, FAST)

        async def record():
            assert (await a.store.get_record("reshards")).value["reshards"][0]["id"] == reshard_id
            return (await a.store.get_record("reshards")).value["reshards"][0]

        assert await engine.drive_once() == "waiting"
        assert (await record())["waitingFor"] == [b.cluster.process_id]
        # B writes without the mirror: only the old index gets these.
        answer = (await b.send("POST", "/indexes/m/documents",
                               [{"id": i} for i in range(100, 110)]))[1]
        assert (await b.wait_task(answer["taskUid"]))["status"] == "succeeded"
        await catch_up()
        assert await engine.drive_once() == "verifying"
        assert await engine.drive_once() == "verifying"  # B does not require the mirror yet
        assert (await record())["waitingFor"] == [b.cluster.process_id]
        answer = (await b.send("POST", "/indexes/m/documents",
                               [{"id": i} for i in range(200, 210)]))[1]
        assert (await b.wait_task(answer["taskUid"]))["status"] == "succeeded"
        await catch_up()
        assert await engine.drive_once() == "grace"
        assert await engine.drive_once() == "grace"  # B has not seen the flip
        answer = (await b.send("POST", "/indexes/m/documents",
                               [{"id": i} for i in range(300, 310)]))[1]  # to the old index
        assert (await b.wait_task(answer["taskUid"]))["status"] == "succeeded"
        await catch_up()
        assert await engine.drive_once() == "grace"  # the mirror dropped; B must see that too
        await catch_up()
        assert await engine.drive_once() == "done"
        expected = {*range(60), *range(100, 110), *range(200, 210), *range(300, 310)}
        await assert_laid_out(a, "m--s8-1", 8, expected)
        for proxy in (a, b):
            listed = (await proxy.send("GET", "/indexes/m/documents?limit=1000"))[1]
            assert {d["id"] for d in listed["results"]} == expected


async def test_a_delete_all_and_a_settings_change_mirrored_before_the_copy_end_up_in_the_new_layout():
    async with running_proxy(nodes=3, shards=4) as h:
        await h.send("POST", "/indexes", {"uid": "m", "primaryKey": "id"})
        written = (await h.send("POST", "/indexes/m/documents", [{"id": i} for i in range(40)]))[1]
        await h.wait_task(written["taskUid"])
        await start(h, "m", 8)
        engine = Resharder(h.cluster, FAST)
        await h.store.put_process_record("proc-other", {"epoch": 1, "layouts": 0},
                                         h.cluster.now_ms(), 60_000)
        assert await engine.drive_once() == "waiting"  # the mirror is on, nothing copied yet
        for method, path, body in (
                ("DELETE", "/indexes/m/documents", None),
                ("POST", "/indexes/m/documents", [{"id": i, "kept": True} for i in range(5)]),
                ("PATCH", "/indexes/m/settings", {"filterableAttributes": ["kept"]})):
            answer = (await h.send(method, path, body))[1]
            assert (await h.wait_task(answer["taskUid"]))["status"] == "succeeded"
        await h.store.delete_process_record("proc-other")
        while (state := await engine.drive_once()) not in ("done", None):
            assert state != "failed"
        await assert_laid_out(h, "m--s8-1", 8, range(5))
        found = (await h.send("POST", "/indexes/m/search", {"filter": "kept = true"}))[1]
        assert found["estimatedTotalHits"] == 5
        for node in h.cluster.all_nodes():
            held = (await h.cluster.call(node, "GET", "/indexes/m--s8-1/settings")).json()
            assert "kept" in held["filterableAttributes"]


async def test_settings_the_shadow_missed_are_copied_and_committed_before_the_flip():
    async with running_proxy(nodes=3, shards=4) as h:
        await h.send("POST", "/indexes", {"uid": "m", "primaryKey": "id"})
        written = (await h.send("POST", "/indexes/m/documents", [{"id": i} for i in range(10)]))[1]
        await h.wait_task(written["taskUid"])
        await start(h, "m", 8)
        engine = Resharder(h.cluster, FAST)
        await h.store.put_process_record("proc-other", {"epoch": 1, "layouts": 0},
                                         h.cluster.now_ms(), 60_000)
        assert await engine.drive_once() == "waiting"
        # A settings change the mirror did not carry (as one made before the mirror existed):
        # applied to every node and committed, as `broadcast.update_settings` ends a change
        # (an edit left uncommitted is one made behind Miroir's back, which the reconciler
        # undoes and the shadow must not adopt: tests/properties/test_sim_reshard.py).
        patch = {"synonyms": {"sun": ["light"]}}
        for node in h.cluster.all_nodes():
            answer = await h.cluster.call(node, "PATCH", "/indexes/m/settings", patch)
            await h.cluster.wait_for_node_tasks({node: answer.json()["taskUid"]})
        version = await h.store.allocate_settings_version("m")
        await settings_sync.commit(h.cluster, "m", version, sorted(h.cluster.all_nodes()),
                                   succeeded=True, patched=patch)
        await h.store.delete_process_record("proc-other")
        while (state := await engine.drive_once()) not in ("done", None):
            assert state != "failed"
        shown = (await h.send("GET", "/_miroir/reshards"))[1]["results"][0]
        assert any("settings of m--s8-1 differed" in e for e in shown["errors"]), shown
        committed = await h.store.get_committed_settings("m--s8-1")
        assert committed.settings["synonyms"] == {"sun": ["light"]}
        for node in h.cluster.all_nodes():
            held = (await h.cluster.call(node, "GET", "/indexes/m--s8-1/settings")).json()
            assert held["synonyms"] == {"sun": ["light"]}
        assert (await h.send("GET", "/indexes/m/settings/synonyms"))[1] == {"sun": ["light"]}
