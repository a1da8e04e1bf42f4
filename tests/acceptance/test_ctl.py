"""`miroir ctl` against real processes (issue #18): devnodes and `miroir serve` on loopback, the
command run as an operator runs it (in this process through `miroir.cli.main`, which is what
the console script calls; the `--watch` screen test runs the installed `miroir-ctl` under a
pseudo-terminal). Differences are made behind Miroir's back, straight on a devnode."""

from __future__ import annotations

import json
import os

import pytest

from miroir.cli import main
from miroir.cli.dev import free_port
from miroir.core.placement import shard_for_key

from .conftest import ADMIN_KEY, FAST_HEALTH, MASTER_KEY, node_sdk, owners, sdk, wait

pytestmark = pytest.mark.acceptance

SHARDS = 8
DOCUMENTS = 60
QUIET_RECONCILER = {"reconcile": {"interval_seconds": 3600}}  # it would repair what we break


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """2 groups of 2 nodes, RF 1, 8 shards; `movies` with 60 documents."""
    from miroir.cli.dev import local_cluster

    sections = {"health": FAST_HEALTH, **QUIET_RECONCILER}
    with local_cluster(tmp_path_factory.mktemp("ctl"), nodes=4, groups=2, rf=1, shards=SHARDS,
                       master_key=MASTER_KEY, admin_key=ADMIN_KEY, sections=sections) as running:
        client = sdk(running)
        wait(client, client.create_index("movies", {"primaryKey": "id"}))
        docs = [{"id": i, "title": f"movie {i}", "year": 1990 + i % 30} for i in range(DOCUMENTS)]
        wait(client, client.index("movies").add_documents(docs))
        yield running


@pytest.fixture
def ctl(fleet, capsys, monkeypatch, tmp_path):
    """ctl(*args) -> (exit code, stdout, stderr), connected through the environment."""
    monkeypatch.setenv("MIROIR_URL", fleet.url)
    monkeypatch.setenv("MIROIR_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("MIROIR_API_KEY", MASTER_KEY)
    monkeypatch.setenv("MIROIR_CREDENTIALS", str(tmp_path / "no-credentials"))

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["ctl", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_status_shows_every_node_by_group_and_full_coverage(ctl, fleet):
    code, out, _ = ctl("--json", "status")
    status = json.loads(out)
    assert code == 0 and status["fullyCovered"] is True
    assert sorted(n["id"] for n in status["nodes"]) == sorted(n.node_id for n in fleet.nodes)
    assert {n["membership"] for n in status["nodes"]} == {"active"}
    assert status["storeBackend"] == "sqlite" and status["degraded"] == []
    assert status["rebalance"]["state"] == "idle" and status["rebalanceEnabled"] is True
    code, out, _ = ctl("status")
    assert code == 0
    for node in fleet.nodes:
        assert node.node_id in out and node.address in out
    assert "fully covered yes" in out and "Rebalance: none" in out and "engine off" not in out


def test_stats_count_documents_per_node_and_shard(ctl, fleet):
    code, out, _ = ctl("stats", "--json")
    stats = json.loads(out)
    index = stats["indexes"]["movies"]
    assert code == 0 and index["numberOfDocuments"] == DOCUMENTS
    assert [g["numberOfDocuments"] for g in index["groups"]] == [DOCUMENTS, DOCUMENTS]
    for shard in index["shards"]:
        expected = sum(1 for i in range(DOCUMENTS) if shard_for_key(str(i), SHARDS) == shard["shard"])
        assert [r["numberOfDocuments"] for r in shard["replicas"]] == [expected, expected]
        assert shard["replicas"][0]["node"] in owners(fleet, 0, shard["shard"])
    code, out, _ = ctl("stats", "movies", "--shards")
    assert code == 0 and "Index movies: 60 documents" in out and "skew per group" in out
    code, _, err = ctl("stats", "nope")
    assert code == 1 and "index_not_found" in err


def test_nodes_list_and_changes_without_the_engine(ctl, fleet):
    code, out, _ = ctl("nodes", "list", "--json")
    assert code == 0 and len(json.loads(out)["nodes"]) == 4
    # a dry run: the plan, with the documents each move copies
    code, out, _ = ctl("--json", "nodes", "add", "node-9", "http://127.0.0.1:9", "--group", "0",
                       "--dry-run")
    plan = json.loads(out)["plan"]
    assert code == 0 and plan["shardReplicasCopied"] == len(plan["moves"]) > 0
    per_shard = {s: sum(1 for i in range(DOCUMENTS) if shard_for_key(str(i), SHARDS) == s)
                 for s in range(SHARDS)}
    for move in plan["moves"]:
        assert move["gains"] == ["node-9"] and move["documents"] == per_shard[move["shard"]]
    code, out, _ = ctl("rebalance", "plan", "drain", fleet.nodes[0].node_id)
    assert code == 0 and "documents to copy" in out
    # Miroir refuses (no such node): ctl says why and exits 1, and nothing changed
    code, _, err = ctl("nodes", "drain", "no-such-node")
    assert code == 1 and "miroir_node_not_found" in err
    code, out, _ = ctl("nodes", "list", "--json")
    assert {n["membership"] for n in json.loads(out)["nodes"]} == {"active"}
    code, _, err = ctl("groups", "add", "g-a=http://127.0.0.1:9", "--dry-run")
    assert code == 0
    assert ctl("groups", "add", "no-address")[0] == 2


def test_verify_catches_a_replica_changed_behind_mirroirs_back(ctl, fleet):
    code, out, _ = ctl("verify", "--full")
    assert code == 0 and "consistent" in out
    shard = shard_for_key("7", SHARDS)
    (victim,) = owners(fleet, 1, shard)
    node = node_sdk(fleet, victim)
    task = node.index("movies").add_documents([{"id": 7, "title": "edited by hand",
                                                "year": 1, "_miroir_shard": shard}])
    node.wait_for_task(task.task_uid, timeout_in_ms=30_000, interval_in_ms=20)
    code, out, _ = ctl("verify", "movies", "--full")
    assert code == 1
    assert f"shard {shard}" in out and victim in out and "ids 7" in out
    code, out, _ = ctl("verify", "--json", "--full")
    report = json.loads(out)
    bad = [s for s in report["indexes"][0]["shards"] if not s["consistent"]]
    assert code == 1 and [(s["shard"], s["differingIds"]) for s in bad] == [(shard, ["7"])]
    # a reconciler pass repairs it (a tie at RG 2, RF 1: the lowest group's version wins,
    # which is Miroir's own), and verify is clean again
    code, out, _ = ctl("--json", "reconcile")
    repaired = json.loads(out)["indexes"]["movies"]["documents"]
    assert code == 0 and repaired["documentsRepaired"] == 1 and repaired["shardsDiffering"] == [shard]
    assert ctl("verify", "--full")[0] == 0
    assert sdk(fleet).index("movies").get_document(7).title == "movie 7"


def test_settings_diff_names_the_node_and_key_that_differ(ctl, fleet):
    assert ctl("settings", "diff", "movies")[0] == 0
    victim = fleet.nodes[2].node_id
    node = node_sdk(fleet, victim)
    before = node.index("movies").get_settings()["searchableAttributes"]
    task = node.index("movies").update_searchable_attributes(["title"])
    node.wait_for_task(task.task_uid, timeout_in_ms=30_000, interval_in_ms=20)
    try:
        code, out, _ = ctl("settings", "diff", "movies")
        assert code == 1 and "searchableAttributes" in out and victim in out
        code, out, _ = ctl("--json", "settings", "diff", "movies")
        assert json.loads(out)["differingKeys"] == ["searchableAttributes"]
        assert json.loads(out)["notCommitted"] in ([], [victim])
        code, out, _ = ctl("verify", "movies")
        assert code == 1 and "searchableAttributes" in out
    finally:
        task = node.index("movies").update_searchable_attributes(before)
        node.wait_for_task(task.task_uid, timeout_in_ms=30_000, interval_in_ms=20)
    assert ctl("settings", "diff", "nope")[0] == 1


def test_tasks_list_show_and_cancel(ctl, fleet):
    code, out, _ = ctl("--json", "tasks", "list", "--index", "movies", "--limit", "5")
    page = json.loads(out)
    assert code == 0 and {t["indexUid"] for t in page["results"]} == {"movies"}
    uid = page["results"][0]["uid"]
    code, out, _ = ctl("tasks", "show", str(uid), "--json")
    shown = json.loads(out)
    assert code == 0 and shown["uid"] == uid and set(shown["miroir"]["nodeTasks"])
    code, out, _ = ctl("tasks", "list", "--status", "succeeded")
    assert code == 0 and "documentAdditionOrUpdate" in out
    code, out, _ = ctl("--json", "tasks", "cancel", str(uid))
    assert code == 0 and json.loads(out)["type"] == "taskCancelation"
    assert ctl("tasks", "cancel")[0] == 2
    assert ctl("tasks", "show", "999999")[0] == 1


def test_exit_codes_for_usage_and_an_unreachable_miroir(ctl, monkeypatch):
    monkeypatch.delenv("MIROIR_URL")
    code, _, err = ctl("status")
    assert code == 2 and "no Miroir URL" in err
    code, _, err = ctl("--url", f"http://127.0.0.1:{free_port()}", "status")
    assert code == 3 and "cannot reach" in err
    with pytest.raises(SystemExit) as usage:
        ctl("nodes", "frobnicate")
    assert usage.value.code == 2


def test_credentials_file_contexts_and_its_mode(ctl, fleet, monkeypatch, tmp_path):
    monkeypatch.delenv("MIROIR_URL")
    monkeypatch.delenv("MIROIR_ADMIN_KEY")
    path = tmp_path / "credentials"
    path.write_text(json.dumps({"current-context": "broken", "contexts": {
        "broken": {"url": fleet.url, "admin-key": "wrong-key-123"},
        "good": {"url": fleet.url, "admin-key": ADMIN_KEY}}}))
    monkeypatch.setenv("MIROIR_CREDENTIALS", str(path))
    os.chmod(path, 0o644)
    code, out, err = ctl("status")
    assert code == 2 and "chmod 600" in err
    os.chmod(path, 0o600)
    code, out, err = ctl("status")
    assert code == 1 and "miroir_invalid_auth" in err and "wrong-key-123" not in out + err
    assert ctl("--context", "good", "status")[0] == 0
    monkeypatch.setenv("MIROIR_CONTEXT", "good")
    assert ctl("status", "--json")[0] == 0
    code, out, _ = ctl("contexts")
    assert code == 0 and "good" in out and ADMIN_KEY not in out and "wrong-key" not in out
    assert ctl("--context", "missing", "status")[0] == 2


def test_aliases_against_the_real_routes(ctl, fleet):
    client = sdk(fleet)
    wait(client, client.create_index("series", {"primaryKey": "id"}))
    wait(client, client.index("series").add_documents([{"id": 1, "title": "one"}]))
    code, out, _ = ctl("aliases", "set", "shows", "series")
    assert code == 0 and "shows -> series" in out
    code, out, _ = ctl("--json", "aliases", "list")
    assert code == 0
    listed = {a["alias"]: a for a in json.loads(out)["results"]}
    assert listed["shows"]["index"] == "series" and listed["shows"]["shards"] == SHARDS
    assert client.index("shows").get_document(1).title == "one"  # the alias serves
    code, out, _ = ctl("--json", "aliases", "show", "shows")
    assert code == 0 and json.loads(out)["index"] == "series"
    code, out, _ = ctl("--json", "stats", "shows")
    assert code == 0 and json.loads(out)["indexes"]["shows"]["nodeIndex"] == "series"
    code, out, _ = ctl("aliases", "delete", "shows")
    assert code == 0 and "deleted" in out
    code, _, err = ctl("aliases", "show", "shows")
    assert code == 1 and "miroir_alias_not_found" in err


def test_status_exits_1_and_names_the_degraded_pairs_when_a_node_dies(launch, capsys,
                                                                      monkeypatch, tmp_path):
    import time

    from miroir.cli.dev import stop_process

    cluster = launch(nodes=2, shards=4)
    monkeypatch.setenv("MIROIR_URL", cluster.url)
    monkeypatch.setenv("MIROIR_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("MIROIR_CREDENTIALS", str(tmp_path / "none"))
    dead = cluster.nodes[1]
    lost = [s for s in range(4) if owners(cluster, 0, s) == [dead.node_id]]
    stop_process(dead.process)
    give_up = time.monotonic() + 30
    while True:  # until the health checker (150 ms probes) marks it failed
        capsys.readouterr()
        code = main(["ctl", "--json", "status"])
        status = json.loads(capsys.readouterr().out)
        if code == 1 or time.monotonic() > give_up:
            break
        time.sleep(0.2)
    assert code == 1 and status["fullyCovered"] is False
    assert sorted(d["shard"] for d in status["degraded"]) == lost
    assert {n["id"]: n["state"] for n in status["nodes"]}[dead.node_id] == "failed"
    capsys.readouterr()
    assert main(["ctl", "status"]) == 1
    out = capsys.readouterr().out
    assert "fully covered NO" in out and f"{len(lost)} degraded" in out
    # stats still answer, showing the dead node as unknown rather than failing
    assert main(["ctl", "--json", "stats"]) == 0
    nodes = {n["id"]: n for n in json.loads(capsys.readouterr().out)["nodes"]}
    assert nodes[dead.node_id]["answered"] is False
