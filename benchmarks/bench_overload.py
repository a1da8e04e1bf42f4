"""Overload: 20 concurrent searchers against `miroir dev`-shaped cluster vs. the nodes directly.

Setup (issue 20): three devnodes behind `miroir serve` (RG=1, RF=1, 16 shards), 20,000
documents from a seed (Zipf vocabulary, the ingest benchmark's corpus), then `wrk` with 20
connections for `--seconds` (default 20) sending searches (a rotating list of 1-2 word queries
from the corpus's vocabulary) through Miroir; then the same searches sent straight to the
devnodes at the same concurrency (20 connections split round-robin over the three nodes, one
wrk per node, run together). Rounds alternate (Miroir, direct, ...) so drift hits both alike.

Before the first round every search of the list is sent once through Miroir, which asks every
node: the nodes' per-word caches (trie answers, positional bitmaps; docs/benchmarks.md, "Devnode
search") are warm for both phases. Without it the first phase measured pays for them: that
was the whole of the "~7.2 ms of node CPU per proxied search against ~5 ms direct" gap of the
first runs, which always measured Miroir first (docs/benchmarks.md, "Overload").

What is counted (a wrk Lua script, per status): successful searches/s (2xx), 503s whose body is
`miroir_overloaded` (shed load: allowed), and every other 5xx (must be zero), plus socket
errors and timeouts (wrk's own 2 s timeout... raised to 10 s here).

Two ratios are printed. A search through Miroir at RF=1 costs every node one search over its
third of the corpus, while a search sent straight to one node costs that node one: so
`node_work_ratio` = Miroir searches/s x nodes asked per search / direct searches/s is the share
of the nodes' direct capacity Miroir turns into answers (the issue's bar, 0.9, read as node
work), and `ratio` = Miroir searches/s / direct searches/s is the literal one (bounded by about
1 / nodes at RF=1 by construction).

    .venv/bin/python benchmarks/bench_overload.py [--seconds 20] [--rounds 1] [--docs 20000]
        [--max-in-flight N] [--queue-timeout-ms MS]

Each round also prints the nodes' CPU per node search in both phases (user + system time of the
node processes from /proc, over the node searches answered: 3 per Miroir search, 1 per direct
one) and Miroir's own CPU per search: where the node-work ratio's gap goes.

Needs `wrk` on PATH. The last line is `ratio=<node_work_ratio>`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_ingest import batches, corpus

from miroir.cli.dev import local_cluster

CONNECTIONS = 20
INDEX = "bench"
TASK_PATIENCE_SECONDS = 600.0

LUA = r"""
local queries = {QUERIES}
local counter = 0
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  ok = 0; partial = 0; shed = 0; other5xx = 0; other = 0; first5xx = ""
end
function request()
  counter = counter + 1
  local body = queries[(counter %% #queries) + 1]
  return wrk.format("POST", wrk.path, {["Content-Type"] = "application/json", {AUTH}}, body)
end
function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
    if headers["X-Miroir-Degraded"] or headers["x-miroir-degraded"] then partial = partial + 1 end
  elseif status == 503 and string.find(body, "miroir_overloaded", 1, true) then shed = shed + 1
  elseif status >= 500 then
    other5xx = other5xx + 1
    if first5xx == "" then first5xx = tostring(status) .. " " .. string.sub(body, 1, 200) end
  else other = other + 1 end
end
function done(summary, latency, requests)
  local t = {ok = 0, partial = 0, shed = 0, other5xx = 0, other = 0}
  local sample = ""
  for _, thread in ipairs(threads) do
    for _, k in ipairs({"ok", "partial", "shed", "other5xx", "other"}) do t[k] = t[k] + thread:get(k) end
    if sample == "" then sample = thread:get("first5xx") end
  end
  io.write(string.format("COUNTS ok=%%d partial=%%d shed=%%d other5xx=%%d other=%%d errors=%%d timeouts=%%d p50_ms=%%.1f p99_ms=%%.1f\n",
    t.ok, t.partial, t.shed, t.other5xx, t.other,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status,
    summary.errors.timeout, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
  if sample ~= "" then io.write("FIRST5XX " .. sample .. "\n") end
end
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def search_bodies(count: int, seed: int = 11) -> list[str]:
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(5000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    return [json.dumps({"q": " ".join(rng.choices(vocabulary, weights, k=rng.randint(1, 2))),
                        "limit": 20}) for _ in range(count)]


def lua_script(path: Path, bodies: list[str], auth: str | None) -> Path:
    quoted = ", ".join(json.dumps(body) for body in bodies)  # JSON strings are Lua strings
    header = f'["Authorization"] = "Bearer {auth}"' if auth else ""
    path.write_text(LUA.replace("%%", "%").replace("{QUERIES}", "{" + quoted + "}")
                    .replace("{AUTH}", header))
    return path


def run_wrk(url: str, connections: int, seconds: float, script: Path) -> subprocess.Popen:
    return subprocess.Popen(
        ["wrk", "-t", str(min(connections, 2)), "-c", str(connections), "-d", f"{int(seconds)}s",
         "--timeout", "10s", "-s", str(script), url],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def parse(output: str) -> dict:
    found = re.search(r"COUNTS (.*)", output)
    if not found:
        raise RuntimeError(f"wrk printed no counts:\n{output}")
    counts = {k: float(v) for k, v in (p.split("=") for p in found.group(1).split())}
    sample = re.search(r"FIRST5XX (.*)", output)
    counts["first5xx"] = sample.group(1) if sample else ""
    return counts


def warm(client: httpx.Client, url: str, bodies: list[str]) -> None:
    """Every search once (four at a time), so no measured phase pays the nodes' cold caches."""
    def search(body: str) -> None:
        client.post(url, content=body, headers={"Content-Type": "application/json"})

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(search, bodies))


def load(client: httpx.Client, base: str, docs: list[dict], headers: dict) -> None:
    uids = []
    for body in batches(docs, 2000):
        answer = client.post(f"{base}/indexes/{INDEX}/documents", content=body,
                             headers={**headers, "Content-Type": "application/json"})
        answer.raise_for_status()
        uids.append(answer.json()["taskUid"])
    deadline = time.monotonic() + TASK_PATIENCE_SECONDS
    for uid in uids:
        while True:
            task = client.get(f"{base}/tasks/{uid}", headers=headers).json()
            if task["status"] in ("succeeded", "failed", "canceled"):
                if task["status"] != "succeeded":
                    raise RuntimeError(f"load task {uid}: {task}")
                break
            if time.monotonic() > deadline:
                raise RuntimeError("documents not indexed in time")
            time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--max-in-flight", type=int, default=None,
                        help="scatter.max_in_flight_per_node (default: the config default)")
    parser.add_argument("--queue-timeout-ms", type=int, default=None)
    parser.add_argument("--health-timeout-ms", type=int, default=None,
                        help="health.timeout_ms (default: the config default, 500)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not on PATH (Debian: apt-get install wrk)", file=sys.stderr)
        return 2
    scatter: dict = {}
    if args.max_in_flight is not None:
        scatter["max_in_flight_per_node"] = args.max_in_flight
    if args.queue_timeout_ms is not None:
        scatter["queue_timeout_ms"] = args.queue_timeout_ms
    sections = {"scatter": scatter} if scatter else {}
    if args.health_timeout_ms is not None:
        sections["health"] = {"timeout_ms": args.health_timeout_ms}
    bodies = search_bodies(500)
    with tempfile.TemporaryDirectory(prefix="bench-overload-") as tmp, \
            local_cluster(Path(tmp) / "cluster", nodes=3, groups=1, rf=1, shards=16,
                          sections=sections) as cluster, httpx.Client(timeout=120) as client:
        node_key = cluster.config.node_master_key
        print(f"loading {args.docs} documents through Miroir ...", file=sys.stderr)
        started = time.monotonic()
        load(client, cluster.url, corpus(args.docs), {})
        print(f"loaded in {time.monotonic() - started:.1f} s", file=sys.stderr)
        proxy_script = lua_script(Path(tmp) / "proxy.lua", bodies, None)
        node_script = lua_script(Path(tmp) / "node.lua", bodies, node_key)
        shares = [CONNECTIONS // 3 + (1 if i < CONNECTIONS % 3 else 0) for i in range(3)]
        started = time.monotonic()
        warm(client, f"{cluster.url}/indexes/{INDEX}/search", bodies)
        print(f"warmed the nodes' caches in {time.monotonic() - started:.1f} s", file=sys.stderr)
        miroir_rates, direct_rates, fives = [], [], 0.0
        for round_number in range(args.rounds):
            node_pids = [node.process.pid for node in cluster.nodes]
            nodes_before, proxy_before = [cpu_seconds(p) for p in node_pids], cpu_seconds(
                cluster.proxy.pid)
            proc = run_wrk(f"{cluster.url}/indexes/{INDEX}/search", CONNECTIONS, args.seconds,
                           proxy_script)
            through = parse(proc.communicate()[0])
            nodes_between = [cpu_seconds(p) for p in node_pids]
            proxy_cpu = cpu_seconds(cluster.proxy.pid) - proxy_before
            procs = [run_wrk(f"{node.address}/indexes/{INDEX}/search", share, args.seconds,
                             node_script) for node, share in zip(cluster.nodes, shares, strict=True)]
            direct = [parse(p.communicate()[0]) for p in procs]
            nodes_after = [cpu_seconds(p) for p in node_pids]
            miroir_node_cpu = sum(nodes_between) - sum(nodes_before)
            direct_node_cpu = sum(nodes_after) - sum(nodes_between)
            direct_searches = sum(d["ok"] for d in direct)
            print(f"round {round_number + 1}: node CPU per node search: through Miroir "
                  f"{1000 * miroir_node_cpu / max(1.0, 3 * through['ok']):.2f} ms, direct "
                  f"{1000 * direct_node_cpu / max(1.0, direct_searches):.2f} ms; Miroir's CPU "
                  f"per search {1000 * proxy_cpu / max(1.0, through['ok']):.2f} ms")
            direct_ok = sum(d["ok"] for d in direct) / args.seconds
            miroir_ok = through["ok"] / args.seconds
            miroir_rates.append(miroir_ok)
            direct_rates.append(direct_ok)
            fives += through["other5xx"]
            print(f"round {round_number + 1}: Miroir {miroir_ok:.1f} searches/s (partial "
                  f"{through['partial']:.0f}, shed "
                  f"{through['shed']:.0f}, other 5xx {through['other5xx']:.0f}, other "
                  f"{through['other']:.0f}, socket errors {through['errors']:.0f}, timeouts "
                  f"{through['timeouts']:.0f}, p50 {through['p50_ms']:.0f} ms, p99 "
                  f"{through['p99_ms']:.0f} ms) | direct {direct_ok:.1f} searches/s (5xx "
                  f"{sum(d['other5xx'] + d['shed'] for d in direct):.0f}, p99 "
                  f"{max(d['p99_ms'] for d in direct):.0f} ms)")
            if through["first5xx"]:
                print(f"  first other 5xx: {through['first5xx']}")
        nodes_per_search = 3  # RF=1, 16 shards over 3 nodes: every node owns some shard
        miroir_ok, direct_ok = statistics.median(miroir_rates), statistics.median(direct_rates)
        literal = miroir_ok / direct_ok if direct_ok else 0.0
        node_work = literal * nodes_per_search
        print(f"Miroir {miroir_ok:.1f} searches/s, direct {direct_ok:.1f} searches/s, "
              f"5xx other than miroir_overloaded: {fives:.0f}")
        print(f"literal ratio (searches/s) {literal:.2f}; node-work ratio {node_work:.2f} "
              f"(bar 0.9; zero other 5xx: {'met' if fives == 0 else 'NOT met'})")
        print(f"ratio={node_work:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
