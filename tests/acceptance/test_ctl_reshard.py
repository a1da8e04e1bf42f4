"""`miroir ctl reshard` against real processes (issues #17 and #18): devnodes and `miroir serve`
configured with one `resharding.allowed_windows` window that is closed now.

The window guard runs on the proxy's wall clock, which a test cannot stop; the window is placed
two hours after the test starts, so "now" is outside it for the whole test and the next opening
is a fixed instant, computed here with the same pure function (`core.reshard_window`) and looked
for, to the second, in the refusal ctl prints. Then `--force` starts it, `status` shows it
running with its progress, `reshards show --watch` follows it to `done`, and a second reshard is
rolled back with `reshards rollback`.
"""

from __future__ import annotations

import datetime
import json
import time

import pytest

from miroir.cli import main
from miroir.core.reshard_window import MINUTE_MS, next_opening, parse_window

from .conftest import ADMIN_KEY, FAST_HEALTH, MASTER_KEY, sdk, wait
from .rebalance_run import all_documents, fill

pytestmark = pytest.mark.acceptance

SHARDS = 4
DOCUMENTS = 600


def closed_window(now_ms: int) -> str:
    """A one-hour window opening two hours from now (UTC)."""
    start = (now_ms // MINUTE_MS + 120) % (24 * 60)
    end = (start + 60) % (24 * 60)
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d} UTC"


@pytest.fixture
def ctl(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MIROIR_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.setenv("MIROIR_API_KEY", MASTER_KEY)
    monkeypatch.setenv("MIROIR_CREDENTIALS", str(tmp_path / "no-credentials"))

    def run(url: str, *args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["ctl", "--url", url, *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def test_reshard_refused_outside_the_window_then_forced_followed_and_rolled_back(launch, ctl):
    now_ms = time.time_ns() // 1_000_000
    window = closed_window(now_ms)
    opens = datetime.datetime.fromtimestamp(
        next_opening(now_ms, [parse_window(window)]) / 1000, tz=datetime.UTC)
    # slow enough that `status` sees it copying
    sections = {"health": FAST_HEALTH, "rebalance": {"max_docs_per_second": 300},
                "resharding": {"allowed_windows": [window], "grace_seconds": 1}}
    cluster = launch(nodes=2, shards=SHARDS, sections=sections)
    expected = fill(cluster, MASTER_KEY, DOCUMENTS)
    url = cluster.url

    code, _, err = ctl(url, "reshard", "docs", "--shards", "8")
    assert code == 1 and "miroir_reshard_outside_window" in err, err
    assert opens.strftime("%Y-%m-%dT%H:%M:%SZ") in err, (window, err)
    code, out, _ = ctl(url, "--json", "reshards", "list")
    assert code == 0 and json.loads(out)["results"] == []  # the refusal started nothing

    code, out, _ = ctl(url, "--json", "reshard", "docs", "--shards", "8", "--force")
    assert code == 0, out
    started = json.loads(out)
    assert (started["fromShards"], started["toShards"]) == (SHARDS, 8)
    reshard_id = started["reshardId"]
    code, out, _ = ctl(url, "--json", "status")
    running = json.loads(out)["reshards"]
    assert [r["id"] for r in running] == [reshard_id], running
    code, out, _ = ctl(url, "status")
    assert f"Reshard {reshard_id}: docs {SHARDS} -> 8 shards" in out, out
    code, out, _ = ctl(url, "reshards", "show", reshard_id, "--watch", "--interval", "0.2")
    assert code == 0 and "done" in out, out
    code, out, _ = ctl(url, "status")
    assert "Reshard: none running" in out, out
    assert all_documents(cluster, MASTER_KEY) == expected

    # a second reshard (8 -> 2), rolled back: the index keeps 8 shards and every document
    code, out, _ = ctl(url, "--json", "reshard", "docs", "--shards", "2", "--force")
    second = json.loads(out)["reshardId"]
    code, out, err = ctl(url, "reshards", "rollback", second)
    assert code == 0, err
    code, out, _ = ctl(url, "--json", "reshards", "show", second, "--watch", "--interval", "0.2")
    assert code == 1 and json.loads(out)["state"] == "rolledBack"  # not done: exit 1
    code, out, _ = ctl(url, "--json", "aliases", "show", "docs")
    assert code == 0 and json.loads(out)["shards"] == 8, out
    assert all_documents(cluster, MASTER_KEY) == expected
    code, out, _ = ctl(url, "--json", "reshards", "list")
    assert [r["id"] for r in json.loads(out)["results"]] == [second, reshard_id]
    client = sdk(cluster)
    wait(client, client.index("docs").add_documents([{"id": 10**6, "v": 1, "title": "late"}]))
    assert client.index("docs").get_document(10**6).title == "late"
