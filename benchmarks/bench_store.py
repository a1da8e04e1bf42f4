"""Per-call cost of the task stores, beside an in-process dict baseline.

Every store call hops to a worker thread (trio.to_thread.run_sync under a CapacityLimiter) and
back. This prints operations per second for, in the same process and run:

  - dict baseline: the same operation on a plain dict inside an async function (no thread hop)
  - memory store: MemoryStore (dicts plus record objects, no thread hop)
  - bare hop: to_thread.run_sync of a function that does nothing (the cost of the hop alone)
  - sqlite (synchronous=full, the default) / sqlite-normal / redis: the real backends
  - redis direct: the same redis-py call made on the event loop thread (blocking it), to show
    what the hop adds on top of the network round trip

for get_task, put_task (insert), allocate_task_uid, create_task (allocate + insert in one step:
what a client write costs) and modify_task, sequentially (one caller)
and with 8 concurrent callers. Last lines: ratio=<store ops/s / dict ops/s> per backend.

    python benchmarks/bench_store.py [--seconds 0.5] [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid

import redis as redis_client
import trio

from miroir.core.tasks import NodeTask, Task, apply_node_updates
from miroir.store import open_store

CONCURRENCY = 8


def sample_task(uid: int) -> Task:
    return Task(uid=uid, type="documentAdditionOrUpdate", enqueued_at=1_764_000_000_000 + uid,
                index_uid="movies", details={"receivedDocuments": 1000, "indexedDocuments": None},
                node_tasks={f"node-{i}": NodeTask(uid * 10 + i) for i in range(4)})


async def rate(operation, seconds: float, callers: int) -> float:
    """Calls per second of `operation(i)` with `callers` concurrent loops for `seconds`."""
    count = 0
    deadline = time.perf_counter() + seconds

    async def loop(start: int) -> None:
        nonlocal count
        i = start
        while time.perf_counter() < deadline:
            await operation(i)
            i += callers
            count += 1

    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for caller in range(callers):
            nursery.start_soon(loop, caller)
    return count / (time.perf_counter() - began)


class DictBaseline:
    """The floor: the same four operations on a dict, no serialization, no thread."""

    def __init__(self) -> None:
        self.tasks: dict[int, Task] = {}
        self.last = 0

    async def put_task(self, task: Task) -> None:
        self.tasks[task.uid] = task

    async def get_task(self, uid: int) -> Task | None:
        return self.tasks.get(uid)

    async def allocate_task_uid(self) -> int:
        self.last += 1
        return self.last

    async def create_task(self, make):
        task = make(await self.allocate_task_uid())
        self.tasks[task.uid] = task
        return task

    async def modify_task(self, uid, change):
        self.tasks[uid] = change(self.tasks[uid])
        return self.tasks[uid]


async def measure(name: str, store, seconds: float) -> dict[str, float]:
    results = {}
    preload = 200
    for uid in range(1, preload + 1):
        await store.put_task(sample_task(uid))
    next_uid = [10_000]

    async def put(_: int) -> None:
        next_uid[0] += 1
        await store.put_task(sample_task(next_uid[0]))

    async def get(i: int) -> None:
        await store.get_task(1 + i % preload)

    async def allocate(_: int) -> None:
        await store.allocate_task_uid()

    async def create(_: int) -> None:
        await store.create_task(sample_task)

    async def modify(i: int) -> None:
        update = {"node-0": NodeTask(1, "processing")}
        await store.modify_task(1 + i % preload, lambda t: apply_node_updates(t, update, 1))

    for op_name, op in (("get", get), ("put", put), ("allocate", allocate), ("create", create),
                        ("modify", modify)):
        for callers in (1, CONCURRENCY):
            results[f"{op_name}x{callers}"] = await rate(op, seconds, callers)
    print(f"{name:14s} " + "  ".join(f"{k}={v:.0f}/s" for k, v in results.items()), flush=True)
    return results


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=0.5)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    print(f"ops/s over {args.seconds}s each; x1 = one caller, x{CONCURRENCY} = {CONCURRENCY} "
          "concurrent callers", flush=True)
    baseline = await measure("dict baseline", DictBaseline(), args.seconds)
    ratios = {}

    memory = await open_store({"backend": "memory"})
    ratios["memory"] = await measure("memory", memory, args.seconds)

    limiter = trio.CapacityLimiter(4)

    async def hop(_: int) -> None:
        await trio.to_thread.run_sync(lambda: None, limiter=limiter)

    hop_rates = {f"hopx{c}": await rate(hop, args.seconds, c) for c in (1, CONCURRENCY)}
    print("bare hop       " + "  ".join(f"{k}={v:9.0f}/s" for k, v in hop_rates.items()))

    with tempfile.TemporaryDirectory() as tmp:
        sqlite = await open_store({"backend": "sqlite", "path": f"{tmp}/bench.db"})
        ratios["sqlite"] = await measure("sqlite", sqlite, args.seconds)
        await sqlite.close()
        sqlite = await open_store({"backend": "sqlite", "path": f"{tmp}/bench-normal.db",
                                   "sqlite_synchronous": "normal"})
        ratios["sqlite-normal"] = await measure("sqlite-normal", sqlite, args.seconds)
        await sqlite.close()

    prefix = f"miroir-bench:{uuid.uuid4().hex}:"
    redis_store = await open_store({"backend": "redis", "url": args.redis, "key_prefix": prefix})
    ratios["redis"] = await measure("redis", redis_store, args.seconds)
    await redis_store.close()
    direct = redis_client.Redis.from_url(args.redis)
    key = prefix + "task:1"

    async def direct_get(_: int) -> None:
        direct.get(key)  # blocks the event loop for one round trip: the hop-free floor

    print(f"redis direct   getx1={await rate(direct_get, args.seconds, 1):9.0f}/s (on the loop)")
    keys = list(direct.scan_iter(match=prefix + "*", count=1000))
    if keys:
        direct.delete(*keys)
    direct.close()

    for backend, values in ratios.items():
        parts = "  ".join(f"{k}={values[k] / baseline[k]:.4f}" for k in values)
        print(f"ratio {backend:13s} {parts}")


if __name__ == "__main__":
    trio.run(main)
