"""Settings versions (issue #19): a change is committed once every node holds it; a node that
lags behind the committed version is not read from for that index."""

from __future__ import annotations

from miroir.cluster.settings_sync import settings_digest
from tests.proxy.harness import running_proxy
from tests.proxy.test_settings import make_index, node_settings


async def test_a_settings_change_commits_a_version_every_node_is_read_back_holding():
    async with running_proxy(nodes=3) as h:
        await make_index(h)
        created = await h.store.get_committed_settings("movies")  # creation commits version 1
        assert created.version == 1
        assert created.settings["filterableAttributes"] == ["_miroir_shard"]
        for patch in ({"sortableAttributes": ["year"]}, {"filterableAttributes": ["genre"]}):
            body = (await h.send("PATCH", "/indexes/movies/settings", patch))[1]
            assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
        committed = await h.store.get_committed_settings("movies")
        assert committed is not None and committed.version == 3
        for settings in node_settings(h).values():
            assert settings_digest(settings) == settings_digest(committed.settings)
        assert await h.store.get_settings_versions("movies") == {"n0": 3, "n1": 3, "n2": 3}
        # Deleting the index forgets its versions: a recreated index starts over.
        body = (await h.send("DELETE", "/indexes/movies"))[1]
        await h.wait_task(body["taskUid"])
        assert await h.store.get_committed_settings("movies") is None


async def test_a_node_the_rollback_missed_lags_and_serves_no_search_of_the_index():
    async with running_proxy(nodes=3, replication_factor=2) as h:
        await make_index(h)
        docs = [{"id": i, "year": 2000 + i} for i in range(20)]
        body = (await h.send("POST", "/indexes/movies/documents", docs))[1]
        await h.wait_task(body["taskUid"])
        patches = {"n1": 0}

        def refuse(node, method, path):
            if method != "PATCH" or not path.endswith("/settings"):
                return False
            if node == "n1":
                patches["n1"] += 1
                return patches["n1"] >= 2  # n1 takes the change, then misses its rollback (and repair)
            return node == "n2"  # n2 refuses the change: the change fails and rolls back

        h.transport.refuse = refuse
        body = (await h.send("PATCH", "/indexes/movies/settings",
                             {"sortableAttributes": ["year"]}))[1]
        assert (await h.wait_task(body["taskUid"]))["status"] == "failed"
        h.transport.refuse = lambda node, method, path: False
        assert node_settings(h)["n1"]["sortableAttributes"] == ["year"]  # the missed rollback
        versions = await h.store.get_settings_versions("movies")
        committed = await h.store.get_committed_settings("movies")
        assert committed.settings["sortableAttributes"] == []
        assert versions.get("n1", 0) < committed.version
        assert versions["n0"] == versions["n2"] == committed.version
        h.transport.calls.clear()
        # Sorting on `year` is refused as one node on the committed settings refuses it, and no
        # search reaches n1, whose settings would have accepted it.
        for _ in range(6):
            status, answer, _ = await h.send("POST", "/indexes/movies/search",
                                             {"q": "", "sort": ["year:asc"]})
            assert status == 400 and answer["code"] == "invalid_search_sort"
            status, answer, headers = await h.send("POST", "/indexes/movies/search", {"q": ""})
            assert status == 200 and answer["estimatedTotalHits"] == 20
            assert "X-Miroir-Degraded" not in headers
        assert not [c for c in h.transport.calls if c[0] == "n1" and c[2].endswith("/search")]


async def test_a_node_edited_behind_the_back_is_repaired_by_the_next_change():
    from tests.proxy.test_reconcile import behind_the_back

    async with running_proxy(nodes=3, replication_factor=2) as h:
        await make_index(h)
        for node in ("n0", "n1"):  # most nodes edited the same way: still not what Miroir set
            await behind_the_back(h, node, "PATCH", "/indexes/movies/settings",
                                  {"sortableAttributes": ["year"]})
        body = (await h.send("PATCH", "/indexes/movies/settings",
                             {"filterableAttributes": ["genre"]}))[1]
        assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
        committed = await h.store.get_committed_settings("movies")
        # The committed settings with the patched key as the nodes render it.
        assert committed.settings["sortableAttributes"] == []
        assert sorted(committed.settings["filterableAttributes"]) == ["_miroir_shard", "genre"]
        for settings in node_settings(h).values():
            assert settings_digest(settings) == settings_digest(committed.settings)
        versions = await h.store.get_settings_versions("movies")
        assert versions == {"n0": committed.version, "n1": committed.version,
                            "n2": committed.version}
        status, answer, _ = await h.send("POST", "/indexes/movies/search",
                                         {"q": "", "sort": ["year:asc"]})
        assert status == 400 and answer["code"] == "invalid_search_sort"
