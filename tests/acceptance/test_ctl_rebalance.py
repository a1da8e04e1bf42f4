"""`miroir ctl` driving a real rebalance (issue #18): a node added, the rebalance followed with
`miroir-ctl rebalance status --watch` in a pseudo-terminal whose screen is read back (pexpect
runs it, pyte renders what a terminal would show), then a node drained and removed the same
way, and a replica group added. The engine is on (`rebalance.enabled`) and paced so the copy
takes a few polls."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pexpect
import pyte
import pytest

from miroir.cli import main

from .conftest import ADMIN_KEY, MASTER_KEY
from .rebalance_run import all_documents, fill, start_extra_node, stop_extra_nodes

pytestmark = pytest.mark.acceptance

SHARDS = 16
DOCUMENTS = 3000
ENGINE = {"rebalance": {"enabled": True, "max_docs_per_second": 600, "grace_ms": 300},
          "reconcile": {"interval_seconds": 3600}}
COLUMNS, LINES = 120, 30


def miroir_ctl() -> list[str]:
    """The installed console script (the venv's), or the module when it is not on PATH."""
    script = shutil.which("miroir-ctl", path=os.path.dirname(sys.executable))
    if script:
        return [script]
    return [sys.executable, "-c", "import sys; from miroir.cli.ctl import main; sys.exit(main())"]


def watch_on_a_terminal(url: str) -> tuple[int, list[str], set[str]]:
    """Run `rebalance status --watch` in a pty; (exit status, the last screen, every state
    the screen showed while it ran)."""
    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.ByteStream(screen)
    command = [*miroir_ctl(), "rebalance", "status", "--watch", "--interval", "0.2"]
    env = {**os.environ, "MIROIR_URL": url, "MIROIR_ADMIN_KEY": ADMIN_KEY, "TERM": "xterm",
           "MIROIR_CREDENTIALS": "/nonexistent"}
    child = pexpect.spawn(command[0], command[1:], env=env, dimensions=(LINES, COLUMNS),
                          timeout=240)
    states: set[str] = set()
    while True:
        try:
            stream.feed(child.read_nonblocking(4096, timeout=240))
        except pexpect.EOF:
            break
        for line in screen.display:
            for state in ("waiting", "copying", "grace", "done", "failed"):
                if line.strip().startswith(state):
                    states.add(state)
    child.close()
    return child.exitstatus, [line.rstrip() for line in screen.display], states


def test_add_a_node_watching_the_rebalance_on_screen_then_drain_and_remove(
        launch, tmp_path, capsys, monkeypatch):
    cluster = launch(nodes=3, shards=SHARDS, sections=ENGINE)
    expected = fill(cluster, MASTER_KEY, DOCUMENTS)
    extra = start_extra_node(cluster, "node-4", tmp_path)
    extras = [extra]
    monkeypatch.setenv("MIROIR_URL", cluster.url)
    monkeypatch.setenv("MIROIR_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("MIROIR_CREDENTIALS", str(tmp_path / "none"))

    def ctl(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(["ctl", *args])
        return code, capsys.readouterr().out

    try:
        code, out = ctl("--json", "rebalance", "plan", "add-node", "node-4", extra.address,
                        "--group", "0")
        plan = json.loads(out)["plan"]
        assert code == 0 and plan["documentsCopied"] > 0
        code, out = ctl("nodes", "add", "node-4", extra.address, "--group", "0")
        assert code == 0 and "rebalance" in out and "started" in out
        status, screen, states = watch_on_a_terminal(cluster.url)
        shown = "\n".join(screen)
        assert status == 0, shown
        assert "copying" in states, shown  # the live bar was seen while shards were copied
        moved = plan["shardReplicasCopied"]
        assert f"shards {moved}/{moved}" in shown and "done" in shown, shown
        assert "100%" in shown, shown
        assert all_documents(cluster, MASTER_KEY) == expected
        code, out = ctl("--json", "status")
        assert code == 0 and "node-4" in {n["id"] for n in json.loads(out)["nodes"]}

        # drain node-2 and forget it, through ctl
        code, _ = ctl("rebalance", "start", "drain", "node-2")
        assert code == 0
        code, out = ctl("--json", "rebalance", "status", "--watch", "--interval", "0.2")
        assert code == 0 and json.loads(out)["state"] == "done"
        code, out = ctl("nodes", "remove", "node-2")
        assert code == 0 and "forget_node" in out
        code, out = ctl("--json", "nodes", "list")
        assert "node-2" not in {n["id"] for n in json.loads(out)["nodes"]}
        assert all_documents(cluster, MASTER_KEY) == expected

        # a second replica group of one node: every shard copied to it once
        (second,) = [start_extra_node(cluster, "g1-a", tmp_path)]
        extras.append(second)
        code, out = ctl("groups", "add", f"g1-a={second.address}")
        assert code == 0 and "add_group" in out
        code, out = ctl("--json", "rebalance", "status", "--watch", "--interval", "0.2")
        assert code == 0 and json.loads(out)["shardsTotal"] == SHARDS
        code, out = ctl("--json", "stats")
        groups = json.loads(out)["indexes"]["docs"]["groups"]
        assert [g["numberOfDocuments"] for g in groups] == [DOCUMENTS, DOCUMENTS]
        assert ctl("verify", "--full")[0] == 0
    finally:
        stop_extra_nodes(extras)
