"""Ingest throughput: documents/s written through Miroir vs straight into one devnode, same run.

Setup: three devnodes behind `miroir serve` (RG=1, RF=1, 16 shards), plus one more devnode on
its own, all child processes on loopback. The same pre-encoded batches (a deterministic corpus
from a seed, Zipf-distributed vocabulary) go to both, rounds interleaved (direct, Miroir, direct,
...) so drift on a shared machine hits both alike. One measurement is: create an empty index,
then from the first POST until every task has succeeded, i.e. what a client waiting for its data
to be searchable sees. Each target's document count is checked afterwards.

    .venv/bin/python benchmarks/bench_ingest.py [--docs 20000] [--batch 1000] [--rounds 3]

The last line is `ratio=<Miroir docs/s / direct docs/s>`, the median of the per-round ratios;
the bar is >= 0.8.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

from miroir.cli.dev import local_cluster, start_nodes, stop_all

MASTER_KEY = "bench-master-key-0123456789"
TASK_POLL_SECONDS = 0.01
TASK_PATIENCE_SECONDS = 300.0


def corpus(count: int, seed: int = 7) -> list[dict]:
    """`count` movie-like documents; same seed, same documents, byte for byte."""
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(5000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]  # Zipf, s = 1
    genres = ["drama", "comedy", "action", "horror", "romance", "documentary", "animation"]
    docs = []
    for i in range(count):
        words = rng.choices(vocabulary, weights, k=30)
        docs.append(
            {
                "id": i,
                "title": " ".join(words[:4]),
                "overview": " ".join(words[4:]),
                "genre": rng.choice(genres),
                "year": rng.randint(1950, 2025),
                "rating": round(rng.uniform(0, 10), 1),
            }
        )
    return docs


def batches(docs: list[dict], size: int) -> list[bytes]:
    return [orjson.dumps(docs[i : i + size]) for i in range(0, len(docs), size)]


def wait_task(client: httpx.Client, uid: int) -> dict:
    give_up = time.monotonic() + TASK_PATIENCE_SECONDS
    while True:
        task = client.get(f"/tasks/{uid}").raise_for_status().json()
        if task["status"] in ("succeeded", "failed", "canceled"):
            if task["status"] != "succeeded":
                raise RuntimeError(f"task {uid} ended {task['status']}: {task.get('error')}")
            return task
        if time.monotonic() > give_up:
            raise RuntimeError(f"task {uid} still {task['status']} after {TASK_PATIENCE_SECONDS}s")
        time.sleep(TASK_POLL_SECONDS)


def ingest(client: httpx.Client, index: str, payloads: list[bytes], expected: int) -> float:
    """Seconds from the first POST until every batch's task succeeded, on a fresh index."""
    created = client.post("/indexes", json={"uid": index, "primaryKey": "id"})
    wait_task(client, created.raise_for_status().json()["taskUid"])
    headers = {"content-type": "application/json"}
    started = time.perf_counter()
    uids = []
    for payload in payloads:
        answer = client.post(f"/indexes/{index}/documents", content=payload, headers=headers)
        uids.append(answer.raise_for_status().json()["taskUid"])
    for uid in uids:
        wait_task(client, uid)
    elapsed = time.perf_counter() - started
    stats = client.get(f"/indexes/{index}/stats").raise_for_status().json()
    if stats["numberOfDocuments"] != expected:
        raise RuntimeError(f"{index}: {stats['numberOfDocuments']} documents, expected {expected}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    docs = corpus(args.docs)
    payloads = batches(docs, args.batch)
    print(f"corpus: {args.docs} documents in {len(payloads)} batches of {args.batch}, "
          f"{sum(map(len, payloads)) / 1e6:.1f} MB")
    with tempfile.TemporaryDirectory(prefix="miroir-bench-") as tmp:
        workdir = Path(tmp)
        direct_key = "bench-node-key-0123456789"
        direct_nodes = start_nodes([("direct", 0)], master_key=direct_key, workdir=workdir / "direct")
        try:
            with local_cluster(
                workdir / "cluster", nodes=3, groups=1, rf=1, shards=16, master_key=MASTER_KEY
            ) as cluster:
                timeout = httpx.Timeout(60.0)
                auth = {"authorization": f"Bearer {MASTER_KEY}"}
                direct_auth = {"authorization": f"Bearer {direct_key}"}
                with (
                    httpx.Client(base_url=direct_nodes[0].address, headers=direct_auth, timeout=timeout) as direct,
                    httpx.Client(base_url=cluster.url, headers=auth, timeout=timeout) as miroir,
                ):
                    direct_rates, miroir_rates = [], []
                    for round_no in range(args.rounds):
                        seconds = ingest(direct, f"direct_{round_no}", payloads, args.docs)
                        direct_rates.append(args.docs / seconds)
                        seconds = ingest(miroir, f"miroir_{round_no}", payloads, args.docs)
                        miroir_rates.append(args.docs / seconds)
                        print(f"round {round_no + 1}: direct {direct_rates[-1]:8.0f} docs/s   "
                              f"through Miroir {miroir_rates[-1]:8.0f} docs/s", flush=True)
        finally:
            stop_all(direct_nodes)

    # The ratio of each round compares two runs made moments apart; its median resists the
    # drift of a shared machine better than a ratio of two medians would.
    ratios = [m / d for m, d in zip(miroir_rates, direct_rates, strict=True)]
    print(f"direct into one devnode (baseline): {statistics.median(direct_rates):.0f} docs/s "
          f"(median of {args.rounds})")
    print(f"through Miroir, 3 devnodes RG=1 RF=1: {statistics.median(miroir_rates):.0f} docs/s "
          f"(median of {args.rounds})")
    print(f"ratio={statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
