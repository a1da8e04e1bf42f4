"""The proxy prunes finished tasks older than the task store's TTL while it serves."""

import trio

from tests.proxy.harness import running_proxy


async def test_a_finished_task_older_than_the_ttl_is_pruned_while_serving():
    async with running_proxy(task_ttl_ms=50, prune_interval_s=0.02) as proxy:
        status, summary, _ = await proxy.send("POST", "/indexes", {"uid": "movies"})
        assert status == 202
        uid = summary["taskUid"]
        assert (await proxy.wait_task(uid))["status"] == "succeeded"
        with trio.fail_after(5):
            while True:
                status, body, _ = await proxy.send("GET", f"/tasks/{uid}")
                if status == 404:
                    break
                await trio.sleep(0.02)
        assert body["code"] == "task_not_found"
        # The index the task created is untouched: pruning forgets tasks, never data.
        status, _, _ = await proxy.send("GET", "/indexes/movies")
        assert status == 200


async def test_nothing_is_pruned_before_the_ttl():
    async with running_proxy(task_ttl_ms=60_000, prune_interval_s=0.01) as proxy:
        _, summary, _ = await proxy.send("POST", "/indexes", {"uid": "movies"})
        await proxy.wait_task(summary["taskUid"])
        await trio.sleep(0.1)
        status, task, _ = await proxy.send("GET", f"/tasks/{summary['taskUid']}")
        assert (status, task["status"]) == (200, "succeeded")
