"""Through the official SDK, against a real `miroir serve` and three real nodes (RG=1, RF=1).

Index creation with and without a declared primary key, 1,000 documents written and read back
one by one, and a look behind Miroir's back: every document sits on its shard's owner only.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from miroir.core.documents import canonical_document_id
from miroir.core.placement import shard_for_key

from .conftest import node_sdk, owners, sdk, wait

pytestmark = pytest.mark.acceptance

GENRES = ("drama", "comedy", "action", "horror")


def thousand_documents() -> list[dict]:
    # Integer and string ids alike, since both are valid Meilisearch ids and hash differently.
    docs = []
    for i in range(1000):
        doc_id = i if i % 2 else f"doc-{i}"
        docs.append({"id": doc_id, "title": f"title {i}", "genre": GENRES[i % 4],
                     "rank": i, "tags": [f"t{i % 7}", f"t{i % 11}"], "meta": {"n": i}})
    return docs


def songs_ndjson() -> bytes:
    # Shaped like Meilisearch's songs dataset: string ids, dashes in field names.
    lines = [
        json.dumps({"id": str(412559401 + 7 * i), "title": f"song {i}", "album": f"album {i % 13}",
                    "artist": f"artist {i % 17}", "released-timestamp": 1341100800 + i})
        for i in range(225)
    ]
    return "\n".join(lines).encode()


@pytest.fixture(scope="module")
def movies(cluster):
    """The 1,000 documents, written once through Miroir into an index with a declared key."""
    client = sdk(cluster)
    created = wait(client, client.create_index("movies", {"primaryKey": "id"}))
    assert created.status == "succeeded", created.error
    docs = thousand_documents()
    added = wait(client, client.index("movies").add_documents(docs))
    assert added.status == "succeeded", added.error
    assert added.details["receivedDocuments"] == 1000
    return docs


def test_every_document_reads_back_by_id_exactly_as_written(cluster, movies):
    index = sdk(cluster).index("movies")
    assert index.fetch_info().primary_key == "id"
    for doc in movies:
        assert dict(index.get_document(doc["id"])) == doc
    assert index.get_stats().number_of_documents == len(movies)


def test_documents_land_only_on_their_shards_owners(cluster, movies):
    shards = cluster.config.shards
    expected_shard = {canonical_document_id(d["id"]): shard_for_key(canonical_document_id(d["id"]), shards)
                      for d in movies}
    copies: Counter[str] = Counter()
    for node in cluster.config.nodes:
        stored = node_sdk(cluster, node.id).index("movies").get_documents({"limit": 5000})
        for doc in stored.results:
            doc_id = canonical_document_id(doc.id)
            shard = expected_shard[doc_id]
            assert doc._miroir_shard == shard, f"{doc_id} tagged with the wrong shard on {node.id}"
            assert node.id in owners(cluster, node.replica_group, shard), (
                f"{doc_id} (shard {shard}) found on {node.id}, which does not own that shard"
            )
            copies[doc_id] += 1
    # RF=1, RG=1: exactly one copy of each document in the whole cluster.
    assert copies == Counter(dict.fromkeys(expected_shard, 1))


def test_an_index_without_a_declared_key_infers_it_once_for_every_node(cluster):
    client = sdk(cluster)
    songs = songs_ndjson()
    by_id = {song["id"]: song for song in map(json.loads, songs.splitlines())}
    created = wait(client, client.create_index("songs"))
    assert created.status == "succeeded", created.error
    assert client.get_index("songs").primary_key is None

    added = wait(client, client.index("songs").add_documents_ndjson(songs))
    assert added.status == "succeeded", added.error
    index = client.get_index("songs")
    assert index.primary_key == "id"
    for node in cluster.config.nodes:
        assert node_sdk(cluster, node.id).get_index("songs").primary_key == "id"
    for song_id in list(by_id)[::10]:
        assert dict(index.get_document(song_id)) == by_id[song_id]
    assert index.get_stats().number_of_documents == len(by_id)


def test_adding_documents_to_a_missing_index_creates_it_with_the_inferred_key(cluster):
    client = sdk(cluster)
    movies = [{"id": str(287947 + i), "title": f"movie {i}", "release_date": 1553299200 + i,
               "genre": GENRES[i % 4]} for i in range(31)]
    added = wait(client, client.index("small_movies").add_documents(movies))
    assert added.status == "succeeded", added.error
    index = client.get_index("small_movies")
    assert index.primary_key == "id"
    for movie in movies:
        assert dict(index.get_document(movie["id"])) == movie
