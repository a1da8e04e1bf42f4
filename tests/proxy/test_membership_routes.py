"""`/_miroir/nodes`, `/_miroir/groups`, `/_miroir/rebalance`: listing, plans, refusals, errors."""

from __future__ import annotations

import attrs
import pytest

from miroir.core.errors import ERROR_LINK_BASE
from tests.proxy.harness import running_proxies, running_proxy

ADD = {"id": "n9", "address": "http://node9.invalid:7700", "group": 0}


def is_miroir_error(body, code):
    return body == {"message": body["message"], "code": code, "type": body["type"],
                    "link": ERROR_LINK_BASE + code}


async def test_nodes_lists_every_node_with_its_membership_and_the_epoch():
    async with running_proxy(nodes=3, shards=8) as h:
        status, listed, _ = await h.send("GET", "/_miroir/nodes")
        assert status == 200 and listed["epoch"] == 1
        assert [n["id"] for n in listed["nodes"]] == ["n0", "n1", "n2"]
        assert {(n["membership"], n["state"]) for n in listed["nodes"]} == {("active", "active")}
        assert sum(n["shardCount"] for n in listed["nodes"]) == 8


async def test_a_dry_run_answers_the_plan_and_changes_nothing():
    async with running_proxy(nodes=3, shards=16, replication_factor=2) as h:
        status, answer, _ = await h.send("POST", "/_miroir/nodes?dryRun=true", ADD)
        assert status == 200 and answer["dryRun"] is True and answer["kind"] == "add_node"
        plan = answer["plan"]
        assert all(move["gains"] == ["n9"] for move in plan["moves"])
        assert plan["shardReplicasCopied"] == len(plan["moves"]) > 0
        assert plan["fractionCopied"] == plan["shardReplicasCopied"] / (16 * 2)
        status, answer, _ = await h.send("POST", "/_miroir/nodes/n1/drain?dryRun=true")
        assert status == 200 and all(m["loses"] == ["n1"] for m in answer["plan"]["moves"])
        assert (await h.send("GET", "/_miroir/nodes"))[1]["epoch"] == 1
        assert "n9" not in h.cluster.node_ids()


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/_miroir/nodes", ADD),
    ("POST", "/_miroir/nodes/n1/drain", None),
    ("DELETE", "/_miroir/nodes/n1?force=true", None),
    ("POST", "/_miroir/groups", {"nodes": [{"id": "g1", "address": "http://g1.invalid:1"}]}),
])
async def test_a_valid_change_is_refused_when_the_engine_is_off(method, path, body):
    async with running_proxy(nodes=3) as h:
        assert h.app.extensions["miroir"].config.rebalance.enabled  # the default
        state = h.app.extensions["miroir"]
        state.config = attrs.evolve(state.config, rebalance=attrs.evolve(
            state.config.rebalance, enabled=False))
        status, answer, _ = await h.send(method, path, body)
        assert status == 501 and is_miroir_error(answer, "miroir_rebalance_unavailable")
        assert answer["type"] == "system"
        assert (await h.send("GET", "/_miroir/nodes"))[1]["epoch"] == 1


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), [
    ("POST", "/_miroir/nodes", {**ADD, "group": 4}, 400, "miroir_invalid_node"),
    ("POST", "/_miroir/nodes", {**ADD, "id": "n0"}, 409, "miroir_node_already_exists"),
    ("POST", "/_miroir/nodes", [ADD], 400, "miroir_invalid_node"),
    ("POST", "/_miroir/nodes/zz/drain", None, 404, "miroir_node_not_found"),
    ("DELETE", "/_miroir/nodes/n1", None, 409, "miroir_node_not_drained"),
    ("DELETE", "/_miroir/nodes/zz?force=true", None, 404, "miroir_node_not_found"),
    ("DELETE", "/_miroir/nodes/n1?force=maybe", None, 400, "bad_request"),
    ("POST", "/_miroir/groups", {"nodes": "n5"}, 400, "miroir_invalid_group"),
])
async def test_a_bad_change_is_a_miroir_error(method, path, body, status, code):
    async with running_proxy(nodes=3) as h:
        got, answer, _ = await h.send(method, path, body)
        assert (got, answer["code"]) == (status, code) and is_miroir_error(answer, code)


async def test_malformed_json_and_a_missing_admin_key_get_the_usual_errors():
    async with running_proxy(nodes=2, admin_key="adm") as h:
        status, answer, _ = await h.send("POST", "/_miroir/nodes", ADD)
        assert (status, answer["code"]) == (401, "miroir_invalid_auth")
        auth = {"Authorization": "Bearer adm"}
        status, answer, _ = await h.send("POST", "/_miroir/nodes", b"{", headers=auth)
        assert (status, answer["code"]) == (400, "malformed_payload")


async def test_rebalance_is_idle_without_a_migration_engine():
    async with running_proxy(nodes=2) as h:
        status, answer, _ = await h.send("GET", "/_miroir/rebalance")
        assert status == 200
        assert (answer["state"], answer["shardsDone"], answer["shardsTotal"]) == ("idle", 0, 0)


async def test_a_change_is_judged_against_the_stored_topology_not_this_processs_copy():
    """Another process published epoch 2 (n9 joining); this one has not adopted it yet, and
    still refuses to add n9 twice."""
    from miroir.cluster.topology_sync import publish
    from miroir.core.node_state import NodeState
    from miroir.core.topology import Node

    async with running_proxies(2, nodes=2) as (a, b):
        await publish(a.cluster, 1, a.cluster.durable_topology.with_node(
            Node("n9", "http://node9.invalid:7700", 0, NodeState.JOINING)))
        assert b.cluster.epoch == 1
        status, answer, _ = await b.send("POST", "/_miroir/nodes?dryRun=true", ADD)
        assert (status, answer["code"]) == (409, "miroir_node_already_exists")
