"""Meilisearch's own OpenAPI document (1.53, vendored as `tests/data/meilisearch-openapi-1.53.json`)
driven against a real `miroir dev` cluster with schemathesis: no answer is a 5xx, and every
request is answered within the deadline (issue 20).

Why a real process tree over HTTP and not the app in-process: the hangs this guards against
were keep-alive connections left stuck after an early answer (401/405/415), which only a real
server and a client that reuses its connection can show. The test keeps one `requests` session
(keep-alive) for the whole run, with and without the master key, so early refusals are mixed
into the same connection as ordinary answers.

Bounded for CI (a fixed seed, a few examples per operation, the fuzzing phase only); the long
run for release checks is the schemathesis CLI, docs/operations.md "Fuzzing before a release".
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings

from miroir.cli.dev import local_cluster

pytestmark = pytest.mark.acceptance

# Meilisearch's OpenAPI document (1.53), vendored so CI walks it wherever the clone lives.
SPEC = Path(__file__).resolve().parents[1] / "data" / "meilisearch-openapi-1.53.json"
MASTER_KEY = "fuzz-master-key-0123456789"
NODE_TIMEOUT_MS = 2000
# The longest a request may take: a read's catalog lookup plus its scatter each get one node
# timeout (cluster/search.py), and a loaded CI machine gets a few seconds more.
DEADLINE_S = 2 * NODE_TIMEOUT_MS / 1000 + 4
EXAMPLES_PER_OPERATION = 3
SEED = 20  # the number: any fixed value makes the run repeatable


@pytest.fixture(scope="module")
def proxy_url(tmp_path_factory):
    sections = {"scatter": {"node_timeout_ms": NODE_TIMEOUT_MS}}
    with local_cluster(tmp_path_factory.mktemp("fuzz"), nodes=3, groups=1, rf=1, shards=8,
                       master_key=MASTER_KEY, admin_key=MASTER_KEY + "-admin",
                       sections=sections) as cluster:
        # One index with a document, so operations on `{index_uid}` sometimes hit a real one.
        session = requests.Session()
        auth = {"Authorization": f"Bearer {MASTER_KEY}"}
        session.post(f"{cluster.url}/indexes/movies/documents", json=[{"id": 1, "title": "a"}],
                     headers=auth, timeout=DEADLINE_S)
        yield cluster.url


def test_no_operation_answers_5xx_or_past_the_deadline(proxy_url):
    schema = schemathesis.openapi.from_path(SPEC)
    session = requests.Session()  # one keep-alive connection for the whole run
    problems: list[str] = []
    sent = 0

    def fuzz(operation):
        @seed(SEED)
        @settings(max_examples=EXAMPLES_PER_OPERATION, phases=[Phase.generate], database=None,
                  deadline=None, suppress_health_check=list(HealthCheck), print_blob=False)
        @given(case=operation.as_strategy())
        def exercise(case):
            nonlocal sent
            sent += 1
            # Every other request without the key: early 401s on the same connection.
            headers = {"Authorization": f"Bearer {MASTER_KEY}"} if sent % 2 else {}
            started = time.monotonic()
            try:
                response = case.call(base_url=proxy_url, session=session, headers=headers,
                                     timeout=DEADLINE_S)
            except requests.Timeout:
                problems.append(f"{operation.label}: no answer within {DEADLINE_S} s")
                session.close()  # a stuck connection is not reused for the next case
                return
            elapsed = time.monotonic() - started
            if response.status_code >= 500:
                problems.append(f"{operation.label}: {response.status_code} {response.text[:300]}"
                                f" for {case.as_curl_command()}")
            if elapsed > DEADLINE_S:
                problems.append(f"{operation.label}: answered after {elapsed:.1f} s")

        exercise()

    for result in schema.get_all_operations():
        fuzz(result.ok())
    assert sent >= 100, sent  # the document was loaded and generated requests
    assert not problems, "\n".join(problems)
