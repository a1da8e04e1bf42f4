"""The search merger alone, beside a baseline measured in the same run.

Usage: .venv/bin/python benchmarks/bench_merge.py [--rounds N]

Node responses are generated deterministically (seeded) in Meilisearch's shape: hits with a
title, a year, `_miroir_shard`, `_rankingScore` and `_rankingScoreDetails` under the default
ranking rules. The baseline is `orjson.loads` of the same node response bytes: the least any
proxy must spend on those answers. Absolute numbers on shared machines drift; read the ratio.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

import orjson

from miroir.core.merge import merge_search
from miroir.core.search_plan import plan_node_query

RULES = ["words", "typo", "proximity", "attributeRank", "sort", "wordPosition", "exactness"]
MAXES = {"words": 4, "typo": 5, "proximity": 10, "attributeRank": 3, "wordPosition": 31,
         "exactness": 9}


def make_hit(rng: random.Random, shard: int, n: int, sort: bool) -> dict:
    ranks = {rule: rng.randint(1, m) for rule, m in MAXES.items()}
    details: dict = {}
    rank, maximum = 1, 1
    year = rng.randint(1950, 2025)
    for rule in RULES:
        if rule == "sort":
            if sort:
                details["year:desc"] = {"order": len(details), "value": float(year)}
            continue
        details[rule] = {"order": len(details), "score": ranks[rule] / MAXES[rule]}
        rank = max(rank - 1, 0) * MAXES[rule] + ranks[rule]
        maximum *= MAXES[rule]
    return {"id": f"{shard}-{n}", "title": f"title {n} of shard {shard}", "year": year,
            "_miroir_shard": shard, "_rankingScore": rank / maximum,
            "_rankingScoreDetails": details}


def node_bodies(per_shard: int, shards: int, sort: bool, seed: int = 7) -> list[bytes]:
    rng = random.Random(seed)
    bodies = []
    for shard in range(shards):
        hits = [make_hit(rng, shard, n, sort) for n in range(per_shard)]
        if sort:
            hits.sort(key=lambda h: tuple(
                -e["score"] if "score" in e else -e["value"]
                for e in h["_rankingScoreDetails"].values()))
        else:
            hits.sort(key=lambda h: -h["_rankingScore"])
        bodies.append(orjson.dumps({"hits": hits, "query": "q", "processingTimeMs": 3,
                                    "limit": per_shard, "offset": 0,
                                    "estimatedTotalHits": per_shard * 4}))
    return bodies


def interleaved(baseline, candidate, rounds: int, batch: int = 20) -> tuple[float, float]:
    """Median seconds per call of each, measured in alternating batches (drift hits both)."""
    base_samples, cand_samples = [], []
    for _ in range(rounds):
        for fn, samples in ((baseline, base_samples), (candidate, cand_samples)):
            start = time.perf_counter()
            for _ in range(batch):
                fn()
            samples.append((time.perf_counter() - start) / batch)
    return statistics.median(base_samples), statistics.median(cand_samples)


CASES = [
    ("1,000 hits from 3 shards, no sort", 334, 1000, False),
    ("1,000 hits from 3 shards, sort year:desc", 334, 1000, True),
    ("3 x 1,000 hits, client limit 1,000, no sort", 1000, 1000, False),
    ("3 x 1,000 hits, client limit 1,000, sort", 1000, 1000, True),
    ("3 x 20 hits, client limit 20 (typical)", 20, 20, False),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    print(f"{'case':44} {'orjson.loads':>13} {'merge':>10} {'ratio':>7}")
    headline = None
    for label, per_shard, client_limit, sort in CASES:
        raw = node_bodies(per_shard, 3, sort)
        params: dict = {"q": "q", "limit": client_limit}
        if sort:
            params["sort"] = ["year:desc"]
        plan = plan_node_query(params, {})
        parsed = [orjson.loads(b) for b in raw]
        merged = merge_search(plan, parsed)
        assert len(merged["hits"]) == min(client_limit, per_shard * 3)
        baseline, merge = interleaved(lambda raw=raw: [orjson.loads(b) for b in raw],
                                      lambda plan=plan, parsed=parsed: merge_search(plan, parsed),
                                      args.rounds)
        print(f"{label:44} {baseline * 1e3:10.3f} ms {merge * 1e3:7.3f} ms {merge / baseline:6.2f}x")
        if headline is None:
            headline = (merge, baseline)
    merge, baseline = headline
    print(f"ratio={merge / baseline:.2f} (merge of 1,000 hits from 3 shards / orjson.loads of "
          f"the same responses; merge {merge * 1e3:.3f} ms)")


if __name__ == "__main__":
    main()
