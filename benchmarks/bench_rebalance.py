"""An online rebalance against real processes: documents moved per second, and client search
throughput during the rebalance as a ratio of the throughput just before it (goal >= 0.7).

`miroir serve` over three devnodes (`miroir.cli.dev.local_cluster`), N documents, one reader
thread searching back to back. The reader runs `--seconds` alone (the baseline), then a fourth
devnode is added through the admin API and the reader keeps going until the rebalance is done.
Both phases are measured in the same run on the same processes, so the ratio compares like with
like. Documents moved per second is the engine's own count (copies and re-copies) over the
copy's duration, under `--max-docs-per-second`.

    python benchmarks/bench_rebalance.py [--documents 20000] [--seconds 10] [--max-docs-per-second 2000]

The last line is `ratio=<search/s during / search/s before>`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.acceptance.rebalance_run import (
    Traffic,
    admin,
    fill,
    start_extra_node,
    stop_extra_nodes,
    wait_rebalance,
)

from miroir.cli.dev import local_cluster

MASTER_KEY = "bench-master-key-0123456789"
ADMIN_KEY = "bench-admin-key-0123456789"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--shards", type=int, default=64)
    parser.add_argument("--max-docs-per-second", type=int, default=2000)
    args = parser.parse_args()
    sections = {"rebalance": {"enabled": True, "max_docs_per_second": args.max_docs_per_second,
                              "grace_ms": 500}}
    with tempfile.TemporaryDirectory() as workdir, local_cluster(
        Path(workdir) / "cluster", nodes=3, shards=args.shards, master_key=MASTER_KEY,
        admin_key=ADMIN_KEY, sections=sections,
    ) as cluster:
        expected = fill(cluster, MASTER_KEY, args.documents)
        extra = start_extra_node(cluster, "node-4", Path(workdir))
        try:
            before = Traffic(cluster, MASTER_KEY, expected)
            before.start(write=False)
            time.sleep(args.seconds)
            before.finish()
            before_rate = before.searches / before.search_seconds

            during = Traffic(cluster, MASTER_KEY, expected)
            during.start(write=False)
            with admin(cluster, ADMIN_KEY) as http:
                answer = http.post("/_miroir/nodes",
                                   json={"id": "node-4", "address": extra.address, "group": 0})
                answer.raise_for_status()
            status = wait_rebalance(cluster, ADMIN_KEY)
            during.finish()
        finally:
            stop_extra_nodes([extra])
    assert status["state"] == "done", status
    during_rate = during.searches / during.search_seconds
    copy_seconds = (status["finishedAtMs"] - status["copyStartedAtMs"]) / 1000
    print(f"documents={args.documents} shards={args.shards} "
          f"max_docs_per_second={args.max_docs_per_second}")
    print(f"rebalance: {status['shardsTotal']} shard replicas, {status['documentsCopied']} "
          f"documents copied in {copy_seconds:.1f} s (copy start to done, grace included): "
          f"{status['documentsCopied'] / copy_seconds:.0f} documents/s")
    print(f"search before: {before.searches} in {before.search_seconds:.1f} s = "
          f"{before_rate:.1f}/s; during: {during.searches} in {during.search_seconds:.1f} s = "
          f"{during_rate:.1f}/s; 5xx before/during: {len(before.server_errors)}/"
          f"{len(during.server_errors)}")
    print(f"ratio={during_rate / before_rate:.2f}")


if __name__ == "__main__":
    main()
