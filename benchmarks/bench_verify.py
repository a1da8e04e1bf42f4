"""What the operator checks cost against real processes: `GET /_miroir/stats` (`miroir ctl
stats`), `GET /_miroir/verify` with the default sample (`miroir ctl verify`) and with every
document (`miroir ctl verify --full`).

`miroir serve` over four devnodes in two replica groups (16 shards, RF 1), N documents. Each
check is timed `--repeat` times back to back, the median reported, so an operator knows how
long a full verify holds the fleet's attention compared with a sampled one.

    python benchmarks/bench_verify.py [--documents 20000] [--repeat 3]

The last line is `ratio=<full verify seconds / sampled verify seconds>`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.acceptance.rebalance_run import fill

from miroir.cli.dev import local_cluster

MASTER_KEY = "bench-master-key-0123456789"
ADMIN_KEY = "bench-admin-key-0123456789"


def timed(http: httpx.Client, path: str, repeat: int) -> tuple[float, dict]:
    seconds = []
    body: dict = {}
    for _ in range(repeat):
        started = time.perf_counter()
        answer = http.get(path)
        seconds.append(time.perf_counter() - started)
        answer.raise_for_status()
        body = answer.json()
    return statistics.median(seconds), body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir, local_cluster(
        Path(workdir), nodes=4, groups=2, rf=1, shards=16, master_key=MASTER_KEY,
        admin_key=ADMIN_KEY, sections={"reconcile": {"interval_seconds": 3600}},
    ) as cluster:
        fill(cluster, MASTER_KEY, args.documents)
        with httpx.Client(base_url=cluster.url, timeout=600,
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
            stats_s, stats = timed(http, "/_miroir/stats", args.repeat)
            sampled_s, sampled = timed(http, "/_miroir/verify?sample=100", args.repeat)
            full_s, full = timed(http, "/_miroir/verify?sample=0", args.repeat)
    assert sampled["consistent"] and full["consistent"], "the fleet should be consistent"
    checked = sum(s["sampled"] for s in sampled["indexes"][0]["shards"])
    every = sum(s["sampled"] for s in full["indexes"][0]["shards"])
    print(f"{args.documents} documents, 16 shards, 2 groups of 2 devnodes, median of "
          f"{args.repeat}")
    print(f"stats: {stats_s:.3f} s ({stats['indexes']['docs']['numberOfDocuments']} documents "
          "counted)")
    print(f"verify, sample 100: {sampled_s:.3f} s ({checked} ids compared on both groups)")
    print(f"verify, every document: {full_s:.3f} s ({every} ids compared), "
          f"{every / full_s:.0f} ids/s")
    print(f"ratio={full_s / sampled_s:.2f}")


if __name__ == "__main__":
    main()
