"""One online rebalance against real processes (`miroir serve`, devnodes), driven over HTTP:
the acceptance test and benchmarks/bench_rebalance.py share it.

A writer keeps updating documents (every acknowledged version remembered) and a reader keeps
searching, both counting 5xx answers, while a node is added (then drained and removed) through
the admin API and the rebalance runs to `done`.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import httpx

from miroir.cli.dev import LocalCluster, start_nodes, stop_all

INDEX = "docs"
REBALANCE_PATIENCE_S = 300.0


@attrs.define
class Traffic:
    """Client traffic in two threads while something happens; what it saw."""

    cluster: LocalCluster
    master_key: str
    expected: dict[int, int]
    stop: threading.Event = attrs.Factory(threading.Event)
    server_errors: list[str] = attrs.Factory(list)
    searches: int = 0
    search_seconds: float = 0.0
    writes: int = 0
    # Also add this many new documents per batch (ids after the corpus), remembered once
    # acknowledged like the updates.
    new_per_batch: int = 0
    _threads: list[threading.Thread] = attrs.Factory(list)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.cluster.url, timeout=60,
                            headers={"Authorization": f"Bearer {self.master_key}"})

    def start(self, *, write: bool = True) -> None:
        self.stop.clear()
        self._threads = [threading.Thread(target=self._read, daemon=True)]
        if write:
            self._threads.append(threading.Thread(target=self._write, daemon=True))
        for thread in self._threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=120)

    def _note(self, response: httpx.Response, what: str) -> None:
        if response.status_code >= 500:
            self.server_errors.append(f"{what}: {response.status_code} {response.text[:200]}")

    def _read(self) -> None:
        words = ["alpha", "beta", "gamma", "delta", ""]
        with self.client() as http:
            while not self.stop.is_set():
                started = time.perf_counter()
                response = http.post(f"/indexes/{INDEX}/search",
                                     json={"q": random.choice(words), "limit": 10})
                self.search_seconds += time.perf_counter() - started
                self.searches += 1
                self._note(response, "search")

    def _write(self) -> None:
        rng = random.Random(7)
        version = 0
        next_id = max(self.expected) + 1
        with self.client() as http:
            while not self.stop.is_set():
                version += 1
                ids = rng.sample(sorted(self.expected), 50) + list(
                    range(next_id, next_id + self.new_per_batch))
                next_id += self.new_per_batch
                batch = [document(i, version) for i in ids]
                response = http.post(f"/indexes/{INDEX}/documents", json=batch)
                self._note(response, "write")
                if response.status_code != 202:
                    continue
                if wait_task(http, response.json()["taskUid"]) == "succeeded":
                    for i in ids:
                        self.expected[i] = version
                    self.writes += 1


def document(i: int, version: int) -> dict[str, Any]:
    words = ["alpha", "beta", "gamma", "delta"]
    return {"id": i, "v": version, "title": f"{words[i % 4]} {words[(i // 4) % 4]} doc {i}"}


def wait_task(http: httpx.Client, uid: int, patience_s: float = 120.0) -> str:
    give_up = time.monotonic() + patience_s
    while time.monotonic() < give_up:
        status = http.get(f"/tasks/{uid}").json()["status"]
        if status in ("succeeded", "failed", "canceled"):
            return status
        time.sleep(0.02)
    raise TimeoutError(f"task {uid} did not finish")


def fill(cluster: LocalCluster, master_key: str, count: int) -> dict[int, int]:
    with httpx.Client(base_url=cluster.url, timeout=120,
                      headers={"Authorization": f"Bearer {master_key}"}) as http:
        created = http.post("/indexes", json={"uid": INDEX, "primaryKey": "id"}).json()
        assert wait_task(http, created["taskUid"]) == "succeeded"
        for start in range(0, count, 2000):
            batch = [document(i, 0) for i in range(start, min(count, start + 2000))]
            answer = http.post(f"/indexes/{INDEX}/documents", json=batch)
            assert answer.status_code == 202, answer.text
            assert wait_task(http, answer.json()["taskUid"]) == "succeeded"
    return dict.fromkeys(range(count), 0)


def admin(cluster: LocalCluster, admin_key: str) -> httpx.Client:
    return httpx.Client(base_url=cluster.url, timeout=60,
                        headers={"Authorization": f"Bearer {admin_key}"})


def wait_rebalance(cluster: LocalCluster, admin_key: str) -> dict[str, Any]:
    give_up = time.monotonic() + REBALANCE_PATIENCE_S
    with admin(cluster, admin_key) as http:
        while time.monotonic() < give_up:
            status = http.get("/_miroir/rebalance").json()
            if status["state"] in ("done", "failed"):
                return status
            time.sleep(0.2)
    raise TimeoutError("the rebalance did not finish")


def start_extra_node(cluster: LocalCluster, node_id: str, workdir: Path):
    (node,) = start_nodes([(node_id, 0)], master_key=cluster.config.node_master_key,
                          workdir=workdir)
    return node


def stop_extra_nodes(nodes) -> None:
    stop_all(nodes)


def documents_on(address: str, node_key: str, index: str = INDEX) -> list[dict[str, Any]]:
    with httpx.Client(base_url=address, timeout=120,
                      headers={"Authorization": f"Bearer {node_key}"}) as http:
        answer = http.post(f"/indexes/{index}/documents/fetch",
                           json={"limit": 1_000_000, "fields": ["id", "_miroir_shard"]})
        answer.raise_for_status()
        return answer.json()["results"]


def all_documents(cluster: LocalCluster, master_key: str) -> dict[int, int]:
    found: dict[int, int] = {}
    with httpx.Client(base_url=cluster.url, timeout=120,
                      headers={"Authorization": f"Bearer {master_key}"}) as http:
        offset = 0
        while True:
            page = http.get(f"/indexes/{INDEX}/documents",
                            params={"offset": offset, "limit": 5000}).json()
            found.update((d["id"], d["v"]) for d in page["results"])
            offset += 5000
            if offset >= page["total"]:
                return found
