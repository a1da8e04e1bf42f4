"""`GET`/`POST /_miroir/consistency` name each index by its client uid, with its node-side name
in `nodeIndex`; a node-side index no client uid reaches (an orphan) is listed apart, under
`orphans`, so it can never be mistaken for the client uid spelled like it."""

from __future__ import annotations

import orjson

from miroir.cluster.runtime import task_uid_of
from miroir.cluster.services import ReconcileSettings
from tests.proxy.harness import running_proxy
from tests.proxy.test_swap_indexes import ADMIN, KEYS, MASTER, done, fill

SHARDS = 8


async def tamper(h, node, index, doc):
    """A document written straight to one node's node-side index, behind Miroir's back."""
    result = await h.transport.request(node, "POST", f"/indexes/{index}/documents",
                                       body=orjson.dumps([doc]),
                                       headers=[("content-type", "application/json")],
                                       deadline=float("inf"))
    views = await h.cluster.wait_for_node_tasks({node: task_uid_of(result)})
    assert views[node]["status"] == "succeeded"


async def test_the_consistency_report_names_client_uids_after_a_swap_and_keeps_orphans_apart():
    settings = ReconcileSettings(interval_s=3600, shard_pause_s=0)
    async with running_proxy(nodes=3, replication_factor=2, shards=SHARDS, reconcile=settings,
                             **KEYS) as h:
        await fill(h, "blue", "blue")
        await fill(h, "green", "green", count=5)
        await done(h, h.send("POST", "/swap-indexes", [{"indexes": ["blue", "green"]}],
                             headers=MASTER))
        # Client `blue` now reads node-side `green`: one replica of a document there differs.
        node, held = next((n, app.engine.indexes["green"].documents.get("0"))
                          for n, app in sorted(h.nodes.items())
                          if app.engine.indexes["green"].documents.get("0"))
        await tamper(h, node, "green", {**held, "color": "edited behind the back"})

        status, body, _ = await h.send("POST", "/_miroir/consistency", headers=ADMIN)
        assert status == 200, body
        assert sorted(body["indexes"]) == ["blue", "green"]
        assert body["indexes"]["blue"]["documents"]["documentsDiffering"] == 1
        assert body["indexes"]["green"]["documents"]["documentsDiffering"] == 0
        assert body["indexes"]["blue"]["nodeIndex"] == "green"
        assert body["indexes"]["green"]["nodeIndex"] == "blue"
        assert body["orphans"] == {}
        assert (await h.send("GET", "/_miroir/consistency", headers=ADMIN))[1] == body

        # Node-side `blue` given to an alias and the alias removed: no client uid reaches it,
        # while client `blue` still reads node-side `green`.
        status, _, _ = await h.send("PUT", "/_miroir/aliases/cyan", {"index": "blue"},
                                    headers=ADMIN)
        assert status == 200
        status, _, _ = await h.send("DELETE", "/_miroir/aliases/cyan", headers=ADMIN)
        assert status in (200, 204)
        await h.cluster.layouts.refresh()
        body = (await h.send("POST", "/_miroir/consistency", headers=ADMIN))[1]
        assert sorted(body["indexes"]) == ["blue"]
        assert body["indexes"]["blue"]["nodeIndex"] == "green"
        assert body["indexes"]["blue"]["documents"]["documentsDiffering"] == 0  # repaired
        assert sorted(body["orphans"]) == ["blue"]
        assert body["orphans"]["blue"]["nodeIndex"] == "blue"
        assert body["orphans"]["blue"]["documents"]["shardsChecked"] == SHARDS
