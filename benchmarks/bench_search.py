"""Search throughput through Miroir beside a static Quart-trio app, the merger alone, and latency.

1. Throughput (the ratio). `miroir serve` (one hypercorn trio worker) over 3 canned nodes
   (RG=1, RF=1, S=64) that answer instantly with prebuilt, realistic search answers (20 hits of
   ~0.5 KB, plus ~0.4 KB of `_rankingScoreDetails` per hit when the request asks for them, as
   Meilisearch does; `--always-details` sends them always), against a Quart-trio app that
   returns a static body of the same size as Miroir's answer, served by hypercorn with the
   same settings. Same run, same load generator (wrk, same connections and duration), rounds
   interleaved; the median round of each is compared. Bar: ratio >= 0.75. Beside them, the
   stack's floor: a bare ASGI app under the same hypercorn that does only the node I/O and the
   JSON decoding (FLOOR_APP).
2. The merger alone: `merge_search` over 1,000 hits from 3 shards (nodes' bodies pre-parsed),
   best of many; target under 1 ms. JSON parsing of the same bodies is printed beside it.
3. Latency at concurrency 1: median of sequential searches through Miroir over 3 devnodes
   against the same searches sent to one devnode holding the whole corpus; target <= 2x.

    .venv/bin/python benchmarks/bench_search.py [--seconds 4] [--rounds 3] [--connections 16]
    .venv/bin/python benchmarks/bench_search.py --keys [--rounds 5]

`--keys` measures only what a bearer costs (`key_cost`): the same searches with the master key,
the default search API key and a tenant token, interleaved on one `miroir serve` (wrk rates and
CPU per search), and the auth check alone in process. Bar: an API-key search costs at most 3 %
more than a master-key one. The last line is then `ratio=<cost of an API-key search / cost of a
master-key search>` = (master-key CPU per search + the API key's extra auth µs) / master-key
CPU per search, all measured in the run; the end-to-end wrk ratio is printed above it (on a
loaded machine it swings by ±25 %, far more than the 3 % it would have to resolve).

Needs `wrk` on PATH (Debian: apt-get install wrk). Everything listens on loopback and every
child process is stopped on exit. The last line is `ratio=<Miroir searches/s / static
responses/s>`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import httpx
import orjson
from _canned_http import child_script

from miroir.cli.dev import (
    build_config,
    free_port,
    local_cluster,
    miroir_command,
    spawn,
    start_nodes,
    stop_all,
    stop_process,
    wait_for_health,
    write_config,
)
from miroir.core.merge import merge_search
from miroir.core.search_plan import plan_node_query

SHARDS = 64
HITS = 20
WORDS = ("night", "river", "stone", "light", "dark", "wolf", "city", "love", "war", "dream",
         "star", "road", "house", "king", "storm", "blood", "fire", "ghost", "summer", "last")
QUERY = {"q": "night river", "limit": HITS}

# ---- canned nodes -------------------------------------------------------------------------------


def canned_hit(rng: random.Random, doc_id: int, score: float, overview_words: int,
               details: bool = True) -> dict:
    title = " ".join(rng.choices(WORDS, k=4))
    hit = {
        "id": doc_id,
        "title": title.title(),
        "overview": " ".join(rng.choices(WORDS, k=overview_words)),
        "genres": rng.sample(["Drama", "Comedy", "Action", "Horror", "Romance", "Thriller"], 2),
        "release_date": rng.randint(0, 1_700_000_000),
        "poster": f"https://image.example.org/t/p/w500/{doc_id:08d}.jpg",
        "_miroir_shard": doc_id % SHARDS,
        "_rankingScore": score,
        "_rankingScoreDetails": {
            "words": {"order": 0, "matchingWords": 2, "maxMatchingWords": 2, "score": 1.0},
            "typo": {"order": 1, "typoCount": 0, "maxTypoCount": 2, "score": 1.0},
            "proximity": {"order": 2, "score": round(score, 6)},
            "attributeRank": {"order": 3, "attributeRankingOrderScore": 1.0, "score": 1.0},
            "wordPosition": {"order": 4, "score": 0.9},
            "exactness": {"order": 5, "matchType": "noExactMatch", "score": 0.5},
        },
    }
    if not details:  # what a node sends when `showRankingScoreDetails` is not asked for
        del hit["_rankingScoreDetails"]
    return hit


def canned_search_body(node: int, hits: int, overview_words: int = 60, seed: int = 7,
                       details: bool = True) -> bytes:
    rng = random.Random(seed + node)
    scores = sorted((rng.random() for _ in range(hits)), reverse=True)
    body = {
        "hits": [canned_hit(rng, node * 100_000 + i, s, overview_words, details)
                 for i, s in enumerate(scores)],
        "query": QUERY["q"], "processingTimeMs": 1, "limit": hits, "offset": 0,
        "estimatedTotalHits": 5000 + node,
    }
    return orjson.dumps(body)


SETTINGS_BODY = orjson.dumps({
    "displayedAttributes": ["*"], "searchableAttributes": ["*"],
    "filterableAttributes": ["_miroir_shard"], "sortableAttributes": [],
    "rankingRules": ["words", "typo", "proximity", "attributeRank", "sort", "wordPosition",
                     "exactness"],
    "stopWords": [], "synonyms": {}, "distinctAttribute": None,
    "typoTolerance": {"enabled": True}, "faceting": {"maxValuesPerFacet": 100,
                                                     "sortFacetValuesBy": {"*": "alpha"}},
    "pagination": {"maxTotalHits": 1000},
})

# One asyncio process serves all three canned nodes (one port each): GET .../settings gets the
# settings, any other GET (health probes) `available`, a POST the node's search answer, with
# `_rankingScoreDetails` only when the request asks for them, as Meilisearch does (or always,
# under --always-details: the workload before Miroir asked only when its merge needs them).
NODE_SERVER = child_script(r"""
import asyncio, sys
from _canned_http import http_answer, serve_forever
settings = http_answer(open(sys.argv[1], "rb").read())
health = http_answer(b'{"status":"available"}')
always_details = sys.argv[2] == "always"

def chooser(with_details, without_details):
    def choose(head, body):
        if head.startswith(b"post"):
            if always_details or b'"showRankingScoreDetails":true' in body:
                return with_details
            return without_details
        if b"/settings" in head.split(b"\r\n", 1)[0]:
            return settings
        return health
    return choose

paths = sys.argv[3:]
answers = [http_answer(open(path, "rb").read()) for path in paths]
asyncio.run(serve_forever([chooser(answers[i], answers[i + 1])
                           for i in range(0, len(answers), 2)]))
""")

# The static baseline: Quart-trio, one route, reads the body and returns a prebuilt answer,
# under hypercorn with the settings `miroir serve` uses (trio worker, 1 worker, no access log).
STATIC_APP = r"""
import sys
import trio
import hypercorn.trio
from hypercorn.config import Config
from quart import Response, request
from quart_trio import QuartTrio

BODY = open(sys.argv[1], "rb").read()
app = QuartTrio("static", static_folder=None)

@app.post("/indexes/movies/search")
async def search():
    await request.get_data()
    return Response(BODY, content_type="application/json")

@app.get("/health")
async def health():
    return Response(b'{"status":"available"}', content_type="application/json")

config = Config()
config.bind = [f"127.0.0.1:{sys.argv[2]}"]
config.worker_class = "trio"
config.workers = 1
config.accesslog = None
trio.run(hypercorn.trio.serve, app, config)
"""

# The stack's floor for this search: a bare ASGI app (no Quart, no Miroir) under the same
# hypercorn settings that, per request, reads the body, sends one POST to each canned node over
# kept-alive connections (all three sent before any answer is read), reads the three answers
# (framing by content-length only), decodes each with orjson and returns the static body. Any
# proxy written on this stack does at least this much; Miroir also plans, merges, renders,
# authenticates, counts and logs.
FLOOR_APP = r"""
import sys
import orjson
import trio
import hypercorn.trio
from hypercorn.config import Config

BODY = open(sys.argv[1], "rb").read()
NODE_PORTS = [int(port) for port in sys.argv[3:]]
QUERY = b'{"q":"night river","limit":20,"offset":0,"showRankingScore":true}'
REQUEST = (b"POST /indexes/movies/search HTTP/1.1\r\nhost: node\r\ncontent-type: "
           b"application/json\r\ncontent-length: " + str(len(QUERY)).encode() + b"\r\n\r\n" + QUERY)
idle = {port: [] for port in NODE_PORTS}
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def answer_of(stream):
    buffer = b""
    while True:
        buffer += await stream.receive_some(262144)
        head_end = buffer.find(b"\r\n\r\n")
        if head_end >= 0:
            at = buffer.find(b"content-length: ", 0, head_end) + 16
            end = head_end + 4 + int(buffer[at:buffer.find(b"\r\n", at)])
            if len(buffer) >= end:
                return buffer[head_end + 4:end]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    while (await receive()).get("more_body"):
        pass
    if scope["path"] != "/health":
        streams = []
        for port in NODE_PORTS:
            stream = idle[port].pop() if idle[port] else await trio.open_tcp_stream(
                "127.0.0.1", port)
            await stream.send_all(REQUEST)
            streams.append((port, stream))
        for port, stream in streams:
            orjson.loads(await answer_of(stream))
            idle[port].append(stream)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})

config = Config()
config.bind = [f"127.0.0.1:{sys.argv[2]}"]
config.worker_class = "trio"
config.workers = 1
config.accesslog = None
trio.run(hypercorn.trio.serve, app, config)
"""

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""
WRK_AUTH = 'wrk.headers["Authorization"] = "Bearer {token}"\n'



def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(url: str, script: Path, seconds: int, connections: int, pid: int) -> tuple[float, float]:
    """(requests/s, CPU µs per request of process `pid`) of one wrk run; fails on any non-2xx."""
    cpu_before = cpu_seconds(pid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True, text=True, check=True, timeout=seconds + 30,
    ).stdout
    cpu = cpu_seconds(pid) - cpu_before
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    assert bad is None, f"{url}: {bad.group(1)} answers were not 2xx"
    return rate, cpu / (rate * seconds) * 1e6


def start_canned_miroir(args: argparse.Namespace, workdir: Path, processes: list,
                        master_key: str | None = None) -> tuple[str, Any, list[str], list[Path]]:
    """Start the canned nodes and `miroir serve` over them (appended to `processes`); returns
    (Miroir's url, its process, the nodes' ports, the canned bodies)."""
    bodies = []
    for node in range(3):
        for details in (True, False):
            path = workdir / f"node{node}-{'details' if details else 'plain'}.json"
            path.write_bytes(canned_search_body(node, HITS, args.overview_words, details=details))
            bodies.append(path)
    settings_path = workdir / "settings.json"
    settings_path.write_bytes(SETTINGS_BODY)
    node_script = workdir / "nodes.py"
    node_script.write_text(NODE_SERVER)
    nodes = subprocess.Popen(
        [sys.executable, str(node_script), str(settings_path),
         "always" if args.always_details else "asked", *map(str, bodies)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
    )
    processes.append(nodes)
    ports = nodes.stdout.readline().split()
    fake_nodes = [types.SimpleNamespace(node_id=f"node-{i}", address=f"http://127.0.0.1:{p}",
                                        replica_group=0) for i, p in enumerate(ports)]
    miroir_port = free_port()
    config = build_config(
        fake_nodes, shards=SHARDS, rf=1, groups=1, node_master_key="bench-node-key",
        port=miroir_port, task_store_path=str(workdir / "tasks.sqlite3"), master_key=master_key,
    )
    config_path = write_config(config, workdir / "miroir.yaml")
    miroir = spawn(miroir_command("serve", "--config", str(config_path)), workdir / "miroir.log")
    processes.append(miroir)
    miroir_url = f"http://127.0.0.1:{miroir_port}"
    wait_for_health(miroir_url, 30, miroir)
    return miroir_url, miroir, ports, bodies


def throughput(args: argparse.Namespace, workdir: Path) -> float:
    processes: list = []
    try:
        miroir_url, miroir, ports, bodies = start_canned_miroir(args, workdir, processes)
        sample = httpx.post(f"{miroir_url}/indexes/movies/search", json=QUERY, timeout=10)
        sample.raise_for_status()
        assert len(sample.json()["hits"]) == HITS

        static_body = workdir / "static.json"
        static_body.write_bytes(sample.content)
        static_script = workdir / "static_app.py"
        static_script.write_text(STATIC_APP)
        static_port = free_port()
        static = spawn([sys.executable, str(static_script), str(static_body), str(static_port)],
                       workdir / "static.log")
        processes.append(static)
        static_url = f"http://127.0.0.1:{static_port}"
        wait_for_health(static_url, 30, static)

        floor_script = workdir / "floor_app.py"
        floor_script.write_text(FLOOR_APP)
        floor_port = free_port()
        floor = spawn([sys.executable, str(floor_script), str(static_body), str(floor_port),
                       *ports], workdir / "floor.log")
        processes.append(floor)
        floor_url = f"http://127.0.0.1:{floor_port}"
        wait_for_health(floor_url, 30, floor)

        script = workdir / "post.lua"
        script.write_text(WRK_SCRIPT.format(body=orjson.dumps(QUERY).decode()))
        print(f"throughput: wrk -t1 -c{args.connections} -d{args.seconds}s, "
              f"{args.rounds} interleaved rounds; Miroir answer {len(sample.content)} B, "
              f"node answers {[p.stat().st_size for p in bodies[1::2]]} B, with details "
              f"{[p.stat().st_size for p in bodies[0::2]]} B"
              f"{' (sent always)' if args.always_details else ' (sent when asked)'}")
        miroir_search = f"{miroir_url}/indexes/movies/search"
        static_search = f"{static_url}/indexes/movies/search"
        floor_search = f"{floor_url}/indexes/movies/search"
        servers = (("miroir", miroir_search, miroir.pid), ("floor", floor_search, floor.pid),
                   ("static", static_search, static.pid))
        # Warm all three (connection pools, settings cache, import-time caches).
        for _, url, pid in servers:
            wrk(url, script, 1, args.connections, pid)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name, _, _ in servers}
        for round_no in range(args.rounds):
            for name, url, pid in servers:
                runs[name].append(wrk(url, script, args.seconds, args.connections, pid))
            (m_rate, m_cpu), (f_rate, f_cpu), (s_rate, s_cpu) = (
                runs[name][-1] for name, _, _ in servers)
            print(f"  round {round_no + 1}: miroir {m_rate:7.1f}/s ({m_cpu:4.0f} µs CPU)   "
                  f"floor {f_rate:7.1f}/s ({f_cpu:4.0f} µs)   static {s_rate:7.1f}/s "
                  f"({s_cpu:4.0f} µs)   ratio {m_rate / s_rate:.2f}")
        m, f, s = (statistics.median(rate for rate, _ in runs[name]) for name, _, _ in servers)
        m_cpu, f_cpu, s_cpu = (statistics.median(cpu for _, cpu in runs[name])
                               for name, _, _ in servers)
        print(f"  median:  miroir {m:7.1f} searches/s ({m_cpu:4.0f} µs CPU each)   floor "
              f"{f:7.1f}/s ({f_cpu:4.0f} µs)   static {s:7.1f} responses/s ({s_cpu:4.0f} µs)")
        print(f"  CPU-bound ratio (static CPU per response / Miroir CPU per search): "
              f"{s_cpu / m_cpu:.2f}")
        print(f"  the stack's floor against static: {f / s:.2f} (CPU {s_cpu / f_cpu:.2f}); "
              f"Miroir against the floor: {m / f:.2f} (CPU {f_cpu / m_cpu:.2f})")
        return m / s
    finally:
        for process in reversed(processes):
            stop_process(process)


def merger_alone() -> None:
    plan = plan_node_query({"q": "night river", "limit": 1000}, {})
    raw = [canned_search_body(node, n) for node, n in enumerate((334, 333, 333))]
    parsed = [orjson.loads(body) for body in raw]

    def best(fn, repeat=60) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return min(times) * 1000

    parse_ms = best(lambda: [orjson.loads(body) for body in raw])
    merge_ms = best(lambda: merge_search(plan, parsed))
    merged = merge_search(plan, parsed)
    assert len(merged["hits"]) == 1000
    print(f"merger alone: 1,000 hits from 3 shards: merge {merge_ms:.3f} ms "
          f"(orjson.loads of the same {sum(map(len, raw)) // 1024} KiB: {parse_ms:.3f} ms); "
          "target < 1 ms")


def latency(args: argparse.Namespace, workdir: Path) -> None:
    rng = random.Random(11)
    docs = [{"id": i, "title": " ".join(rng.choices(WORDS, k=4)),
             "overview": " ".join(rng.choices(WORDS, k=30)), "year": rng.randint(1950, 2025)}
            for i in range(args.corpus)]
    queries = [{"q": " ".join(rng.sample(WORDS, 2)), "limit": 20} for _ in range(40)]
    key = "bench-master-key-0123456789"
    with local_cluster(workdir / "cluster", nodes=3, groups=1, rf=1, shards=SHARDS,
                       master_key=key) as cluster:
        single = start_nodes([("single", 0)], master_key=key, workdir=workdir / "single")
        try:
            timings = {}
            for name, url in (("miroir", cluster.url), ("devnode", single[0].address)):
                with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"},
                                  timeout=60) as client:
                    task = client.post("/indexes/movies/documents?primaryKey=id", json=docs).json()
                    uid = task["taskUid"]
                    while client.get(f"/tasks/{uid}").json()["status"] not in ("succeeded",
                                                                               "failed"):
                        time.sleep(0.05)
                    for query in queries[:5]:  # warm-up
                        client.post("/indexes/movies/search", json=query)
                    samples = []
                    for _ in range(args.latency_passes):
                        for query in queries:
                            started = time.perf_counter()
                            answer = client.post("/indexes/movies/search", json=query)
                            samples.append(time.perf_counter() - started)
                            answer.raise_for_status()
                    timings[name] = statistics.median(samples) * 1000
            print(f"latency at concurrency 1 ({args.corpus} documents, median of "
                  f"{len(queries) * args.latency_passes} searches): through Miroir over 3 "
                  f"devnodes {timings['miroir']:.2f} ms, one devnode directly "
                  f"{timings['devnode']:.2f} ms ({timings['miroir'] / timings['devnode']:.2f}x; "
                  "target <= 2x)")
        finally:
            stop_all(single)


def auth_check_cost(master: str, api_key: str, tenant: str) -> dict[str, float]:
    """µs per `Authenticator.check` of a search, per bearer kind, in this process (a KeyRing
    over a MemoryStore holding the same default keys: the values derive from the master key)."""
    import trio

    from miroir.cluster.keys import KeyRing
    from miroir.proxy.auth import Authenticator
    from miroir.store.memory import MemoryStore

    async def measure() -> dict[str, float]:
        ring = KeyRing(MemoryStore(), master)
        await ring.seed_defaults(0)
        authenticator = Authenticator(master, None, keyring=lambda: ring)
        costs = {}
        for name, token in (("master key", master), ("API key", api_key),
                            ("tenant token", tenant)):
            headers = {"authorization": f"Bearer {token}"}
            await authenticator.check("POST", "/indexes/movies/search", headers)
            best = float("inf")
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(5000):
                    await authenticator.check("POST", "/indexes/movies/search", headers)
                best = min(best, (time.perf_counter() - started) / 5000 * 1e6)
            costs[name] = best
        return costs

    return trio.run(measure)


def key_cost(args: argparse.Namespace, workdir: Path) -> float:
    """Searches with the master key against the same searches with the default search API key
    and with a tenant token (filter-less rule), interleaved rounds on one `miroir serve`. Bar:
    an API-key search costs at most 3 % more than a master-key one (ratio >= 0.97)."""
    import jwt

    master = "bench-master-key-0123456789"
    processes: list = []
    try:
        miroir_url, miroir, _, _ = start_canned_miroir(args, workdir, processes, master_key=master)
        keys = httpx.get(f"{miroir_url}/keys", headers={"Authorization": f"Bearer {master}"},
                         timeout=10).json()["results"]
        search_key = next(k for k in keys if k["name"] == "Default Search API Key")
        tenant = jwt.encode({"apiKeyUid": search_key["uid"], "searchRules": ["*"]},
                            search_key["key"], algorithm="HS256")
        body = orjson.dumps(QUERY).decode()
        scripts = {}
        for name, token in (("master key", master), ("API key", search_key["key"]),
                            ("tenant token", tenant)):
            script = workdir / f"post-{name.replace(' ', '-')}.lua"
            script.write_text(WRK_SCRIPT.format(body=body) + WRK_AUTH.format(token=token))
            scripts[name] = script
        url = f"{miroir_url}/indexes/movies/search"
        print(f"key cost: wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} "
              "interleaved rounds; one miroir serve, bearer = master key / search API key / "
              "tenant token")
        for script in scripts.values():
            wrk(url, script, 1, args.connections, miroir.pid)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in scripts}
        names = list(scripts)
        for round_no in range(args.rounds):
            # Each round starts with another bearer, so no kind always runs first or last.
            for name in names[round_no % 3:] + names[:round_no % 3]:
                runs[name].append(wrk(url, scripts[name], args.seconds, args.connections,
                                      miroir.pid))
            print(f"  round {round_no + 1}: " + "   ".join(
                f"{name} {runs[name][-1][0]:7.1f}/s ({runs[name][-1][1]:4.0f} µs CPU)"
                for name in scripts))
        rate = {name: statistics.median(r for r, _ in runs[name]) for name in scripts}
        cpu = {name: statistics.median(c for _, c in runs[name]) for name in scripts}
        base = "master key"
        for name in scripts:
            print(f"  median {name}: {rate[name]:7.1f} searches/s ({cpu[name]:4.0f} µs CPU "
                  f"each); against the master key: throughput {rate[name] / rate[base]:.3f}, "
                  f"CPU {cpu[name] / cpu[base]:.3f}")
        extra = auth_check_cost(master, search_key["key"], tenant)
        print("  the auth check alone, in process (best of 5 x 5,000): " + "   ".join(
            f"{name} {micros:5.1f} µs" for name, micros in extra.items()))
        for name in ("API key", "tenant token"):
            print(f"  {name}: auth costs {extra[name] - extra[base]:+.1f} µs more than the master "
                  f"key, {100 * (extra[name] - extra[base]) / cpu[base]:+.2f} % of a master-key "
                  "search's CPU")
        print(f"  end to end (wrk medians, noisy on a loaded machine): API-key searches/s / "
              f"master-key searches/s = {rate['API key'] / rate[base]:.3f}")
        # The steady figure: what an API-key search costs against a master-key one, from the
        # auth check's extra cost over the CPU a master-key search took in this run.
        return (cpu[base] + extra["API key"] - extra[base]) / cpu[base]
    finally:
        for process in reversed(processes):
            stop_process(process)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--corpus", type=int, default=3000)
    parser.add_argument("--latency-passes", type=int, default=3)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--always-details", action="store_true",
                        help="canned nodes send _rankingScoreDetails even when not asked")
    parser.add_argument("--keys", action="store_true",
                        help="only the key cost: master key vs API key vs tenant token "
                             "(ratio = cost of an API-key search / a master-key one)")
    parser.add_argument("--overview-words", type=int, default=60,
                        help="words in each canned hit's overview (60: ~0.9 KB per hit)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found on PATH (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    if args.keys:
        with tempfile.TemporaryDirectory(prefix="bench-search-keys-") as tmp:
            ratio = key_cost(args, Path(tmp))
        print(f"ratio={ratio:.3f}")
        return 0
    merger_alone()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        workdir = Path(tmp)
        if not args.skip_latency:
            with contextlib.suppress(KeyboardInterrupt):
                latency(args, workdir)
        ratio = throughput(args, workdir)
    print(f"ratio={ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
