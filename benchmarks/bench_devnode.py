"""Devnode search speed: index a seeded synthetic corpus, then run mixed queries.

The corpus is generated from a seed (Zipf-distributed vocabulary of 5,000 words, titles of 2-6
words, overviews of 10-40, a genre, a year and a price), so runs repeat exactly. Queries mix
plain words, typos, prefixes, phrases, filters, facets and sort, one query in ten of each kind.

Each result is printed beside a baseline measured in the same run, since absolute numbers
drift 3x between runs on shared machines:
- indexing beside *tokenizing only* the same documents (the floor any indexer pays);
- queries beside a *brute-force scan* (tokenize every document per query, evaluate the filter
  with core.filters.matches) measured on the first 20 queries.

    .venv/bin/python benchmarks/bench_devnode.py [--documents 20000] [--queries 1000] [--seed 7]

The indexing line also reports the resident memory the index added (RSS delta). The line before
last is `indexing_ratio=` (indexing docs/s over tokenize-only docs/s: higher is better); the last
line is `ratio=`, the engine's query rate over the brute-force scan's rate.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import itertools
import os
import random
import time
from typing import Any

from miroir.core import filters as f
from miroir.devnode.search import IndexSearcher
from miroir.devnode.search.execute import SearchRequest, run_search
from miroir.devnode.search.text import tokenize
from miroir.devnode.settings import default_settings

GENRES = ["action", "drama", "comedy", "horror", "sci-fi", "romance", "documentary", "anime"]
SYLLABLES = ["ka", "lo", "mi", "ren", "ta", "vo", "shi", "del", "por", "an", "qu", "es", "tri",
             "bel", "nor", "gi", "ul", "fen", "za", "ox"]


def vocabulary(rng: random.Random, size: int) -> list[str]:
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


class Zipf:
    def __init__(self, words: list[str], rng: random.Random, s: float = 1.1) -> None:
        self.words, self.rng = words, rng
        weights = [1 / (rank + 1) ** s for rank in range(len(words))]
        self.cumulative = list(itertools.accumulate(weights))

    def draw(self) -> str:
        x = self.rng.random() * self.cumulative[-1]
        return self.words[bisect.bisect_left(self.cumulative, x)]

    def text(self, low: int, high: int) -> str:
        return " ".join(self.draw() for _ in range(self.rng.randint(low, high)))


def corpus(n: int, seed: int) -> tuple[list[dict[str, Any]], Zipf]:
    rng = random.Random(seed)
    zipf = Zipf(vocabulary(rng, 5000), rng)
    docs = [
        {"id": i, "title": zipf.text(2, 6), "overview": zipf.text(10, 40),
         "genre": rng.choice(GENRES), "year": rng.randint(1950, 2025),
         "price": round(rng.uniform(1, 100), 2)}
        for i in range(n)
    ]
    return docs, zipf


def typo(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word))
    return word[:i] + word[i + 1 :] if rng.random() < 0.5 else word[:i] + "x" + word[i:]


def queries(zipf: Zipf, n: int, seed: int) -> list[SearchRequest]:
    rng = random.Random(seed + 1)
    out = []
    for i in range(n):
        kind = i % 10
        words = [zipf.draw() for _ in range(rng.randint(1, 3))]
        q = " ".join(words)
        request = SearchRequest(q=q, limit=20)
        if kind == 1:
            request.q = " ".join(typo(w, rng) if len(w) >= 5 else w for w in words)
        elif kind == 2:
            request.q = q[: max(2, len(q) - 2)]
        elif kind == 3:
            request.q = f'"{" ".join(words[:2])}"'
        elif kind == 4:
            request.filter = f"genre = {rng.choice(GENRES)} AND year > {rng.randint(1950, 2020)}"
        elif kind == 5:
            request.facets = ["genre", "year"]
        elif kind == 6:
            request.sort = [("price", rng.random() < 0.5)]
        elif kind == 7:
            request.q = ""
            request.filter = f"price {rng.randint(1, 50)} TO {rng.randint(50, 100)}"
            request.facets = ["genre"]
        elif kind == 8:
            request.matching_strategy = "all"
        elif kind == 9:
            request.offset = 20
        out.append(request)
    return out


def brute_force(docs: list[dict[str, Any]], request: SearchRequest) -> int:
    """The naive baseline: tokenize every document and test it, per query."""
    wanted = {t.word for t in tokenize(request.q or "")}
    node = f.parse_filter_json(request.filter)
    count = 0
    for doc in docs:
        if node is not None and not f.matches(node, doc):
            continue
        words = {t.word for value in (doc["title"], doc["overview"]) for t in tokenize(value)}
        if not wanted or wanted & words:
            count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    docs, zipf = corpus(args.documents, args.seed)
    settings = default_settings()
    settings.update(filterableAttributes=["genre", "year", "price"],
                    sortableAttributes=["price", "year"])

    started = time.perf_counter()
    for doc in docs:
        for value in (doc["title"], doc["overview"], doc["genre"]):
            tokenize(value)
    tokenize_seconds = time.perf_counter() - started

    gc.collect()
    rss_before = resident_bytes()
    searcher = IndexSearcher(settings)
    started = time.perf_counter()
    for internal_id, doc in enumerate(docs):
        searcher.upsert(internal_id, doc)
    index_seconds = time.perf_counter() - started
    gc.collect()
    index_bytes = resident_bytes() - rss_before
    docs_per_second = len(docs) / index_seconds
    floor_per_second = len(docs) / tokenize_seconds
    print(f"indexing: {len(docs)} documents in {index_seconds:.2f}s = {docs_per_second:,.0f} docs/s"
          f"  (tokenize-only baseline {floor_per_second:,.0f} docs/s);"
          f" memory: RSS +{index_bytes / 2**20:,.1f} MiB for the index")

    requests = queries(zipf, args.queries, args.seed)
    # One plain query outside the timing (first-call paths). It builds no facet structure and
    # few positional bitmaps: the first filter, sort or facet on an attribute and the first
    # ranking on a common word pay for theirs inside the timing, as a user's first queries do.
    run_search(searcher, requests[0])
    started = time.perf_counter()
    hits = 0
    for request in requests:
        hits += len(run_search(searcher, request).hits)
    query_seconds = time.perf_counter() - started
    queries_per_second = len(requests) / query_seconds

    sample = requests[:20]
    started = time.perf_counter()
    for request in sample:
        brute_force(docs, request)
    scan_per_second = len(sample) / (time.perf_counter() - started)
    print(f"queries: {len(requests)} in {query_seconds:.2f}s = {queries_per_second:,.0f} queries/s"
          f" ({hits} hits)  (brute-force scan baseline {scan_per_second:,.1f} queries/s)")
    print(f"indexing_ratio={docs_per_second / floor_per_second:.2f} (docs/s over tokenize-only docs/s)")
    print(f"ratio={queries_per_second / scan_per_second:.1f}")


def resident_bytes() -> int:
    """This process's resident set size now (Linux /proc), or 0 where it cannot be read."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


if __name__ == "__main__":
    main()
