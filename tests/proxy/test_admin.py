"""/_miroir/* routes, request failures feeding node health, metrics names, JSON access log."""

import logging

import orjson

from miroir.proxy import create_app
from tests.proxy.harness import running_proxy


async def test_topology_and_shards_describe_the_live_cluster():
    async with running_proxy(nodes=4, replica_groups=2, shards=8) as h:
        status, topology, _ = await h.send("GET", "/_miroir/topology")
        assert status == 200
        assert (topology["shards"], topology["replicationFactor"], topology["replicaGroups"]) == (
            8, 1, 2,
        )
        assert topology["fullyCovered"] is True
        nodes = {n["id"]: n for n in topology["nodes"]}
        assert set(nodes) == {"n0", "n1", "n2", "n3"}
        for node_id, node in nodes.items():
            assert node["state"] == "active"
            assert node["shardCount"] == len(h.cluster.shard_map.shards_of(node_id))
            assert node["address"].startswith("http://")
        # Each group's shard counts add up to S (RF=1).
        assert sum(n["shardCount"] for n in nodes.values() if n["replicaGroup"] == 0) == 8
        status, shards, _ = await h.send("GET", "/_miroir/shards")
        assert status == 200 and len(shards["shards"]) == 8
        assert shards["shards"][3]["groups"][1]["owners"] == list(h.cluster.shard_map.owners(1, 3))


async def test_request_failures_mark_nodes_and_ready_turns_503_when_a_shard_is_unreadable():
    async with running_proxy(nodes=2, shards=4) as h:
        assert (await h.send("GET", "/_miroir/ready"))[0] == 200
        h.transport.down.add("n0")
        for _ in range(3):  # unhealthy_threshold defaults to 3
            await h.cluster.call("n0", "GET", "/health")
        assert h.cluster.state_of("n0").value == "failed"
        status, body, _ = await h.send("GET", "/_miroir/ready")
        assert (status, body["code"]) == (503, "miroir_not_ready")
        topology = (await h.send("GET", "/_miroir/topology"))[1]
        assert topology["fullyCovered"] is False


async def test_metrics_expose_the_reference_names():
    async with running_proxy(nodes=2) as h:
        body = (await h.send("POST", "/indexes/m/documents", [{"id": 1}]))[1]
        await h.wait_task(body["taskUid"])
        response = await h.client.get("/_miroir/metrics")
        assert response.status_code == 200
        text = (await response.get_data()).decode()
        for name in (
            "miroir_requests_total", "miroir_request_duration_seconds",
            "miroir_requests_in_flight", "miroir_node_healthy",
            "miroir_node_request_duration_seconds", "miroir_node_errors_total",
            "miroir_shard_coverage", "miroir_degraded_shards_total",
            "miroir_scatter_fan_out_size", "miroir_tasks_total",
        ):
            assert name in text
        assert 'miroir_tasks_total{type="documentAdditionOrUpdate"} 1.0' in text
        assert 'miroir_node_healthy{node="n0"} 1.0' in text


async def test_one_json_log_line_per_request_without_keys(caplog):
    key = "secret-master-key-42"
    async with running_proxy(nodes=1, master_key=key) as h:
        with caplog.at_level(logging.INFO, logger="miroir.access"):
            await h.send("GET", "/indexes?limit=5", headers={"Authorization": f"Bearer {key}"})
            await h.send("GET", "/indexes", headers={"Authorization": "Bearer wrong"})
    lines = [r.getMessage() for r in caplog.records if r.name == "miroir.access"]
    assert len(lines) == 2
    first, second = (orjson.loads(line) for line in lines)
    assert (first["method"], first["path"], first["status"]) == ("GET", "/indexes", 200)
    assert second["status"] == 403
    assert all(key not in line and "wrong" not in line for line in lines)


def test_the_search_routes_are_registered():
    from miroir.config import config_from_dict
    from miroir.proxy import routes_search

    app = create_app(config_from_dict({}, env={}), transport=object(), store=object())
    assert app.blueprints[routes_search.blueprint.name] is routes_search.blueprint
