"""The resharding routes (`miroir.proxy.routes_reshard`): behind the admin key, Miroir-shaped
errors for every refusal (index, body, one at a time, no rebalance, allowed windows with a fixed
clock and `force`), the 202 and record shapes `miroir ctl reshard` reads, listing newest first,
and a rollback before the flip abandoning the reshard (the engine runs by hand here)."""

from __future__ import annotations

import datetime

import pytest

from miroir.cluster.reshard import Resharder, ReshardSettings
from miroir.core.errors import ERROR_LINK_BASE
from tests.proxy.harness import running_proxy

# Friday 2026-12-04 22:00 UTC: outside "02:00-06:00 UTC", whose next opening is 02:00 tomorrow.
NOW_MS = int(datetime.datetime(2026, 12, 4, 22, 0, tzinfo=datetime.UTC).timestamp() * 1000)
WINDOW = {"allowed_windows": ["02:00-06:00 UTC"]}
SHOWN = {"id", "index", "fromShards", "toShards", "state", "documentsCopied", "documentsTotal",
         "documentsRecopied", "documentsPerSecond", "etaSeconds", "errors", "startedAtMs", "finishedAtMs"}


class FixedClock:
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


async def create(h, uid="movies", count=10):
    created = (await h.send("POST", "/indexes", {"uid": uid, "primaryKey": "id"}))[1]
    await h.wait_task(created["taskUid"])
    if count:
        written = (await h.send("POST", f"/indexes/{uid}/documents",
                                [{"id": i} for i in range(count)]))[1]
        assert (await h.wait_task(written["taskUid"]))["status"] == "succeeded"


def is_error(status, answer, expected_status, code):
    assert (status, answer["code"]) == (expected_status, code), answer
    assert answer["link"] == ERROR_LINK_BASE + code and answer["message"]
    return True


async def test_a_reshard_starts_with_202_and_shows_the_agreed_shapes():
    async with running_proxy(nodes=2, shards=4, clock=FixedClock(NOW_MS)) as h:
        await create(h)
        status, started, _ = await h.send("POST", "/_miroir/indexes/movies/reshard",
                                          {"shards": 16})
        assert status == 202
        assert started == {"reshardId": started["reshardId"], "index": "movies",
                           "fromShards": 4, "toShards": 16, "state": "waiting"}
        status, shown, _ = await h.send("GET", f"/_miroir/reshards/{started['reshardId']}")
        assert status == 200 and set(shown) == SHOWN
        assert (shown["index"], shown["fromShards"], shown["toShards"], shown["state"],
                shown["startedAtMs"], shown["finishedAtMs"]) == ("movies", 4, 16, "waiting",
                                                                 NOW_MS, None)
        status, listed, _ = await h.send("GET", "/_miroir/reshards")
        assert status == 200 and listed["total"] == 1 and listed["results"] == [shown]


async def test_bad_requests_are_refused_with_clear_codes():
    async with running_proxy(nodes=2, shards=4) as h:
        await create(h, count=0)
        for body in ({"shards": 0}, {"shards": "8"}, {"shards": True}, {"shards": 4}, {},
                     [8], {"shards": 8, "replicas": 2}, {"shards": 8, "force": "yes"},
                     {"shards": 100_000}):
            status, answer, _ = await h.send("POST", "/_miroir/indexes/movies/reshard", body)
            assert is_error(status, answer, 400, "miroir_invalid_reshard"), body
        status, answer, _ = await h.send("POST", "/_miroir/indexes/nothing/reshard", {"shards": 8})
        assert is_error(status, answer, 404, "index_not_found") and "`nothing`" in answer["message"]
        status, answer, _ = await h.send("GET", "/_miroir/reshards/rs-9")
        assert is_error(status, answer, 404, "miroir_reshard_not_found")
        status, answer, _ = await h.send("POST", "/_miroir/reshards/rs-9/rollback")
        assert is_error(status, answer, 404, "miroir_reshard_not_found")
        status, answer, _ = await h.send("POST", "/_miroir/indexes/bad uid!/reshard", {"shards": 2})
        assert (status, answer["code"]) == (400, "invalid_index_uid")
        assert (await h.send("GET", "/_miroir/reshards"))[1] == {"results": [], "total": 0}


async def test_one_reshard_at_a_time_and_none_during_a_rebalance():
    async with running_proxy(nodes=2, shards=4) as h:
        await create(h, "a", count=0)
        await create(h, "b", count=0)
        assert (await h.send("POST", "/_miroir/indexes/a/reshard", {"shards": 8}))[0] == 202
        status, answer, _ = await h.send("POST", "/_miroir/indexes/b/reshard", {"shards": 8})
        assert is_error(status, answer, 409, "miroir_reshard_in_progress")
        assert "`a`" in answer["message"]
    async with running_proxy(nodes=2, shards=4) as h:
        await create(h, "a", count=0)
        await h.store.put_record_if("rebalance", 0, {"id": "rb-2", "state": "copying"})
        status, answer, _ = await h.send("POST", "/_miroir/indexes/a/reshard", {"shards": 8})
        assert is_error(status, answer, 409, "miroir_rebalance_in_progress")
        assert (await h.send("GET", "/_miroir/reshards"))[1]["total"] == 0


async def test_outside_the_allowed_windows_it_is_refused_naming_the_next_window_unless_forced():
    clock = FixedClock(NOW_MS)
    async with running_proxy(nodes=2, shards=4, clock=clock, resharding=WINDOW) as h:
        await create(h, count=0)
        status, answer, _ = await h.send("POST", "/_miroir/indexes/movies/reshard", {"shards": 8})
        assert is_error(status, answer, 409, "miroir_reshard_outside_window")
        assert "2026-12-05T02:00:00Z" in answer["message"] and "`force: true`" in answer["message"]
        assert (await h.send("GET", "/_miroir/reshards"))[1]["total"] == 0
        clock.now = NOW_MS + 5 * 3600 * 1000  # 03:00 UTC: inside the window
        status, answer, _ = await h.send("POST", "/_miroir/indexes/movies/reshard", {"shards": 8})
        assert status == 202, answer
    async with running_proxy(nodes=2, shards=4, clock=FixedClock(NOW_MS),
                             resharding=WINDOW) as h:
        await create(h, count=0)
        status, answer, _ = await h.send("POST", "/_miroir/indexes/movies/reshard",
                                         {"shards": 8, "force": True})
        assert status == 202 and answer["toShards"] == 8


async def test_a_rollback_before_the_flip_abandons_the_reshard_and_later_ones_are_refused():
    async with running_proxy(nodes=2, shards=4) as h:
        await create(h, count=20)
        first = (await h.send("POST", "/_miroir/indexes/movies/reshard", {"shards": 8}))[1]
        # Another live process still routes by the layouts before the mirror: nothing is
        # copied (the reshard waits for it, and names it).
        await h.store.put_process_record("proc-other", {"epoch": 1, "layouts": 0},
                                         h.cluster.now_ms(), 60_000)
        engine = Resharder(h.cluster, ReshardSettings(poll_s=0.01, settle_ms=0,
                                                      max_docs_per_second=10**6))
        assert await engine.drive_once() == "waiting"
        assert await engine.drive_once() == "waiting"
        record = (await h.store.get_record("reshards")).value["reshards"][0]
        assert record["waitingFor"] == ["proc-other"] and record["documentsCopied"] == 0
        layouts = await h.cluster.layouts.refresh()
        assert layouts.mirror_of("movies").node_index == record["shadow"] == "movies--s8-1"
        status, answer, _ = await h.send("POST", f"/_miroir/reshards/{first['reshardId']}/rollback")
        assert status == 202 and set(answer) == SHOWN
        assert await engine.drive_once() == "waiting"  # the mirror is dropped: waits again
        await h.store.delete_process_record("proc-other")
        assert await engine.drive_once() == "rolledBack"
        assert await engine.drive_once() is None
        shown = (await h.send("GET", f"/_miroir/reshards/{first['reshardId']}"))[1]
        assert shown["state"] == "rolledBack" and shown["finishedAtMs"] is not None
        # The shadow is gone from every node, the index untouched, the layouts back as before.
        for node in h.cluster.all_nodes():
            listed = (await h.cluster.call(node, "GET", "/indexes")).json()["results"]
            assert [i["uid"] for i in listed] == ["movies"]
        layouts = await h.cluster.layouts.refresh()
        assert layouts.node_index("movies") == "movies" and not layouts.mirrors
        assert not layouts.node_shards
        status, answer, _ = await h.send("POST", f"/_miroir/reshards/{first['reshardId']}/rollback")
        assert is_error(status, answer, 409, "miroir_reshard_rollback_too_late")
        # A second reshard may start now; the history lists it first.
        second = (await h.send("POST", "/_miroir/indexes/movies/reshard", {"shards": 8}))[1]
        listed = (await h.send("GET", "/_miroir/reshards"))[1]["results"]
        assert [r["id"] for r in listed] == [second["reshardId"], first["reshardId"]]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/_miroir/indexes/movies/reshard", {"shards": 32}),
    ("GET", "/_miroir/reshards", None),
    ("GET", "/_miroir/reshards/rs-1", None),
    ("POST", "/_miroir/reshards/rs-1/rollback", None)])
async def test_a_reshard_route_wants_the_admin_key(method, path, body):
    async with running_proxy(nodes=2, shards=4, master_key="master-key-1234567",
                             admin_key="admin-key-1234567") as h:
        status, answer, _ = await h.send(method, path, body)
        assert (status, answer["code"]) == (401, "miroir_invalid_auth")
        status, answer, _ = await h.send(method, path, body,
                                         headers={"X-Admin-Key": "admin-key-1234567"})
        assert status in (200, 404), answer  # through the key check (no index, no reshard)


async def test_a_membership_change_is_refused_while_a_reshard_runs():
    async with running_proxy(nodes=2, shards=4) as h:
        await create(h, count=0)
        assert (await h.send("POST", "/_miroir/indexes/movies/reshard", {"shards": 8}))[0] == 202
        status, answer, _ = await h.send("POST", "/_miroir/nodes/n1/drain")
        assert is_error(status, answer, 409, "miroir_reshard_in_progress")
        status, answer, _ = await h.send("POST", "/_miroir/nodes/n1/drain?dryRun=true")
        assert status == 200, answer  # a plan is still shown


async def test_deleting_the_index_mid_reshard_fails_it_and_removes_the_shadow():
    async with running_proxy(nodes=2, shards=4) as h:
        await create(h, count=30)
        started = (await h.send("POST", "/_miroir/indexes/movies/reshard", {"shards": 8}))[1]
        await h.store.put_process_record("proc-other", {"epoch": 1, "layouts": 0},
                                         h.cluster.now_ms(), 60_000)
        engine = Resharder(h.cluster, ReshardSettings(poll_s=0, settle_ms=0))
        assert await engine.drive_once() == "waiting"
        # The shadow is invisible to clients meanwhile.
        assert [i["uid"] for i in (await h.send("GET", "/indexes"))[1]["results"]] == ["movies"]
        deleted = (await h.send("DELETE", "/indexes/movies"))[1]
        await h.wait_task(deleted["taskUid"])
        await h.store.delete_process_record("proc-other")
        for _ in range(5):
            await engine.drive_once()
        shown = (await h.send("GET", f"/_miroir/reshards/{started['reshardId']}"))[1]
        assert shown["state"] == "failed" and "was deleted" in shown["errors"][-1]
        for node in h.cluster.all_nodes():
            assert (await h.cluster.call(node, "GET", "/indexes")).json()["results"] == []


async def test_the_reshard_metrics_follow_the_engine():
    async with running_proxy(nodes=2, shards=4) as h:
        await create(h, count=12)
        await h.send("POST", "/_miroir/indexes/movies/reshard", {"shards": 8})
        engine = Resharder(h.cluster, ReshardSettings(poll_s=0, settle_ms=0, grace_ms=0))
        metrics = h.app.extensions["miroir"].metrics
        engine.observers.append(metrics.observe_reshard)
        while await engine.drive_once() not in ("done", None):
            pass
        text = (await (await h.client.get("/_miroir/metrics")).get_data()).decode()
        assert 'miroir_reshard_state{state="done"} 1.0' in text
        assert 'miroir_reshard_state{state="copying"} 0.0' in text
        assert "miroir_reshard_documents_copied 12.0" in text
        assert "miroir_reshard_documents_total 12.0" in text
        assert "miroir_reshard_errors 0.0" in text
