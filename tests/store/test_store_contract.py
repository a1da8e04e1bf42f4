"""The Store contract, held against every backend (memory, SQLite, Redis)."""

from __future__ import annotations

import sqlite3

import pytest
import redis as redis_client
import trio

from miroir.core.tasks import (
    FAILED,
    PROCESSING,
    SUCCEEDED,
    NodeTask,
    Task,
    TaskQuery,
    apply_node_updates,
)

HOUR = 3_600_000
T0 = 1_764_000_000_000  # an arbitrary epoch-ms "now"


def a_task(uid: int, **changes) -> Task:
    fields = dict(
        uid=uid, type="documentAdditionOrUpdate", enqueued_at=T0 + uid, index_uid="movies",
        details={"receivedDocuments": 3, "indexedDocuments": None},
        node_tasks={"node-a": NodeTask(7), "node-b": NodeTask(9), "node-c": NodeTask(None)},
        missed_quorum=((1, 4),),
    )
    fields.update(changes)
    return Task(**fields)


# ---- tasks


async def test_a_stored_task_reads_back_equal(store):
    task = a_task(await store.allocate_task_uid(), error={"code": "x"}, canceled_by=3,
                  started_at=T0 + 5, finished_at=T0 + 9, status=FAILED,
                  custom_metadata="import #7 ✓")
    await store.put_task(task)
    assert await store.get_task(task.uid) == task
    assert await store.get_task(task.uid + 1000) is None


async def test_task_uids_increase_and_skip_uids_put_directly(store):
    first = await store.allocate_task_uid()
    second = await store.allocate_task_uid()
    assert second > first
    await store.put_task(a_task(second + 50))
    assert await store.allocate_task_uid() > second + 50


async def test_a_fresh_store_hands_out_task_uid_0_first_as_meilisearch_does(backend):
    store = await backend.open()
    assert [await store.allocate_task_uid() for _ in range(2)] == [0, 1]


async def test_a_fresh_store_creates_task_0_first(backend):
    store = await backend.open()
    assert (await store.create_task(lambda uid: a_task(uid))).uid == 0
    assert await store.allocate_task_uid() == 1


async def test_task_0_put_directly_into_a_fresh_store_is_never_handed_out(backend):
    store = await backend.open()
    await store.put_task(a_task(0))
    assert await store.allocate_task_uid() == 1


async def test_create_task_allocates_and_stores_in_one_step(store):
    before = await store.allocate_task_uid()
    created = await store.create_task(lambda uid: a_task(uid))
    assert created.uid > before and await store.get_task(created.uid) == created
    assert await store.allocate_task_uid() > created.uid
    with pytest.raises(ValueError):
        await store.create_task(lambda uid: a_task(uid + 1))


async def test_modify_task_replaces_atomically_and_knows_missing_tasks(store):
    await store.put_task(a_task(1))
    changed = await store.modify_task(
        1, lambda t: apply_node_updates(t, {"node-a": NodeTask(7, PROCESSING)}, T0 + 100))
    assert changed.status == PROCESSING and changed.started_at == T0 + 100
    assert await store.get_task(1) == changed
    assert await store.modify_task(2, lambda t: t) is None
    with pytest.raises(ValueError):
        await store.modify_task(1, lambda t: a_task(5))


async def test_delete_tasks_counts_what_existed(store):
    for uid in (1, 2, 3):
        await store.put_task(a_task(uid))
    assert await store.delete_tasks([2, 3, 4, 3]) == 2
    assert [t.uid for t in (await store.list_tasks(TaskQuery())).results] == [1]


async def test_pruning_removes_exactly_the_tasks_older_than_the_ttl(store):
    ttl = store.task_ttl_ms
    now = T0 + 10 * ttl
    # (enqueued_at, finished_at): the TTL counts from finishedAt, or enqueuedAt if unfinished.
    shapes = {
        1: (now - 2 * ttl, now - ttl - 1),   # finished just over a TTL ago: pruned
        2: (now - 2 * ttl, now - ttl),       # finished exactly a TTL ago: kept
        3: (now - 2 * ttl, None),            # never finished, enqueued long ago: pruned
        4: (now - ttl + 1, None),            # never finished, recent: kept
        5: (now - 3 * ttl, now - 1),         # old but finished recently: kept
    }
    for uid, (enqueued, finished) in shapes.items():
        await store.put_task(a_task(uid, enqueued_at=enqueued, finished_at=finished,
                                    started_at=finished, status=SUCCEEDED if finished else PROCESSING))
    assert await store.prune_tasks(now) == 2
    remaining = {t.uid for t in (await store.list_tasks(TaskQuery(limit=100))).results}
    assert remaining == {2, 4, 5}
    assert await store.get_task(1) is None and await store.get_task(3) is None


async def test_a_task_finishing_later_moves_its_ttl(store):
    ttl = store.task_ttl_ms
    await store.put_task(a_task(1, enqueued_at=T0))
    await store.modify_task(1, lambda t: apply_node_updates(
        t, {"node-a": NodeTask(7, SUCCEEDED), "node-b": NodeTask(9, SUCCEEDED)}, T0 + ttl))
    assert await store.prune_tasks(T0 + ttl + 10) == 0
    assert await store.prune_tasks(T0 + 2 * ttl + 1) == 1


# ---- idempotency keys


async def test_the_first_claim_of_a_key_wins_until_it_expires(store):
    first = await store.claim_idempotency_key("k", "hash-1", 10, now=T0, ttl_ms=HOUR)
    assert (first.body_hash, first.task_uid, first.expires_at) == ("hash-1", 10, T0 + HOUR)
    again = await store.claim_idempotency_key("k", "hash-2", 11, now=T0 + HOUR - 1, ttl_ms=HOUR)
    assert again == first
    assert await store.get_idempotency_key("k", T0 + HOUR - 1) == first
    assert await store.get_idempotency_key("k", T0 + HOUR) is None
    later = await store.claim_idempotency_key("k", "hash-2", 11, now=T0 + HOUR, ttl_ms=HOUR)
    assert later.task_uid == 11


async def test_pruning_drops_expired_idempotency_keys(store):
    await store.claim_idempotency_key("old", "h", 1, now=T0, ttl_ms=10)
    await store.claim_idempotency_key("new", "h", 2, now=T0, ttl_ms=HOUR)
    await store.prune_tasks(T0 + 10)
    assert await store.get_idempotency_key("old", T0) is None  # gone, not merely expired
    assert (await store.get_idempotency_key("new", T0 + 10)).task_uid == 2


async def test_a_claim_past_max_keys_evicts_the_keys_that_expire_first(store):
    for i in range(5):
        await store.claim_idempotency_key(f"k{i}", "h", i, now=T0 + i, ttl_ms=HOUR, max_keys=3)
    held = [k for k in ("k0", "k1", "k2", "k3", "k4")
            if await store.get_idempotency_key(k, T0 + 5) is not None]
    assert held == ["k2", "k3", "k4"]
    # A key claimed again after it expired replaces itself; it is not counted twice.
    await store.claim_idempotency_key("k2", "h2", 9, now=T0 + HOUR + 3, ttl_ms=HOUR, max_keys=3)
    assert (await store.get_idempotency_key("k2", T0 + HOUR + 3)).task_uid == 9
    assert (await store.get_idempotency_key("k4", T0 + HOUR + 3)).task_uid == 4


async def test_a_released_key_can_be_claimed_again_but_only_its_claimer_releases_it(store):
    await store.claim_idempotency_key("k", "h", 10, now=T0, ttl_ms=HOUR)
    assert not await store.release_idempotency_key("k", 11)
    assert (await store.get_idempotency_key("k", T0)).task_uid == 10
    assert await store.release_idempotency_key("k", 10)
    assert await store.get_idempotency_key("k", T0) is None
    assert not await store.release_idempotency_key("k", 10)
    again = await store.claim_idempotency_key("k", "h2", 12, now=T0, ttl_ms=HOUR, max_keys=1)
    assert again.task_uid == 12


# ---- settings versions


async def test_settings_versions_are_allocated_per_index_and_only_move_up(store):
    assert [await store.allocate_settings_version("movies") for _ in range(3)] == [1, 2, 3]
    assert await store.allocate_settings_version("songs") == 1
    assert await store.record_settings_version("movies", "node-a", 2) == 2
    assert await store.record_settings_version("movies", "node-a", 1) == 2
    assert await store.record_settings_version("movies", "node-b", 3) == 3
    assert await store.get_settings_versions("movies") == {"node-a": 2, "node-b": 3}
    assert await store.get_settings_versions("songs") == {}
    await store.delete_settings_versions("movies")
    assert await store.get_settings_versions("movies") == {}
    assert await store.allocate_settings_version("movies") == 1


async def test_committed_settings_only_move_to_a_higher_version(store):
    assert await store.get_committed_settings("movies") is None
    first = await store.commit_settings("movies", 2, {"sortableAttributes": ["year"], "n": None})
    assert (first.version, first.settings) == (2, {"sortableAttributes": ["year"], "n": None})
    assert await store.commit_settings("movies", 1, {"sortableAttributes": []}) == first
    assert await store.commit_settings("movies", 2, {"sortableAttributes": []}) == first
    later = await store.commit_settings("movies", 5, {"sortableAttributes": []})
    assert later.version == 5 and await store.get_committed_settings("movies") == later
    assert await store.get_committed_settings("songs") is None
    await store.delete_settings_versions("movies")
    assert await store.get_committed_settings("movies") is None


async def test_two_stores_committing_settings_keep_the_highest_version(backend):
    stores = [await backend.open(), await backend.open()]

    async def commit(version: int) -> None:
        await stores[version % 2].commit_settings("movies", version, {"v": version})

    async with trio.open_nursery() as nursery:
        for version in range(1, 11):
            nursery.start_soon(commit, version)
    for store in stores:
        assert await store.get_committed_settings("movies") == (
            await stores[0].get_committed_settings("movies"))
    assert (await stores[1].get_committed_settings("movies")).settings == {"v": 10}


# ---- index versions


async def test_index_versions_start_at_zero_and_rise_by_one_per_bump_per_index(store):
    assert await store.get_index_version("movies") == 0
    assert [await store.bump_index_version("movies") for _ in range(3)] == [1, 2, 3]
    assert await store.get_index_version("movies") == 3
    assert await store.get_index_version("songs") == 0
    assert await store.bump_index_version("songs") == 1
    assert await store.get_index_version("movies") == 3


async def test_an_index_version_outlives_the_indexs_other_records(store):
    # A deleted index's settings versions go; its catalog version must not, or a recreated index
    # could show a version a process still holds an entry of the deleted one under.
    await store.bump_index_version("movies")
    await store.allocate_settings_version("movies")
    await store.delete_settings_versions("movies")
    await store.prune_tasks(T0 + 100 * HOUR)
    assert await store.get_index_version("movies") == 1
    assert await store.bump_index_version("movies") == 2


# ---- leases


async def test_a_lease_has_one_holder_until_it_expires_or_is_released(store):
    lease = await store.acquire_lease("rebalancer", "proxy-1", now=T0, ttl_ms=1000)
    assert (lease.holder, lease.expires_at) == ("proxy-1", T0 + 1000)
    assert await store.acquire_lease("rebalancer", "proxy-2", now=T0 + 999, ttl_ms=1000) is None
    assert await store.get_lease("rebalancer", T0 + 999) == lease
    # The holder asking again extends it and keeps its token.
    again = await store.acquire_lease("rebalancer", "proxy-1", now=T0 + 500, ttl_ms=1000)
    assert (again.expires_at, again.token) == (T0 + 1500, lease.token)
    renewed = await store.renew_lease("rebalancer", "proxy-1", now=T0 + 1000, ttl_ms=1000)
    assert (renewed.expires_at, renewed.token) == (T0 + 2000, lease.token)
    assert await store.renew_lease("rebalancer", "proxy-2", now=T0 + 1000, ttl_ms=1000) is None
    # Expired: renewing fails, someone else takes it with a larger fencing token.
    assert await store.get_lease("rebalancer", T0 + 2000) is None
    assert await store.renew_lease("rebalancer", "proxy-1", now=T0 + 2000, ttl_ms=1000) is None
    taken = await store.acquire_lease("rebalancer", "proxy-2", now=T0 + 2000, ttl_ms=1000)
    assert taken.holder == "proxy-2" and taken.token > lease.token
    # Only the holder can release; after release anyone may take it, with a new token.
    assert not await store.release_lease("rebalancer", "proxy-1")
    assert await store.release_lease("rebalancer", "proxy-2")
    assert not await store.release_lease("rebalancer", "proxy-2")
    assert await store.get_lease("rebalancer", T0 + 2001) is None
    third = await store.acquire_lease("rebalancer", "proxy-1", now=T0 + 2001, ttl_ms=1000)
    assert third.token > taken.token
    assert await store.get_lease("other", T0) is None


# ---- restart


async def test_close_and_reopen_keeps_everything(backend):
    if not backend.persistent:
        pytest.skip("the memory store keeps nothing across a restart by design")
    store = await backend.open()
    uid = await store.allocate_task_uid()
    task = a_task(uid)
    await store.put_task(task)
    await store.claim_idempotency_key("k", "h", uid, now=T0, ttl_ms=HOUR)
    await store.allocate_settings_version("movies")
    await store.record_settings_version("movies", "node-a", 1)
    await store.bump_index_version("movies")
    lease = await store.acquire_lease("leader", "proxy-1", now=T0, ttl_ms=HOUR)
    await store.close()

    reopened = await backend.open()
    assert await reopened.get_task(uid) == task
    assert (await reopened.list_tasks(TaskQuery())).results == (task,)
    assert (await reopened.get_idempotency_key("k", T0)).task_uid == uid
    assert await reopened.get_settings_versions("movies") == {"node-a": 1}
    assert await reopened.allocate_settings_version("movies") == 2
    assert await reopened.get_index_version("movies") == 1
    assert await reopened.get_lease("leader", T0) == lease
    assert await reopened.allocate_task_uid() > uid


async def test_a_store_from_when_uids_began_at_1_never_hands_one_out_again(backend):
    """Stores written before uids began at 0 hold the last uid handed out (here 2, after 1 and
    2): the next uid is 3, never 0 or a uid a client already holds."""
    if not backend.persistent:
        pytest.skip("the memory store keeps nothing across a restart by design")
    await (await backend.open()).close()
    if backend.name == "sqlite":
        with sqlite3.connect(backend.config["path"]) as conn:
            conn.execute("INSERT INTO counters (name, value) VALUES ('task_uid', 2)")
    else:
        client = redis_client.Redis.from_url(backend.config["url"])
        client.set(backend.config["key_prefix"] + "task-uid", 2)
        client.close()
    reopened = await backend.open()
    assert await reopened.allocate_task_uid() == 3
    assert (await reopened.create_task(lambda uid: a_task(uid))).uid == 4


# ---- races between two store instances (two proxies)


async def test_two_stores_racing_never_hand_out_the_same_task_uid(backend):
    stores = [await backend.open(), await backend.open()]
    allocated: list[list[int]] = [[], []]

    async def allocate(which: int) -> None:
        for i in range(60):
            if i % 2:
                allocated[which].append(await stores[which].allocate_task_uid())
            else:
                task = await stores[which].create_task(lambda uid: a_task(uid))
                allocated[which].append(task.uid)

    async with trio.open_nursery() as nursery:
        for which in (0, 1):
            for _ in range(3):
                nursery.start_soon(allocate, which)
    every = allocated[0] + allocated[1]
    assert len(set(every)) == len(every) == 360


async def test_concurrent_modifications_of_one_task_lose_no_update(backend):
    stores = [await backend.open(), await backend.open()]
    await stores[0].put_task(a_task(1, node_tasks={}))
    nodes = [f"node-{i}" for i in range(24)]

    async def observe(node: str, store) -> None:
        await store.modify_task(1, lambda t: apply_node_updates(t, {node: NodeTask(1)}, T0))

    async with trio.open_nursery() as nursery:
        for i, node in enumerate(nodes):
            nursery.start_soon(observe, node, stores[i % 2])
    assert set((await stores[1].get_task(1)).node_tasks) == set(nodes)


async def test_two_stores_racing_for_a_lease_get_exactly_one_holder(backend):
    stores = [await backend.open(), await backend.open()]
    for round_ in range(3):
        now = T0 + round_ * 10_000  # each round starts after the previous lease expired
        winners: list = []

        async def try_acquire(holder: str, store, now: int = now, winners: list = winners) -> None:
            lease = await store.acquire_lease("leader", holder, now=now, ttl_ms=5_000)
            if lease is not None:
                winners.append(lease)

        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(try_acquire, f"proxy-{i}", stores[i % 2])
        assert len({lease.holder for lease in winners}) == 1
        assert await stores[round_ % 2].get_lease("leader", now) == winners[0]


async def test_two_stores_racing_for_an_idempotency_key_agree_on_one_record(backend):
    stores = [await backend.open(), await backend.open()]
    seen: list = []

    async def claim(uid: int) -> None:
        seen.append(await stores[uid % 2].claim_idempotency_key(
            "key", f"hash-{uid}", uid, now=T0, ttl_ms=HOUR))

    async with trio.open_nursery() as nursery:
        for uid in range(10):
            nursery.start_soon(claim, uid)
    assert len(set(seen)) == 1


async def test_two_stores_racing_on_settings_versions_allocate_distinct_ones(backend):
    stores = [await backend.open(), await backend.open()]
    versions: list[int] = []

    async def allocate(i: int) -> None:
        versions.append(await stores[i % 2].allocate_settings_version("movies"))

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(allocate, i)
    assert sorted(versions) == list(range(1, 21))


async def test_two_stores_racing_on_an_index_version_lose_no_bump_and_see_the_last(backend):
    stores = [await backend.open(), await backend.open()]
    versions: list[int] = []

    async def bump(i: int) -> None:
        versions.append(await stores[i % 2].bump_index_version("movies"))

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(bump, i)
    assert sorted(versions) == list(range(1, 21))
    assert [await store.get_index_version("movies") for store in stores] == [20, 20]


# ---- API keys


def _key_record(uid: str, name: str | None = None) -> dict:
    return {"uid": uid, "name": name, "description": None, "actions": ["search"],
            "indexes": ["*"], "expiresAt": None, "createdAt": T0, "updatedAt": T0}


async def test_api_keys_insert_once_and_every_change_raises_the_version(store):
    assert await store.get_api_keys_version() == 0
    assert await store.list_api_keys() == []
    assert await store.insert_api_key("a", _key_record("a")) is True
    assert await store.insert_api_key("a", _key_record("a", "again")) is False
    assert await store.get_api_keys_version() == 1
    assert await store.replace_api_key("a", _key_record("a", "renamed")) is True
    assert await store.replace_api_key("missing", _key_record("missing")) is False
    assert await store.get_api_keys_version() == 2
    assert await store.list_api_keys() == [_key_record("a", "renamed")]
    assert await store.delete_api_key("a") is True
    assert await store.delete_api_key("a") is False
    assert await store.get_api_keys_version() == 3
    assert await store.list_api_keys() == []


async def test_api_keys_are_seeded_only_into_an_empty_store(store):
    seeded = {"a": _key_record("a"), "b": _key_record("b")}
    assert await store.seed_api_keys(seeded) is True
    assert await store.seed_api_keys({"c": _key_record("c")}) is False
    assert sorted(r["uid"] for r in await store.list_api_keys()) == ["a", "b"]
    assert await store.get_api_keys_version() == 1


async def test_api_keys_are_shared_between_store_instances(backend):
    first, second = await backend.open(), await backend.open()
    await first.insert_api_key("a", _key_record("a"))
    assert await second.list_api_keys() == [_key_record("a")]
    assert await second.get_api_keys_version() == await first.get_api_keys_version() == 1


# ---- webhooks


async def test_webhooks_start_empty_and_change_as_a_whole(store):
    assert await store.get_webhooks() == {}
    stored = await store.modify_webhooks(lambda hooks: {**hooks, "a": {"uuid": "a", "url": "u"}})
    assert stored == {"a": {"uuid": "a", "url": "u"}}
    await store.modify_webhooks(lambda hooks: {**hooks, "b": {"uuid": "b", "url": "v",
                                                              "headers": {"X": "1"}}})
    assert set(await store.get_webhooks()) == {"a", "b"}
    await store.modify_webhooks(lambda hooks: {k: v for k, v in hooks.items() if k != "a"})
    assert await store.get_webhooks() == {"b": {"uuid": "b", "url": "v", "headers": {"X": "1"}}}


async def test_a_change_that_raises_leaves_the_webhooks_as_they_were(store):
    await store.modify_webhooks(lambda hooks: {"a": {"uuid": "a", "url": "u"}})

    def refuse(hooks):
        raise LookupError("no")

    with pytest.raises(LookupError):
        await store.modify_webhooks(refuse)
    assert await store.get_webhooks() == {"a": {"uuid": "a", "url": "u"}}


async def test_two_stores_adding_webhooks_at_once_lose_none(backend):
    first, second = await backend.open(), await backend.open()

    async def add(store, name):
        await store.modify_webhooks(lambda hooks: {**hooks, name: {"uuid": name, "url": "u"}})

    async with trio.open_nursery() as nursery:
        for i in range(10):
            nursery.start_soon(add, first if i % 2 else second, f"hook-{i}")
    assert set(await first.get_webhooks()) == {f"hook-{i}" for i in range(10)}
