"""Routing cost against decoding cost of the same batch.

Routes 10,000 documents (id extraction, shard, owners, per-node batches, `_miroir_shard`
injection) for S=64, RG=2, RF=2, side by side with `orjson.loads` of the same batch, in the same
process, interleaved so machine noise hits both alike. Last line: ratio=<routing / decode>;
the bar is at most 2.0.

    python benchmarks/bench_routing.py [--docs 10000] [--rounds 15]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import orjson

from miroir.core.routing import route_documents
from miroir.core.topology import Node, ShardMap, Topology


def make_batch(count: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(2000)]
    documents = []
    for i in range(count):
        documents.append(
            {
                "id": i if i % 2 else f"doc-{i}",
                "title": " ".join(rng.choices(words, k=4)),
                "overview": " ".join(rng.choices(words, k=30)),
                "genres": rng.sample(["drama", "comedy", "action", "horror", "sf"], k=2),
                "year": rng.randint(1950, 2025),
                "rating": round(rng.random() * 10, 1),
            }
        )
    return orjson.dumps(documents)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()

    nodes = tuple(Node(f"g{g}-n{i}", "http://127.0.0.1:1", g) for g in range(2) for i in range(3))
    shard_map = ShardMap.build(Topology(64, 2, 2, nodes))
    payload = make_batch(args.docs)

    decode_times, route_times = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        documents = orjson.loads(payload)
        decode_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        route_documents(documents, "id", shard_map)
        route_times.append(time.perf_counter() - start)

    decode = statistics.median(decode_times)
    route = statistics.median(route_times)
    print(f"documents={args.docs} shards=64 groups=2 rf=2 payload_bytes={len(payload)}")
    print(f"decode_ms={decode * 1e3:.2f} (orjson.loads, baseline)")
    print(f"route_ms={route * 1e3:.2f} (route_documents)")
    print(f"ratio={route / decode:.2f}")


if __name__ == "__main__":
    main()
