"""Settings: sequential apply with rollback, `_miroir_shard` always filterable and never shown."""

import copy

from tests.proxy.harness import running_proxy


def node_settings(h, index="movies"):
    return {node: copy.deepcopy(app.engine.indexes[index].settings) for node, app in h.nodes.items()}


async def make_index(h):
    body = (await h.send("POST", "/indexes", {"uid": "movies", "primaryKey": "id"}))[1]
    assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"


async def test_patch_reaches_every_node_and_reads_hide_the_shard_field():
    async with running_proxy(nodes=3) as h:
        await make_index(h)
        patch = {"filterableAttributes": ["genre"], "sortableAttributes": ["year"]}
        status, body, _ = await h.send("PATCH", "/indexes/movies/settings", patch)
        assert status == 202 and body["type"] == "settingsUpdate"
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "succeeded"
        assert task["details"] == patch
        for settings in node_settings(h).values():
            assert sorted(settings["filterableAttributes"]) == ["_miroir_shard", "genre"]
            assert settings["sortableAttributes"] == ["year"]
        status, settings, _ = await h.send("GET", "/indexes/movies/settings")
        assert status == 200 and settings["filterableAttributes"] == ["genre"]
        status, value, _ = await h.send("GET", "/indexes/movies/settings/filterable-attributes")
        assert (status, value) == (200, ["genre"])


async def test_the_shard_field_cannot_be_removed():
    async with running_proxy(nodes=2) as h:
        await make_index(h)
        for method, path, body in [
            ("PUT", "/indexes/movies/settings/filterable-attributes", []),
            ("DELETE", "/indexes/movies/settings/filterable-attributes", None),
            ("PATCH", "/indexes/movies/settings", {"filterableAttributes": None}),
            ("DELETE", "/indexes/movies/settings", None),
        ]:
            status, reply, _ = await h.send(method, path, body)
            assert status == 202, reply
            assert (await h.wait_task(reply["taskUid"]))["status"] == "succeeded"
            for settings in node_settings(h).values():
                assert settings["filterableAttributes"] == ["_miroir_shard"]
            assert (await h.send("GET", "/indexes/movies/settings"))[1]["filterableAttributes"] == []


async def test_a_node_failing_midway_rolls_back_the_nodes_already_changed():
    async with running_proxy(nodes=3) as h:
        await make_index(h)
        before = node_settings(h)
        h.transport.refuse = lambda node, method, path: (
            node == "n2" and method == "PATCH" and path.endswith("/settings")
        )
        status, body, _ = await h.send(
            "PATCH", "/indexes/movies/settings", {"searchableAttributes": ["title"]}
        )
        assert status == 202
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "failed"
        assert task["error"]["code"] == "miroir_node_unavailable"
        assert node_settings(h) == before
        patches = [c[0] for c in h.transport.calls if c[1] == "PATCH"]
        # n0 then n1 changed, n2 refused, then n1 and n0 restored (reverse order).
        assert patches[-5:] == ["n0", "n1", "n2", "n1", "n0"]


async def test_an_invalid_setting_is_refused_at_once_and_changes_nothing():
    async with running_proxy(nodes=2) as h:
        await make_index(h)
        before = node_settings(h)
        status, body, _ = await h.send("PATCH", "/indexes/movies/settings", {"rankingRules": 5})
        assert status == 400
        assert body["code"] == "invalid_settings_ranking_rules"
        assert set(body) == {"message", "code", "type", "link"}
        assert node_settings(h) == before


async def test_settings_update_creates_a_missing_index_everywhere():
    async with running_proxy(nodes=2) as h:
        body = (await h.send("PATCH", "/indexes/fresh/settings", {"stopWords": ["the"]}))[1]
        assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
        for app in h.nodes.values():
            settings = app.engine.indexes["fresh"].settings
            assert settings["stopWords"] == ["the"]
            assert settings["filterableAttributes"] == ["_miroir_shard"]
