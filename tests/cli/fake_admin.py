"""A small stand-in for Miroir's admin API, for `miroir ctl` tests that need answers a real Miroir
makes hard to stage (a reshard at a chosen progress, a 501 from a Miroir without resharding, a
rebalance that lost a replica): it answers the routes' shapes exactly, on a loopback port, from
a thread. Each request's method, path, admin key and body are recorded."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

ADMIN_KEY = "fake-admin-key-0123456789"
NEXT_WINDOW = "the next window opens at 2026-12-05T02:00:00Z (resharding.allowed_windows)"


def error(code: str, message: str) -> dict[str, str]:
    return {"message": message, "code": code, "type": "invalid_request",
            "link": f"https://docs.meilisearch.com/errors#{code}"}


@attrs.define
class FakeAdmin:
    aliases: dict[str, dict[str, Any]] = attrs.Factory(dict)
    reshards: dict[str, dict[str, Any]] = attrs.Factory(dict)
    in_window: bool = True
    steps: int = 4  # GETs of a reshard before it is done
    seen: list[tuple[str, str, str | None, Any]] = attrs.Factory(list)
    reshard_routes: bool = True  # False: answer 501 as a Miroir without resharding does
    fleet: dict[str, Any] = attrs.Factory(lambda: fleet_answers())

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path == "/_miroir/aliases" and method == "GET":
            listed = [self.aliases[a] for a in sorted(self.aliases)]
            return 200, {"results": listed, "total": len(listed)}
        found = re.fullmatch(r"/_miroir/aliases/([\w-]+)", path)
        if found:
            return self.alias(method, found.group(1), body)
        found = re.fullmatch(r"/_miroir/indexes/([\w-]+)/reshard", path)
        if found and method == "POST":
            if not self.in_window and not body.get("force"):
                return 409, error("miroir_reshard_outside_window",
                                  f"Resharding is allowed only inside a window; {NEXT_WINDOW}. "
                                  "Send `force: true` to start now.")
            reshard_id = f"rs-{len(self.reshards) + 1}"
            self.reshards[reshard_id] = {
                "id": reshard_id, "index": found.group(1), "fromShards": 8,
                "toShards": body["shards"], "state": "copying", "documentsCopied": 0,
                "documentsTotal": 4000, "documentsPerSecond": None, "etaSeconds": None,
                "errors": [], "startedAtMs": 1_000, "finishedAtMs": None, "polls": 0}
            return 202, {"reshardId": reshard_id, "index": found.group(1), "fromShards": 8,
                         "toShards": body["shards"], "state": "copying"}
        if path == "/_miroir/reshards" and method == "GET":
            if not self.reshard_routes:
                return 501, error("miroir_reshard_unavailable", "Resharding is not available.")
            listed = [{k: v for k, v in r.items() if k != "polls"}
                      for r in reversed(self.reshards.values())]
            return 200, {"results": listed, "total": len(listed)}
        found = re.fullmatch(r"/_miroir/reshards/([\w-]+)/rollback", path)
        if found and method == "POST" and found.group(1) in self.reshards:
            record = self.reshards[found.group(1)]
            record["state"], record["finishedAtMs"] = "rolledBack", 6_000
            return 202, {k: v for k, v in record.items() if k != "polls"}
        if method == "GET" and path in self.fleet:
            return 200, self.fleet[path]
        found = re.fullmatch(r"/_miroir/reshards/([\w-]+)", path)
        if found and method == "GET" and found.group(1) in self.reshards:
            record = self.reshards[found.group(1)]
            record["polls"] += 1
            done = min(self.steps, record["polls"])
            record["documentsCopied"] = record["documentsTotal"] * done // self.steps
            record["documentsPerSecond"] = 1000.0
            record["etaSeconds"] = float(self.steps - done)
            if done == self.steps:
                record["state"], record["finishedAtMs"] = "done", 5_000
            return 200, {k: v for k, v in record.items() if k != "polls"}
        return 404, error("not_found", f"no route {method} {path}")

    def alias(self, method: str, alias: str, body: Any) -> tuple[int, Any]:
        if method == "PUT":
            self.aliases[alias] = {"alias": alias, "index": body["index"], "shards": 8}
            return 200, self.aliases[alias]
        if alias not in self.aliases:
            return 404, error("miroir_alias_not_found", f"Alias `{alias}` not found.")
        if method == "DELETE":  # 204, no body: what the layouts branch's route answers
            self.aliases.pop(alias)
            return 204, None
        return 200, self.aliases[alias]


def fleet_answers() -> dict[str, Any]:
    """`status`'s routes for one node, one shard, fully covered, a rebalance waiting for a
    process and having lost a replica (the shapes `GET /_miroir/...` answer)."""
    node = {"id": "n0", "address": "http://10.0.0.1:7700", "replicaGroup": 0,
            "state": "healthy", "shardCount": 1, "lastSeenMs": None}
    return {
        "/_miroir/topology": {"version": "test", "storeBackend": "memory", "shards": 1,
                              "replicationFactor": 1, "replicaGroups": 1,
                              "fullyCovered": True, "rebalanceEnabled": True,
                              "nodes": [node]},
        "/_miroir/nodes": {"epoch": 3, "nodes": [{**node, "membership": "active"}]},
        "/_miroir/shards": {"shards": [{"shard": 0, "groups": [
            {"group": 0, "owners": ["n0"], "readable": ["n0"]}]}]},
        "/_miroir/rebalance": {
            "id": "rb-3-abc", "kind": "force_remove", "state": "copying", "shardsDone": 1,
            "shardsTotal": 2, "documentsCopied": 10, "documentsPerSecond": None,
            "etaSeconds": None, "errors": [], "waitingFor": ["proc-b@2"],
            "lost": ["group 0 shard 5: no replica left to copy from"]},
    }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAdmin

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        key = self.headers.get("authorization")
        self.fake.seen.append((self.command, self.path, key, body))
        if key != f"Bearer {ADMIN_KEY}":
            status, answer = 401, error("miroir_invalid_auth", "The admin API needs the admin key.")
        else:
            status, answer = self.fake.answer(self.command, self.path.split("?")[0], body)
        payload = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = _serve

    def log_message(self, *args: Any) -> None:  # quiet
        pass


class RunningFake:
    def __init__(self) -> None:
        self.fake = FakeAdmin()
        handler = type("Handler", (_Handler,), {"fake": self.fake})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RunningFake:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
