"""The reconciler (anti-entropy, issue #19): replicas and settings changed behind Miroir's back
are found and repaired from the majority / the committed settings."""

from __future__ import annotations

import orjson
import trio

from miroir.cluster.reconcile import Reconciler
from miroir.cluster.runtime import task_uid_of
from miroir.cluster.services import ReconcileSettings
from miroir.cluster.settings_sync import settings_digest
from miroir.core.placement import shard_for_key
from tests.proxy.harness import running_proxy
from tests.proxy.test_settings import make_index, node_settings

SHARDS = 8


async def behind_the_back(h, node, method, path, body):
    """A write straight to one node, as an operator with curl would do it."""
    result = await h.transport.request(node, method, path, body=orjson.dumps(body),
                                       headers=[("content-type", "application/json")],
                                       deadline=float("inf"))
    uid = task_uid_of(result)
    assert uid is not None, result
    views = await h.cluster.wait_for_node_tasks({node: uid})
    assert views[node]["status"] == "succeeded"


def replicas(h, doc_id):
    """node -> the document as that owner holds it (None when it lacks it)."""
    shard = shard_for_key(str(doc_id), SHARDS)
    shard_map = h.cluster.shard_map
    owners = [n for g in range(shard_map.replica_groups) for n in shard_map.owners(g, shard)]
    return {n: h.nodes[n].engine.indexes["movies"].documents.get(str(doc_id)) for n in owners}


async def test_a_document_changed_or_deleted_on_one_replica_is_repaired_from_the_majority():
    async with running_proxy(nodes=4, replica_groups=2, replication_factor=2,
                             shards=SHARDS) as h:
        await make_index(h)
        docs = [{"id": i, "title": f"doc {i}"} for i in range(30)]
        body = (await h.send("POST", "/indexes/movies/documents", docs))[1]
        await h.wait_task(body["taskUid"])
        changed, deleted = replicas(h, 3), replicas(h, 4)
        victim, other = sorted(changed)[1], sorted(deleted)[2]
        tampered = {**changed[victim], "title": "edited behind the back"}
        await behind_the_back(h, victim, "POST", "/indexes/movies/documents", [tampered])
        await behind_the_back(h, other, "POST", "/indexes/movies/documents/delete-batch", ["4"])
        assert replicas(h, 3)[victim]["title"] == "edited behind the back"
        assert replicas(h, 4)[other] is None

        reconciler = Reconciler(h.cluster, shard_pause_s=0)
        report = await reconciler.run_pass()
        found = report.indexes["movies"]
        assert found.documents_differing == 2 and found.documents_repaired == 2
        assert found.ties == 0
        assert {d["title"] for d in replicas(h, 3).values()} == {"doc 3"}
        assert all(d is not None and d["title"] == "doc 4" for d in replicas(h, 4).values())
        # A second pass finds nothing left.
        again = (await reconciler.run_pass()).indexes["movies"]
        assert again.documents_differing == 0 and again.shards_checked == SHARDS
        assert report.totals["repairs:documents"] == 2


async def test_settings_changed_on_one_node_are_repaired_to_the_committed_ones():
    async with running_proxy(nodes=3, replication_factor=2) as h:
        await make_index(h)
        body = (await h.send("PATCH", "/indexes/movies/settings",
                             {"sortableAttributes": ["year"]}))[1]
        assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
        committed = await h.store.get_committed_settings("movies")
        await behind_the_back(h, "n1", "PATCH", "/indexes/movies/settings",
                              {"sortableAttributes": [], "searchableAttributes": ["title"]})
        assert settings_digest(node_settings(h)["n1"]) != settings_digest(committed.settings)

        report = (await Reconciler(h.cluster, shard_pause_s=0).run_pass()).indexes["movies"]
        assert report.lagging_settings == ["n1"] and report.repaired_settings == ["n1"]
        for settings in node_settings(h).values():
            assert settings_digest(settings) == settings_digest(committed.settings)
        assert (await h.store.get_settings_versions("movies"))["n1"] == committed.version


async def test_an_index_without_committed_settings_commits_what_most_nodes_hold():
    async with running_proxy(nodes=3) as h:
        await make_index(h)
        await h.store.delete_settings_versions("movies")  # as an index from before versions
        await behind_the_back(h, "n2", "PATCH", "/indexes/movies/settings",
                              {"sortableAttributes": ["year"]})
        report = (await Reconciler(h.cluster, shard_pause_s=0).run_pass()).indexes["movies"]
        assert report.repaired_settings == ["n2"]
        committed = await h.store.get_committed_settings("movies")
        assert committed.settings["sortableAttributes"] == []
        assert node_settings(h)["n2"]["sortableAttributes"] == []


async def test_the_consistency_route_shows_the_last_pass_and_metrics_count_it():
    async with running_proxy(nodes=3) as h:
        status, body, _ = await h.send("GET", "/_miroir/consistency")
        assert status == 200 and body == {"enabled": False}
    settings = ReconcileSettings(interval_s=0.05, shard_pause_s=0)
    async with running_proxy(nodes=3, replication_factor=2, reconcile=settings) as h:
        await make_index(h)
        await behind_the_back(h, "n0", "PATCH", "/indexes/movies/settings",
                              {"sortableAttributes": ["year"]})
        with trio.fail_after(10):
            while True:
                body = (await h.send("GET", "/_miroir/consistency"))[1]
                if body["totals"].get("repairs:settings") and "movies" in body["indexes"]:
                    break
                await trio.sleep(0.02)
        assert body["enabled"] is True and body["passes"] >= 1
        assert isinstance(body["lastPassFinishedAt"], int)  # the last pass that finished
        assert "movies" in body["indexes"]
        metrics = (await h.client.get("/_miroir/metrics"))
        text = (await metrics.get_data()).decode()
        assert 'miroir_reconcile_repairs_total{kind="settings"} 1.0' in text
        assert node_settings(h)["n0"]["sortableAttributes"] == []


async def test_an_index_being_created_is_left_alone():
    """Created on the nodes but `_miroir_shard` not filterable yet (the creation's second step):
    nothing is committed or repaired."""
    async with running_proxy(nodes=3) as h:
        for node in ("n0", "n1", "n2"):
            await behind_the_back(h, node, "POST", "/indexes", {"uid": "movies",
                                                                "primaryKey": "id"})
        await behind_the_back(h, "n0", "PATCH", "/indexes/movies/settings",
                              {"filterableAttributes": ["_miroir_shard"]})
        report = (await Reconciler(h.cluster, shard_pause_s=0).run_pass()).indexes["movies"]
        assert report.repaired_settings == [] and report.skipped is not None
        assert await h.store.get_committed_settings("movies") is None
        assert node_settings(h)["n0"]["filterableAttributes"] == ["_miroir_shard"]


async def _two_against_two(h, doc_id):
    """Doc `doc_id` at "v1" on every owner, then "v2" written while group 0's owners refuse it:
    group 1 met quorum, group 0 missed it, and the replicas tie two against two."""
    body = (await h.send("POST", "/indexes/movies/documents",
                         [{"id": doc_id, "title": "v1"}]))[1]
    await h.wait_task(body["taskUid"])
    shard = shard_for_key(str(doc_id), SHARDS)
    group0 = set(h.cluster.shard_map.owners(0, shard))
    h.transport.refuse = lambda node, method, path: (
        node in group0 and method == "POST" and path.startswith("/indexes/movies/documents"))
    status, body, headers = await h.send("POST", "/indexes/movies/documents",
                                         [{"id": doc_id, "title": "v2"}])
    h.transport.refuse = lambda node, method, path: False
    assert status == 202 and headers.get("x-miroir-degraded"), (status, body, headers)
    await h.wait_task(body["taskUid"])
    titles = {n: d["title"] for n, d in replicas(h, doc_id).items()}
    assert sorted(titles.values()) == ["v1", "v1", "v2", "v2"], titles
    return shard


async def test_a_two_against_two_tie_goes_to_the_group_that_met_write_quorum_last():
    async with running_proxy(nodes=4, replica_groups=2, replication_factor=2,
                             shards=SHARDS) as h:
        await make_index(h)
        shard = await _two_against_two(h, 5)
        assert h.cluster.last_quorum.group("movies", shard) == 1

        report = (await Reconciler(h.cluster, shard_pause_s=0).run_pass()).indexes["movies"]
        assert report.documents_differing == 1 and report.documents_repaired == 2
        assert report.ties == 1 and report.ties_by_last_quorum == 1
        # Group 0 ranks first in placement order: without the record, "v1" would have won.
        assert {d["title"] for d in replicas(h, 5).values()} == {"v2"}
        assert report.render()["documents"]["tiesByLastQuorum"] == 1


async def test_without_a_last_quorum_record_a_tie_goes_to_placement_order():
    """Another process's writes (or a restart) leave no record: the fallback is deterministic,
    the first owner in placement order (lowest group first)."""
    async with running_proxy(nodes=4, replica_groups=2, replication_factor=2,
                             shards=SHARDS) as h:
        await make_index(h)
        await _two_against_two(h, 5)
        h.cluster.last_quorum.forget("movies")

        report = (await Reconciler(h.cluster, shard_pause_s=0).run_pass()).indexes["movies"]
        assert report.ties == 1 and report.ties_by_last_quorum == 0
        assert {d["title"] for d in replicas(h, 5).values()} == {"v1"}
