"""Graceful shutdown of a real `miroir serve` with a write in flight.

A node is frozen with SIGSTOP so a write is provably still waiting on it when the proxy gets
SIGTERM: the proxy must still answer that write once the node's deadline passes (here 503
`miroir_no_quorum`, since RF=1 leaves the frozen node's shards nowhere else), then exit cleanly.
"In flight" is observed, not assumed: the other nodes have already received their share.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from miroir.core.placement import shard_for_key

from .conftest import MASTER_KEY, node_sdk, sdk, wait

pytestmark = pytest.mark.acceptance

PATIENCE_SECONDS = 20.0


def test_a_write_in_flight_at_sigterm_is_answered_when_its_node_deadline_passes(launch):
    shards = 8
    cluster = launch(nodes=3, groups=1, rf=1, shards=shards, sections={"scatter": {"node_timeout_ms": 2000}})
    client = sdk(cluster)
    assert wait(client, client.create_index("inflight", {"primaryKey": "id"})).status == "succeeded"
    docs = [{"id": f"k{i}"} for i in range(200)]
    assert len({shard_for_key(d["id"], shards) for d in docs}) == shards

    frozen = cluster.node("node-1")
    witness = "node-2"
    answers: list[object] = []

    def write() -> None:
        try:
            answers.append(httpx.post(
                f"{cluster.url}/indexes/inflight/documents", json=docs,
                headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=PATIENCE_SECONDS,
            ))
        except httpx.HTTPError as error:
            answers.append(error)

    os.killpg(frozen.process.pid, signal.SIGSTOP)
    writer = threading.Thread(target=write)
    try:
        writer.start()
        give_up = time.monotonic() + PATIENCE_SECONDS
        while not node_sdk(cluster, witness).get_tasks({"indexUids": ["inflight"],
                                                        "types": ["documentAdditionOrUpdate"]}).results:
            assert time.monotonic() < give_up, "the write never reached the other nodes"
            time.sleep(0.02)
        cluster.proxy.send_signal(signal.SIGTERM)
        writer.join(PATIENCE_SECONDS)
        assert not writer.is_alive()
    finally:
        os.killpg(frozen.process.pid, signal.SIGCONT)

    assert len(answers) == 1 and isinstance(answers[0], httpx.Response), answers
    answer = answers[0]
    assert answer.status_code == 503
    assert answer.json()["code"] == "miroir_no_quorum"
    assert cluster.proxy.wait(PATIENCE_SECONDS) == 0
