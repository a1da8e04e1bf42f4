"""What per-index shard counts cost a search: the whole in-process search path, and the lookup.

1. `search_index` end to end in one trio loop (plan, `read_map`, scatter over 3 nodes, merge):
   S=64, RG=1, RF=1, a `FakeTransport` whose nodes answer at once with a canned 20-hit answer
   (so what is timed is Miroir's own work, not a node's), the index catalog warm. Run it once
   per source tree (`PYTHONPATH=<tree>/src`) and alternate the trees: the difference between
   them is what the branch costs the default case (no layout gives the index its own S).
2. With `Cluster.shard_map_for` present: the lookup alone for an index at the topology's S (the
   default: the cluster's map itself) and for one with its own S (a cached derived map).

    PYTHONPATH=<tree>/src python benchmarks/bench_shard_maps.py [--searches 4000] [--rounds 5]

Last line: `us_per_search=<median of the rounds' medians>`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import trio

from miroir.cluster.runtime import Cluster
from miroir.cluster.search import search_index
from miroir.core.topology import Node, Topology
from miroir.store.memory import MemoryStore
from miroir.transport.fake import Answer, FakeTransport

SHARDS = 64
NODES = 3


def hit(i: int) -> dict:
    return {"id": i, "title": f"title {i}", "overview": "word " * 60, "_miroir_shard": i % SHARDS,
            "_rankingScore": 1.0 - i / 1000}


def canned_search() -> dict:
    return {"hits": [hit(i) for i in range(20)], "query": "", "processingTimeMs": 1,
            "limit": 20, "offset": 0, "estimatedTotalHits": 1000}


INDEX = {"uid": "movies", "primaryKey": "id", "createdAt": "2026-01-01T00:00:00Z",
         "updatedAt": "2026-01-01T00:00:00Z"}
SETTINGS = {"rankingRules": ["words", "typo", "proximity", "attribute", "sort", "exactness"],
            "filterableAttributes": ["_miroir_shard"], "sortableAttributes": [],
            "distinctAttribute": None, "faceting": {"maxValuesPerFacet": 100,
                                                    "sortFacetValuesBy": {"*": "alpha"}}}


def route(call):
    if call.path.endswith("/search"):
        return Answer(json=canned_search())
    if call.path.endswith("/settings"):
        return Answer(json=SETTINGS)
    return Answer(json=INDEX)


async def one_round(cluster: Cluster, searches: int) -> float:
    """The median µs of `searches` sequential searches."""
    times = []
    params = {"q": "", "limit": 20}
    for _ in range(searches):
        start = time.perf_counter()
        await search_index(cluster, "movies", params)
        times.append(time.perf_counter() - start)
    cluster.transport.calls.clear()
    return statistics.median(times) * 1e6


async def lookups(cluster: Cluster, count: int) -> tuple[float, float]:
    await cluster.layouts.change(lambda now: now.with_node_shards("big", 32))
    result = []
    for uid in ("movies", "big"):
        start = time.perf_counter()
        for _ in range(count):
            cluster.shard_map_for(uid)
        result.append((time.perf_counter() - start) / count * 1e9)
    return result[0], result[1]


async def main_async(args: argparse.Namespace) -> None:
    nodes = tuple(Node(f"n{i}", "http://127.0.0.1:1", 0) for i in range(NODES))
    transport = FakeTransport()
    for node in nodes:
        transport.handle(node.id, route)
    cluster = Cluster(Topology(SHARDS, 1, 1, nodes), transport, MemoryStore())
    await one_round(cluster, 200)  # warm: the catalog, the plans
    medians = [await one_round(cluster, args.searches) for _ in range(args.rounds)]
    print("round medians (µs per search):", " ".join(f"{m:.1f}" for m in medians))
    if hasattr(cluster, "shard_map_for"):
        default, own = await lookups(cluster, 200_000)
        print(f"shard_map_for: default S {default:.0f} ns, own S (cached) {own:.0f} ns")
    print(f"us_per_search={statistics.median(medians):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--searches", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    trio.run(main_async, parser.parse_args())


if __name__ == "__main__":
    main()
