"""The rebalancer's list of indexes to move is the union of every serving node's, so one node
wiped unnoticed (between two health probes) cannot hide an index from the copy (found while
diagnosing simulator seed 306: the same one-node view failed writes in the index lookup)."""

from __future__ import annotations

import pytest
import trio

from miroir.cluster.rebalance_nodes import MoveIncomplete, _indexes
from miroir.cluster.runtime import Cluster, ClusterSettings
from miroir.core.topology import Node, Topology
from miroir.store.memory import MemoryStore
from miroir.transport.base import FailureKind
from miroir.transport.fake import Answer, Fail, FakeTransport


def cluster_of(transport: FakeTransport) -> Cluster:
    nodes = tuple(Node(f"n{i}", f"http://n{i}.invalid", 0) for i in range(3))
    topology = Topology(shards=4, replication_factor=1, replica_groups=1, nodes=nodes)
    return Cluster(topology, transport, MemoryStore(), ClusterSettings(node_timeout_ms=1000))


def listing(*uids: str):
    results = [{"uid": uid, "primaryKey": "id"} for uid in uids]
    answer = Answer(200, {"results": results, "offset": 0, "limit": 10000, "total": len(results)})
    return lambda call: answer


def test_an_index_one_wiped_reader_lacks_is_still_listed():
    transport = FakeTransport()
    transport.handle("n0", listing())  # wiped: answers, but holds nothing
    transport.handle("n1", listing("books", "movies"))
    transport.handle("n2", listing("movies", "songs"))
    found = trio.run(_indexes, cluster_of(transport), ["n0", "n1", "n2"])
    assert [index["uid"] for index in found] == ["books", "movies", "songs"]


def test_no_reader_answering_is_an_incomplete_move():
    transport = FakeTransport()
    for node in ("n0", "n1", "n2"):
        transport.handle(node, lambda call: Fail(FailureKind.REFUSED))
    with pytest.raises(MoveIncomplete):
        trio.run(_indexes, cluster_of(transport), ["n0", "n1", "n2"])
