"""Configuration: defaults, validation that names the field, env overrides, YAML round trip."""

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from miroir.config import ConfigError, config_from_dict, load_config

GOOD_NODES = [
    {"id": "n1", "address": "http://127.0.0.1:7701", "replica_group": 0},
    {"id": "n2", "address": "http://127.0.0.1:7702", "replica_group": 0},
]


def test_an_empty_file_gives_the_documented_defaults():
    config = config_from_dict({}, env={})
    assert config.shards == 64
    assert config.scatter.unavailable_shard_policy == "partial"
    assert config.task_store.backend == "sqlite"
    assert config.server.port == 7700 and config.metrics.port == 9090


@pytest.mark.parametrize(
    ("raw", "field", "reason_part"),
    [
        ({"shards": 0}, "shards", "at least 1"),
        ({"shards": "64"}, "shards", "integer"),
        ({"shards": True}, "shards", "boolean"),
        ({"replication_factor": 0}, "replication_factor", "at least 1"),
        ({"colour": "blue"}, "colour", "unknown key"),
        ({"health": {"interval": 5}}, "health.interval", "unknown key"),
        ({"health": []}, "health", "mapping"),
        ({"health": {"timeout_ms": 0}}, "health.timeout_ms", "at least 1"),
        ({"nodes": {"id": "x"}}, "nodes", "list"),
        ({"nodes": [{"address": "http://a:1"}]}, "nodes[0].id", "required"),
        ({"nodes": [{"id": "a", "address": "ftp://a"}]}, "nodes[0].address", "http"),
        ({"nodes": [{"id": "a", "address": "https://a:7700"}]}, "nodes[0].address", "TLS"),
        ({"nodes": [{"id": "a", "address": "http://a:notaport"}]}, "nodes[0].address", "port"),
        ({"nodes": [{"id": "a", "address": "http://a:1", "zone": 1}]}, "nodes[0].zone", "unknown"),
        ({"nodes": [GOOD_NODES[0], {**GOOD_NODES[1], "id": "n1"}]}, "nodes[1].id", "duplicate"),
        ({"nodes": [{**GOOD_NODES[0], "replica_group": 1}]}, "nodes[0].replica_group", "outside"),
        ({"replication_factor": 3, "nodes": GOOD_NODES}, "nodes", "fewer than replication_factor"),
        ({"scatter": {"unavailable_shard_policy": "maybe"}}, "scatter.unavailable_shard_policy", "partial"),
        ({"task_store": {"backend": "redis"}}, "task_store.url", "required"),
        ({"task_store": {"backend": "mongo"}}, "task_store.backend", "sqlite"),
        ({"task_store": {"sqlite_synchronous": "off"}}, "task_store.sqlite_synchronous", "full"),
        ({"task_store": {"threads": 0}}, "task_store.threads", "at least 1"),
        ({"idempotency": {"ttl_seconds": 0}}, "idempotency.ttl_seconds", "at least 1"),
        ({"reconcile": {"interval_seconds": 0}}, "reconcile.interval_seconds", "at least 1"),
        ({"reconcile": {"shard_pause_ms": -1}}, "reconcile.shard_pause_ms", "not be negative"),
        ({"idempotency": {"max_cached_keys": 0}}, "idempotency.max_cached_keys", "at least 1"),
        ({"server": {"port": 70000}}, "server.port", "TCP port"),
        ({"scatter": {"write_retries": -1}}, "scatter.write_retries", "at least 0"),
        ({"scatter": {"write_retry_budget_percent": 101}}, "scatter.write_retry_budget_percent",
         "between 0 and 100"),
        ({"scatter": {"node_timeout_ms": 1000, "write_deadline_ms": 999}},
         "scatter.write_deadline_ms", "at least scatter.node_timeout_ms"),
    ],
)
def test_invalid_configs_name_the_field_and_the_reason(raw, field, reason_part):
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw, env={})
    assert caught.value.field == field
    assert reason_part in caught.value.reason


def test_environment_overrides_win_over_the_file():
    config = config_from_dict(
        {"master_key": "from-file", "admin": {"api_key": "file-admin"}},
        env={"MIROIR_MASTER_KEY": "env-master", "MIROIR_NODE_MASTER_KEY": "env-node",
             "MIROIR_ADMIN_API_KEY": "env-admin"},
    )
    assert (config.master_key, config.node_master_key, config.admin.api_key) == (
        "env-master", "env-node", "env-admin")


def test_secrets_never_appear_in_repr():
    config = config_from_dict(
        {"master_key": "s3cret-master", "node_master_key": "s3cret-node", "admin": {"api_key": "s3cret-admin"}},
        env={},
    )
    assert "s3cret" not in repr(config)


def test_load_config_reads_the_file_named_by_miroir_config(tmp_path):
    path = tmp_path / "miroir.yaml"
    path.write_text(yaml.safe_dump({"shards": 16, "nodes": GOOD_NODES}))
    config = load_config(env={"MIROIR_CONFIG": str(path)})
    assert config.shards == 16 and [n.id for n in config.nodes] == ["n1", "n2"]
    path.write_text("shards: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(path), env={})
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(str(tmp_path / "missing.yaml"), env={})


@given(
    shards=st.integers(1, 4096),
    groups=st.integers(1, 3),
    per_group=st.integers(1, 4),
    rf=st.integers(1, 4),
    policy=st.sampled_from(["partial", "error"]),
    master=st.none() | st.text(min_size=1, max_size=20),
)
def test_yaml_round_trip_is_lossless(shards, groups, per_group, rf, policy, master):
    rf = min(rf, per_group)
    nodes = [
        {"id": f"g{g}n{i}", "address": f"http://127.0.0.1:{7700 + g * 10 + i}", "replica_group": g}
        for g in range(groups) for i in range(per_group)
    ]
    raw = {"shards": shards, "replica_groups": groups, "replication_factor": rf, "nodes": nodes,
           "scatter": {"unavailable_shard_policy": policy}, "master_key": master}
    config = config_from_dict(raw, env={})
    again = config_from_dict(yaml.safe_load(config.to_yaml()), env={})
    assert again == config
    assert again.topology().nodes == config.topology().nodes
