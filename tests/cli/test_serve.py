"""`miroir serve`: configuration handling and the hypercorn settings derived from it."""

from __future__ import annotations

import attrs
import pytest

from miroir.cli import main
from miroir.cli.serve import (
    APP_FACTORY_PATH,
    SHUTDOWN_MARGIN_SECONDS,
    hypercorn_config,
    with_overrides,
)
from miroir.config import ConfigError, config_from_dict

NODES = [{"id": "n1", "address": "http://127.0.0.1:7701"}]


def test_overrides_replace_only_what_was_given():
    config = config_from_dict({"nodes": NODES, "server": {"port": 7000, "workers": 3}}, env={})
    assert with_overrides(config) == config
    changed = with_overrides(config, bind="0.0.0.0", port=7100, workers=2, metrics_port=9191)
    assert (changed.server.bind, changed.server.port, changed.server.workers) == ("0.0.0.0", 7100, 2)
    assert changed.metrics.port == 9191
    assert changed.nodes == config.nodes and changed.scatter == config.scatter


@pytest.mark.parametrize(
    "overrides", [{"port": 70000}, {"port": -1}, {"workers": 0}, {"metrics_port": 65536}]
)
def test_bad_overrides_are_config_errors_naming_the_flag(overrides):
    config = config_from_dict({"nodes": NODES}, env={})
    with pytest.raises(ConfigError) as caught:
        with_overrides(config, **overrides)
    assert caught.value.field.startswith("--")


def test_hypercorn_runs_the_trio_worker_with_a_drain_budget_above_the_node_timeout():
    config = config_from_dict(
        {"nodes": NODES, "server": {"bind": "127.0.0.1", "port": 7123, "workers": 2},
         "scatter": {"node_timeout_ms": 2500}},
        env={},
    )
    hconfig = hypercorn_config(config)
    assert hconfig.worker_class == "trio"
    assert hconfig.workers == 2
    assert hconfig.bind == ["127.0.0.1:7123"]
    assert hconfig.application_path == APP_FACTORY_PATH
    # A write in flight may run its node-write retries: twice the node timeout by default.
    assert hconfig.graceful_timeout == pytest.approx(2 * 2.5 + SHUTDOWN_MARGIN_SECONDS)
    without_retries = attrs.evolve(config, scatter=attrs.evolve(config.scatter, write_retries=0))
    assert hypercorn_config(without_retries).graceful_timeout == pytest.approx(
        2.5 + SHUTDOWN_MARGIN_SECONDS)
    ipv6 = with_overrides(config, bind="::1")
    assert hypercorn_config(ipv6).bind == ["[::1]:7123"]


def test_an_invalid_config_file_exits_2_naming_the_field(tmp_path, capsys):
    path = tmp_path / "miroir.yaml"
    path.write_text("shards: 0\nnodes: []\n")
    assert main(["serve", "--config", str(path)]) == 2
    assert "shards" in capsys.readouterr().err


def test_a_missing_config_file_exits_2(tmp_path, capsys):
    assert main(["serve", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_a_config_without_nodes_exits_2(tmp_path, capsys):
    path = tmp_path / "miroir.yaml"
    path.write_text("shards: 4\n")
    assert main(["serve", "--config", str(path)]) == 2
    assert "no nodes" in capsys.readouterr().err


def test_a_single_startup_error_is_unwrapped_from_trios_exception_groups():
    from miroir.cli.serve import single_error

    leaf = OSError(98, "Address already in use")
    nested = ExceptionGroup("outer", [ExceptionGroup("inner", [leaf])])
    assert single_error(nested) is leaf
    several = ExceptionGroup("outer", [OSError(), ValueError()])
    assert single_error(several) is several
