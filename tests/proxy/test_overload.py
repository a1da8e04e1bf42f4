"""Per-node concurrency limits through the proxy: a read that cannot afford the queue is
answered 503 `miroir_overloaded` with `Retry-After` at once, reads that can are answered, and
the metrics count both (issue 20)."""

from __future__ import annotations

import trio

from tests.proxy.harness import running_proxy


async def seeded(h):
    added = (await h.send("POST", "/indexes/seed/documents",
                          [{"id": i, "title": f"night {i}"} for i in range(20)]))[1]
    await h.wait_task(added["taskUid"])


async def test_reads_beyond_the_queue_are_shed_at_once_with_retry_after():
    async with running_proxy(nodes=2, shards=4, max_in_flight_per_node=1, queue_timeout_ms=300,
                             node_timeout_ms=2000) as h:
        await seeded(h)
        for node in h.nodes:
            h.transport.delay[node] = 0.2  # every node call takes 200 ms
        # Teach the gates the service time (one search at a time: never queued).
        status, _, _ = await h.send("POST", "/indexes/seed/search", {"q": "night"})
        assert status == 200
        answers = []

        async def search():
            started = trio.current_time()
            status, body, headers = await h.send("POST", "/indexes/seed/search", {"q": "night"})
            answers.append((status, body, headers, trio.current_time() - started))

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(search)
        ok = [a for a in answers if a[0] == 200]
        shed = [a for a in answers if a[0] != 200]
        # One slot per node, 300 ms of patience, 200 ms per call: the first runs, one can wait
        # (one round, 0.2 s), the rest would wait longer: shed.
        assert ok and shed, [a[0] for a in answers]
        for status, body, headers, took in shed:
            assert status == 503 and body["code"] == "miroir_overloaded", body
            assert body["type"] == "system" and set(body) == {"message", "code", "type", "link"}
            assert int(headers["Retry-After"]) >= 1
            assert took < 0.35, "shed at once or at the latest at the queue timeout"
        metrics = h.app.extensions["miroir"].metrics.render()[0].decode()
        shed_count = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                         if line.startswith("miroir_shed_requests_total{"))
        assert shed_count == len(shed)
        assert "miroir_node_queue_depth{" in metrics


async def test_without_a_limit_nothing_is_shed():
    async with running_proxy(nodes=2, shards=4, max_in_flight_per_node=0) as h:
        await seeded(h)
        for node in h.nodes:
            h.transport.delay[node] = 0.05
        statuses = []

        async def search():
            statuses.append((await h.send("POST", "/indexes/seed/search", {"q": "night"}))[0])

        async with trio.open_nursery() as nursery:
            for _ in range(8):
                nursery.start_soon(search)
        assert statuses == [200] * 8
