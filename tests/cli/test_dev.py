"""`miroir dev`: the node plan, the generated config, and the process plumbing (real processes)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from miroir.cli import dev, main
from miroir.cli.dev import DevError, build_config, plan_nodes, start_nodes, stop_all


@given(groups=st.integers(1, 5), rf=st.integers(1, 4), extra=st.integers(0, 7))
@example(groups=2, rf=1, extra=1)  # 3 nodes over 2 groups: sizes 2 and 1
def test_nodes_are_spread_evenly_and_every_group_can_hold_rf_replicas(groups, rf, extra):
    nodes = groups * rf + extra
    plan = plan_nodes(nodes, groups, rf)
    sizes = Counter(group for _, group in plan)
    assert len(plan) == nodes
    assert len({node_id for node_id, _ in plan}) == nodes
    assert set(sizes) == set(range(groups))
    assert max(sizes.values()) - min(sizes.values()) <= 1
    assert min(sizes.values()) >= rf


@given(groups=st.integers(1, 5), rf=st.integers(1, 4), short=st.integers(1, 4))
def test_too_few_nodes_for_the_groups_and_rf_is_refused(groups, rf, short):
    nodes = groups * rf - short
    with pytest.raises(DevError):
        plan_nodes(nodes, groups, rf)


def test_bad_flags_exit_2_with_a_message_and_start_nothing(capsys, monkeypatch):
    def no_spawning(*args, **kwargs):
        raise AssertionError("nothing may start when the flags are wrong")

    monkeypatch.setattr(dev, "spawn", no_spawning)
    assert main(["dev", "--nodes", "1", "--rf", "2"]) == 2
    assert "--rf 2" in capsys.readouterr().err
    assert main(["dev", "--shards", "0"]) == 2
    assert "--shards" in capsys.readouterr().err


def test_the_generated_config_lists_every_node_with_its_group(tmp_path):
    class Node:
        def __init__(self, node_id, group, port):
            self.node_id, self.replica_group = node_id, group
            self.address = f"http://127.0.0.1:{port}"

    nodes = [Node("node-1", 0, 7701), Node("node-2", 1, 7702), Node("node-3", 0, 7703)]
    config = build_config(
        nodes, shards=16, rf=1, groups=2, node_master_key="node-key", master_key="mk",
        admin_key="ak", port=7800, task_store_path=str(tmp_path / "t.sqlite3"),
    )
    assert [(n.id, n.address, n.replica_group) for n in config.nodes] == [
        ("node-1", "http://127.0.0.1:7701", 0),
        ("node-2", "http://127.0.0.1:7702", 1),
        ("node-3", "http://127.0.0.1:7703", 0),
    ]
    assert (config.shards, config.replication_factor, config.replica_groups) == (16, 1, 2)
    assert (config.master_key, config.node_master_key, config.admin.api_key) == ("mk", "node-key", "ak")
    assert config.task_store.path == str(tmp_path / "t.sqlite3")
    path = dev.write_config(config, tmp_path / "miroir.yaml")
    assert os.stat(path).st_mode & 0o077 == 0, "the file holds keys: owner only"
    from miroir.config import load_config

    assert load_config(str(path), env={}) == config


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); it is gone for our purposes once its parent reaps it.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(") ", 1)[1].startswith("Z")


def _wait_gone(pids, patience=15.0) -> list[int]:
    give_up = time.monotonic() + patience
    while time.monotonic() < give_up:
        alive = [pid for pid in pids if not _gone(pid)]
        if not alive:
            return []
        time.sleep(0.05)
    return alive


@pytest.mark.acceptance
def test_nodes_start_healthy_and_stop_leaving_no_process(tmp_path):
    nodes = start_nodes(plan_nodes(2, 1, 1), master_key="k" * 24, workdir=tmp_path)
    try:
        assert all(dev.health_ok(n.address) for n in nodes)
        assert len({n.port for n in nodes}) == 2
    finally:
        stop_all(nodes)
    assert all(n.process.returncode is not None for n in nodes)
    assert _wait_gone([n.process.pid for n in nodes]) == []


@pytest.mark.acceptance
def test_a_node_whose_port_was_taken_is_started_again_elsewhere(tmp_path, monkeypatch):
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    taken = squatter.getsockname()[1]
    real_free_port = dev.free_port
    handed_out = []

    def racy_free_port(host=dev.LOOPBACK):
        port = taken if not handed_out else real_free_port(host)
        handed_out.append(port)
        return port

    monkeypatch.setattr(dev, "free_port", racy_free_port)
    try:
        nodes = start_nodes([("node-1", 0)], master_key="k" * 24, workdir=tmp_path)
        try:
            assert handed_out[0] == taken
            assert nodes[0].port != taken and dev.health_ok(nodes[0].address)
        finally:
            stop_all(nodes)
    finally:
        squatter.close()


_ORPHAN_SCRIPT = """
import pathlib, sys, time
from miroir.cli.dev import plan_nodes, start_nodes
nodes = start_nodes(plan_nodes(2, 1, 1), master_key="k" * 24, workdir=pathlib.Path(sys.argv[1]))
print(" ".join(str(n.process.pid) for n in nodes), flush=True)
time.sleep(600)
"""


@pytest.mark.acceptance
def test_nodes_die_with_a_parent_that_is_killed_outright(tmp_path):
    parent = subprocess.Popen(
        [sys.executable, "-c", _ORPHAN_SCRIPT, str(tmp_path)],
        stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    pids: list[int] = []
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2 and not any(_gone(pid) for pid in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _wait_gone(pids) == [], "children outlived a SIGKILLed parent"
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait()
        parent.stdout.close()
        for pid in pids:  # never leave an orphan behind, even when the test failed
            if not _gone(pid):
                os.killpg(pid, signal.SIGKILL)


def test_a_generated_key_that_starts_with_a_dash_still_starts_a_node(tmp_path):
    # secrets.token_urlsafe may begin with "-"; argparse would take it for an option.
    from miroir.cli import build_parser
    from miroir.cli.dev import node_command

    argv = node_command("127.0.0.1", 7701, "-starts-with-a-dash", tmp_path)
    args = build_parser().parse_args(argv[argv.index("devnode"):])
    assert (args.master_key, args.port) == ("-starts-with-a-dash", 7701)
