"""Compressed request bodies through the proxy: gzip, deflate and br decoded on every body route,
the size limit on the decoded bytes, Meilisearch's errors for unreadable and unknown encodings."""

import gzip
import zlib

import brotli
import orjson
import pytest

from tests.proxy.harness import running_proxy

ENCODERS = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress}


def stored_ids(h, index="movies"):
    return sorted(
        {i for app in h.nodes.values() if index in app.engine.indexes
         for i in app.engine.indexes[index].documents},
        key=int,
    )


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
@pytest.mark.parametrize(
    ("content_type", "raw"),
    [
        ("application/json", orjson.dumps([{"id": i, "t": f"doc {i}"} for i in range(20)])),
        ("application/x-ndjson",
         b"\n".join(orjson.dumps({"id": i, "t": f"doc {i}"}) for i in range(20))),
        ("text/csv", b"id,t\n" + b"\n".join(f"{i},doc {i}".encode() for i in range(20))),
    ],
)
async def test_compressed_document_bodies_are_written_like_plain_ones(encoding, content_type, raw):
    async with running_proxy(nodes=3) as h:
        status, body, _ = await h.send(
            "POST", "/indexes/movies/documents", ENCODERS[encoding](raw),
            headers={"Content-Type": content_type, "Content-Encoding": encoding},
        )
        assert status == 202, body
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "succeeded"
        assert task["details"]["receivedDocuments"] == 20
        assert stored_ids(h) == [str(i) for i in range(20)]


async def test_compressed_json_routes_settings_and_search():
    async with running_proxy(nodes=2) as h:
        settings = brotli.compress(orjson.dumps({"filterableAttributes": ["color"]}))
        status, body, _ = await h.send(
            "PATCH", "/indexes/movies/settings", settings,
            headers={"Content-Type": "application/json", "Content-Encoding": "br"},
        )
        assert status == 202, body
        assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
        docs = [{"id": i, "color": "red" if i % 2 else "blue"} for i in range(10)]
        body = (await h.send("POST", "/indexes/movies/documents", docs))[1]
        await h.wait_task(body["taskUid"])
        query = gzip.compress(orjson.dumps({"filter": "color = red", "limit": 100}))
        status, result, _ = await h.send(
            "POST", "/indexes/movies/search", query,
            headers={"Content-Type": "application/json", "Content-Encoding": "GZip "},
        )
        assert status == 200, result
        assert sorted(hit["id"] for hit in result["hits"]) == [1, 3, 5, 7, 9]


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
async def test_a_zip_bomb_is_payload_too_large_and_nothing_is_sent(encoding):
    # 8 MB of one byte compresses to a few kB (br: a few bytes): well under the 64 kB limit
    # as sent, far over it once decoded.
    bomb = ENCODERS[encoding](b"[" + b" " * 8_000_000 + b"]")
    async with running_proxy(nodes=2, max_body_bytes=65_536) as h:
        assert len(bomb) < 65_536
        for path in ("/indexes/movies/documents", "/indexes/movies/search"):
            status, body, _ = await h.send(
                "POST", path, bomb,
                headers={"Content-Type": "application/json", "Content-Encoding": encoding},
            )
            assert status == 413, body
            assert body["code"] == "payload_too_large"
            assert body["message"].endswith("The maximum accepted payload size is 65536 B.")
        assert h.transport.calls == []


async def test_a_body_that_does_not_decode_is_meilisearchs_incomplete_payload():
    async with running_proxy(nodes=2) as h:
        plain = orjson.dumps([{"id": 1}])
        for encoding, sent in (("gzip", plain), ("gzip", gzip.compress(plain)[:-4]),
                               ("deflate", plain), ("br", b"\xff" * 16)):
            status, body, _ = await h.send(
                "POST", "/indexes/movies/documents", sent,
                headers={"Content-Type": "application/json", "Content-Encoding": encoding},
            )
            assert (status, body) == (400, {
                "message": "The provided payload is incomplete and cannot be parsed",
                "code": "bad_request", "type": "invalid_request",
                "link": "https://docs.meilisearch.com/errors#bad_request",
            }), encoding
        assert h.transport.calls == []


async def test_an_unknown_encoding_leaves_the_body_as_sent_as_meilisearch_does():
    async with running_proxy(nodes=2) as h:
        plain = orjson.dumps([{"id": 1}])
        status, body, _ = await h.send(
            "POST", "/indexes/movies/documents", plain,
            headers={"Content-Type": "application/json", "Content-Encoding": "zstd"},
        )
        assert status == 202
        assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
        # A chain of encodings is not decoded either: the compressed bytes are no JSON.
        status, body, _ = await h.send(
            "POST", "/indexes/movies/documents", gzip.compress(plain),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip, br"},
        )
        assert status == 400 and body["code"] == "malformed_payload"
