from tests.proxy.harness import running_proxy


async def test_create_index_add_documents_and_read_one_back():
    async with running_proxy() as h:
        status, body, _ = await h.send("POST", "/indexes", {"uid": "movies", "primaryKey": "id"})
        assert status == 202, body
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "succeeded", task
        docs = [{"id": i, "title": f"movie {i}"} for i in range(50)]
        status, body, _ = await h.send("POST", "/indexes/movies/documents", docs)
        assert status == 202, body
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "succeeded", task
        assert task["details"] == {"receivedDocuments": 50, "indexedDocuments": 50}
        status, body, _ = await h.send("GET", "/indexes/movies/documents/7")
        assert status == 200
        assert body == {"id": 7, "title": "movie 7"}
        status, body, _ = await h.send("GET", "/indexes/movies/stats")
        assert status == 200, body
        assert body["numberOfDocuments"] == 50
