"""Every admin route the app serves (`/_miroir/*`) has its row in docs/http-api.md, as
`METHOD /_miroir/path` with `{name}` placeholders (any name: the docs say `{id}` where the code
says `<node_id>`)."""

from __future__ import annotations

import pathlib
import re

from miroir.config import config_from_dict
from miroir.proxy import create_app

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "http-api.md"


def documented_routes(text: str) -> set[tuple[str, str]]:
    found = re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/_miroir[^`?\s]*)", text)
    return {(method, re.sub(r"\{\w+\}", "{}", path)) for method, path in found}


def served_routes() -> set[tuple[str, str]]:
    config = config_from_dict({"nodes": [{"id": "n0", "address": "http://127.0.0.1:1",
                                          "replica_group": 0}], "shards": 1}, env={})
    served = set()
    for rule in create_app(config).url_map.iter_rules():
        if rule.rule.startswith("/_miroir"):
            path = re.sub(r"<(?:\w+:)?\w+>", "{}", rule.rule)
            served |= {(method, path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return served


def test_every_admin_route_is_documented():
    served = served_routes()
    assert ("GET", "/_miroir/stats") in served  # the check looks at the real table
    assert served - documented_routes(DOCS.read_text()) == set()


def test_the_check_sees_an_undocumented_route():
    assert documented_routes("| `GET /_miroir/a/{x}/b` | ... |") == {("GET", "/_miroir/a/{}/b")}
    assert {("GET", "/_miroir/stats")} - documented_routes("`GET /_miroir/topology`") != set()
