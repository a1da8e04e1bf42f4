"""`miroir ctl reshard | reshards | aliases`, `status` and `rebalance status` against a fake admin
API that answers the agreed shapes (tests/cli/fake_admin.py): cases a real Miroir makes hard to
stage in a unit test (a reshard at a chosen progress, a Miroir without resharding answering
501, a rebalance waiting for a process and having lost a replica, an answer that is not
Miroir's). The real routes are exercised by tests/acceptance/test_ctl_reshard.py and
tests/acceptance/test_ctl.py. Also the connection rules that need no Miroir at all
(credentials file mode, keys never printed)."""

from __future__ import annotations

import json
import os

import pytest

from miroir.cli import main
from miroir.cli.ctl import connection
from tests.cli.fake_admin import ADMIN_KEY, NEXT_WINDOW, RunningFake


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setenv("MIROIR_CREDENTIALS", str(tmp_path / "none"))
    for name in ("MIROIR_URL", "MIROIR_ADMIN_KEY", "MIROIR_API_KEY", "MIROIR_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    with RunningFake() as running:
        yield running


@pytest.fixture
def ctl(fake, capsys):
    def run(*args: str, key: str = ADMIN_KEY) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["ctl", "--url", fake.url, "--admin-key", key, *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_aliases_set_list_show_delete(ctl, fake):
    code, out, _ = ctl("aliases", "set", "movies", "movies_v2")
    assert code == 0 and "movies -> movies_v2" in out
    assert fake.fake.seen[-1][:2] == ("PUT", "/_miroir/aliases/movies")
    assert fake.fake.seen[-1][3] == {"index": "movies_v2"}
    code, out, _ = ctl("--json", "aliases", "list")
    assert code == 0 and json.loads(out) == {
        "results": [{"alias": "movies", "index": "movies_v2", "shards": 8}], "total": 1}
    code, out, _ = ctl("aliases", "list")
    assert "movies_v2" in out
    fake.fake.aliases["gone"] = {"alias": "gone", "index": None, "shards": 8}  # renamed away
    code, out, _ = ctl("aliases", "list")
    assert code == 0 and "(none)" in out
    del fake.fake.aliases["gone"]
    assert ctl("aliases", "show", "movies")[0] == 0
    code, out, _ = ctl("aliases", "delete", "movies")
    assert code == 0 and "deleted" in out
    code, _, err = ctl("aliases", "show", "movies")
    assert code == 1 and "miroir_alias_not_found" in err


def test_reshard_starts_and_watches_to_the_end(ctl, fake):
    code, out, _ = ctl("--json", "reshard", "movies", "--shards", "16")
    started = json.loads(out)
    assert code == 0 and started["toShards"] == 16 and started["state"] == "copying"
    assert fake.fake.seen[-1][3] == {"shards": 16, "force": False}
    code, out, _ = ctl("reshard", "movies", "--shards", "32", "--watch", "--interval", "0.01")
    assert code == 0 and "8 -> 32 shards, done" in out
    polls = [s for s in fake.fake.seen if s[1].startswith("/_miroir/reshards/rs-2")]
    assert len(polls) == fake.fake.steps
    code, out, _ = ctl("--json", "reshard", "movies", "--watch-id", "rs-1", "--interval", "0.01")
    assert code == 0 and json.loads(out)["state"] == "done"


def test_reshard_outside_a_window_shows_the_next_window_and_exits_1(ctl, fake):
    fake.fake.in_window = False
    code, out, err = ctl("reshard", "movies", "--shards", "16")
    assert code == 1 and NEXT_WINDOW in err and "miroir_reshard_outside_window" in err
    code, out, _ = ctl("--json", "reshard", "movies", "--shards", "16", "--force")
    assert code == 0 and fake.fake.seen[-1][3] == {"shards": 16, "force": True}
    assert ctl("reshard", "movies")[0] == 2  # neither --shards nor --watch-id


def test_a_wrong_key_is_refused_and_never_printed(ctl):
    code, out, err = ctl("aliases", "list", key="secret-wrong-key-987")
    assert code == 1 and "miroir_invalid_auth" in err
    assert "secret-wrong-key-987" not in out + err
    assert "secret" not in repr(connection.Connection("http://x", "secret", "secret2"))


def test_the_credentials_file_must_be_private(tmp_path, monkeypatch):
    path = tmp_path / "credentials"
    path.write_text("contexts:\n  a: {url: 'http://a:1', admin-key: k1}\n"
                    "  b: {url: 'http://b:2', admin-key: k2}\ncurrent-context: b\n")
    monkeypatch.setenv("MIROIR_CREDENTIALS", str(path))
    for mode in (0o640, 0o604, 0o660):
        os.chmod(path, mode)
        with pytest.raises(connection.UsageError, match="chmod 600"):
            connection.resolve(url=None, admin_key=None, api_key=None, context=None, environ={})
    os.chmod(path, 0o600)
    chosen = connection.resolve(url=None, admin_key=None, api_key=None, context=None, environ={})
    assert (chosen.url, chosen.admin_key, chosen.context) == ("http://b:2", "k2", "b")
    chosen = connection.resolve(url=None, admin_key=None, api_key=None, context="a",
                                environ={"MIROIR_ADMIN_KEY": "from-env"})
    assert (chosen.url, chosen.admin_key) == ("http://a:1", "from-env")
    chosen = connection.resolve(url="http://flag:3", admin_key="flag-key", api_key=None,
                                context=None, environ={"MIROIR_URL": "http://env:4"})
    assert (chosen.url, chosen.admin_key) == ("http://flag:3", "flag-key")
    with pytest.raises(connection.UsageError, match="no context `c`"):
        connection.resolve(url=None, admin_key=None, api_key=None, context="c", environ={})


def test_no_admin_key_gets_a_hint_not_just_a_401(fake, capsys):
    code = main(["ctl", "--url", fake.url, "aliases", "list"])
    err = capsys.readouterr().err
    assert code == 1 and "miroir_invalid_auth" in err and "hint: no admin key was sent" in err
    assert fake.fake.seen[-1][2] is None  # no Authorization header at all


def test_an_answer_that_is_not_miroirs_is_exit_3_not_a_traceback(ctl, fake):
    fake.fake.aliases["x"] = {"unexpected": True}  # a 200 without the fields ctl reads
    code, _, err = ctl("aliases", "list")
    assert code == 3 and "is the URL a Miroir" in err


def test_status_shows_a_running_reshard_with_its_progress(ctl, fake):
    assert ctl("--json", "reshard", "movies", "--shards", "32")[0] == 0
    code, out, _ = ctl("--json", "status")
    status = json.loads(out)
    assert code == 0 and status["reshardAvailable"] is True
    assert [r["id"] for r in status["reshards"]] == ["rs-1"]
    fake.fake.reshards["rs-1"].update(documentsCopied=2000, documentsPerSecond=500.0,
                                      etaSeconds=4.0)
    code, out, _ = ctl("status")
    assert code == 0
    assert ("Reshard rs-1: movies 8 -> 32 shards, copying, documents 2,000/4,000, 500 docs/s"
            in out), out
    ctl("reshards", "rollback", "rs-1")
    code, out, _ = ctl("status")
    assert "Reshard: none running" in out and "rs-1" not in out
    fake.fake.reshard_routes = False  # a Miroir without resharding: status still works
    code, out, _ = ctl("status")
    assert code == 0 and "Reshard: unavailable" in out


def test_rebalance_status_names_what_it_waits_for_and_what_was_lost(ctl):
    code, out, _ = ctl("rebalance", "status")
    assert code == 0
    assert "waiting for processes still on an older epoch: proc-b@2" in out, out
    assert "lost: group 0 shard 5: no replica left to copy from" in out, out
    code, out, _ = ctl("status")
    assert "proc-b@2" in out and "lost: group 0 shard 5" in out, out
    code, out, _ = ctl("--json", "rebalance", "status")
    found = json.loads(out)
    assert found["waitingFor"] == ["proc-b@2"] and len(found["lost"]) == 1


def test_reshards_list_show_and_rollback(ctl, fake):
    ctl("reshard", "movies", "--shards", "16")
    ctl("reshard", "books", "--shards", "4")
    code, out, _ = ctl("--json", "reshards", "list")
    assert code == 0 and [r["id"] for r in json.loads(out)["results"]] == ["rs-2", "rs-1"]
    code, out, _ = ctl("reshards", "list")
    assert code == 0 and "books" in out and "8 -> 16" in out
    code, out, _ = ctl("reshards", "show", "rs-1")
    assert code == 0 and "reshard rs-1 of movies: 8 -> 16 shards" in out
    code, out, _ = ctl("reshards", "rollback", "rs-2")
    assert code == 0 and fake.fake.seen[-1][:2] == ("POST", "/_miroir/reshards/rs-2/rollback")
    assert "rolledBack" in out
    code, out, _ = ctl("--json", "reshards", "show", "rs-2", "--watch", "--interval", "0.01")
    assert code == 1 and json.loads(out)["state"] == "rolledBack"  # not done: exit 1
