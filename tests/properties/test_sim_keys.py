"""API keys and tenant tokens in the simulated cluster, under a hypothesis state machine: any
program of key creations, deletions, uses (searches, writes, reads, listings), tenant-token
searches and virtual time keeps these invariants.

  K1  every answer to a request carrying an API key is what the model decides: allowed exactly
      when the key exists (not deleted), has not expired at the request's virtual start time,
      holds the route's action (directly or through a wildcard) and covers the index; a refusal
      is 403 `invalid_api_key`, never a 401, a 500 or a partial write;
  K2  `GET /indexes` with a key lists only indexes the key's patterns cover;
  K3  a tenant-token search is refused exactly when its key would be refused a search or the
      token's rules do not cover the index; when it is answered, every hit satisfies the
      token's filter;
  K4  no answer carries a key's value or the master key (outside a key's own view).

The model is written here from Meilisearch's documented rules (wildcards, `prefix*` patterns,
expiry), not from `miroir.core.keys`, so it checks that module rather than repeating it. The
system is the real proxy app over the simulated nodes (`miroir.sim`), on virtual time.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from uuid import UUID

import jwt
import orjson
import pytest
import trio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

from miroir.core.filters import matches
from miroir.core.filters_parser import parse_filter_json
from miroir.sim.cluster import SIM_EPOCH_MS, SimSpec, open_sim_cluster
from tests.properties.test_sim_cluster import TrioThread

MASTER = "sim-master-key-0123456789"
INDEXES = ("movies_a", "movies_b", "songs")
ACTIONS = ("*", "search", "documents.*", "documents.add", "documents.get", "indexes.get",
           "indexes.*", "*.get", "version")
READS = {"search", "documents.get", "indexes.get", "version"}
PATTERNS = ("*", "movies_*", "movies_a", "songs", "so*")
FILTERS = ("tenant = a", "tenant != b", "year > 1991", "tenant = a AND year >= 1992")
# (method, path template, body, action, index or None)
OPERATIONS = (
    ("POST", "/indexes/{i}/search", {"q": ""}, "search"),
    ("POST", "/indexes/{i}/documents", [{"id": 100, "tenant": "c", "year": 2000}],
     "documents.add"),
    ("GET", "/indexes/{i}/documents", None, "documents.get"),
    ("GET", "/indexes/{i}", None, "indexes.get"),
    ("GET", "/indexes", None, "indexes.get"),
    ("GET", "/version", None, "version"),
)
SPEC = SimSpec(nodes=3, groups=1, rf=1, shards=4, master_key=MASTER)
DOCUMENTS = [{"id": n, "tenant": "abc"[n % 3], "year": 1990 + n % 4} for n in range(9)]


def holds(actions: tuple[str, ...], action: str) -> bool:
    """Meilisearch's documented wildcards: `*` is everything, `*.get` every read, `x.*` every
    action `x.<y>`."""
    return ("*" in actions or action in actions
            or ("*.get" in actions and action in READS)
            or any(a.endswith(".*") and a != "*.get" and action.startswith(a[:-1])
                   for a in actions))


def covers(patterns: tuple[str, ...], index: str) -> bool:
    return any(p == "*" or p == index or (p.endswith("*") and index.startswith(p[:-1]))
               for p in patterns)


class KeysInTheSimulator(RuleBasedStateMachine):
    keys = Bundle("keys")

    def __init__(self) -> None:
        super().__init__()
        self.runner = TrioThread()
        self.sim = None
        self.closed: trio.Event | None = None
        self.model: dict[str, dict] = {}  # uid -> the model's view of a key
        self.secrets: set[str] = {MASTER}

    @initialize(target=keys, seed=st.integers(0, 2**16),
                actions=st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3, unique=True),
                patterns=st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2,
                                  unique=True),
                expires_in_s=st.integers(1, 3))
    def start(self, seed: int, actions, patterns, expires_in_s):
        """The simulated cluster, and a first key that expires during the program (so every
        program can use a key past its expiry; rules drawing from `keys` wait for a key)."""
        async def hold(task_status=trio.TASK_STATUS_IGNORED) -> None:
            self.closed = trio.Event()
            async with open_sim_cluster(SPEC, seed=seed) as sim:
                for index in INDEXES:
                    await sim.request("POST", f"/indexes/{index}/documents", DOCUMENTS)
                    await sim.request("PATCH", f"/indexes/{index}/settings",
                                      {"filterableAttributes": ["tenant", "year"]})
                await trio.sleep(2)  # the nodes apply their tasks (virtual time)
                task_status.started(sim)
                await self.closed.wait()

        self.sim = self.runner.call(self.runner.nursery.start, hold)
        return self.create_key(actions, patterns, expires_in_s)

    def now_ms(self, at_s: float | None = None) -> int:
        """The cluster's wall clock (VirtualClock) at trio time `at_s` (default: now)."""
        at_s = self.runner.clock.current_time() if at_s is None else at_s
        return SIM_EPOCH_MS + round(at_s * 1000)

    def request(self, method, path, body=None, bearer=None):
        async def send():
            return await self.sim.request(method, path, body, bearer=bearer)

        answer = self.runner.call(send)
        assert answer.status < 500, (method, path, answer.status, answer.body)
        text = orjson.dumps(answer.body).decode() if answer.body is not None else ""
        if not path.startswith("/keys"):
            for secret in self.secrets:
                assert secret not in text, (method, path)  # K4
        return answer

    @rule(target=keys, actions=st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=3,
                                        unique=True),
          patterns=st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=2, unique=True),
          expires_in_s=st.one_of(st.none(), st.integers(1, 3)), uid=st.uuids(version=4))
    def create_key(self, actions, patterns, expires_in_s, uid=None):
        expires_at = None
        if expires_in_s is not None:
            expires_ms = (self.now_ms() // 1000 + expires_in_s) * 1000
            expires_at = datetime.fromtimestamp(expires_ms / 1000, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ")
        # The uid is drawn (not left to the proxy's uuid4) so an example replays exactly.
        body = {"actions": actions, "indexes": patterns, "expiresAt": expires_at,
                "uid": str(uid or UUID(int=len(self.model) + 1, version=4))}
        if body["uid"] in self.model:
            return None
        answer = self.request("POST", "/keys", body)
        scoped = "*" not in patterns
        if scoped and "version" in actions:
            assert (answer.status, answer.body["code"]) == (
                400, "index_scoped_api_key_with_global_action")
            return None
        assert answer.status == 201, answer.body
        key = answer.body
        self.secrets.add(key["key"])
        self.model[key["uid"]] = {
            "value": key["key"], "actions": tuple(actions), "indexes": tuple(patterns),
            "expires_ms": None if expires_in_s is None else expires_ms, "deleted": False}
        return key["uid"]

    @rule(uid=keys)
    def delete_key(self, uid):
        if uid is None:
            return
        answer = self.request("DELETE", f"/keys/{uid}")
        expected = 404 if self.model[uid]["deleted"] else 204
        assert answer.status == expected
        self.model[uid]["deleted"] = True

    def _usable(self, key: dict, started_s: float) -> bool | None:
        """Whether the key is alive at the request's start; None too close to its expiry to
        say (the auth check reads the clock a few virtual microseconds later)."""
        if key["deleted"]:
            return False
        if key["expires_ms"] is None:
            return True
        now_ms = self.now_ms(started_s)
        if abs(now_ms - key["expires_ms"]) < 5:
            return None
        return now_ms < key["expires_ms"]

    @rule(uid=keys, operation=st.sampled_from(OPERATIONS), index=st.sampled_from(INDEXES))
    def use_key(self, uid, operation, index):
        if uid is None:
            return
        key = self.model[uid]
        method, template, body, action = operation
        path = template.format(i=index)
        index_of_route = index if "{i}" in template else None
        answer = self.request(method, path, body, bearer=key["value"])
        usable = self._usable(key, answer.started)
        if usable is None:
            return
        if index_of_route is None:
            # An index-less route: a key limited to some indexes may list indexes (the handler
            # shows only its own) but may not use a global action.
            allowed = holds(key["actions"], action) and (
                "*" in key["indexes"] or action == "indexes.get")
        else:
            allowed = holds(key["actions"], action) and covers(key["indexes"], index_of_route)
        allowed = allowed and usable
        if allowed:  # K1
            assert answer.status in (200, 202), (path, key, answer.body)
        else:
            assert (answer.status, answer.body["code"]) == (403, "invalid_api_key"), (
                path, key, answer.body)
        if allowed and path == "/indexes":  # K2
            listed = {entry["uid"] for entry in answer.body["results"]}
            assert all(covers(key["indexes"], uid_) for uid_ in listed), (key, listed)

    @rule(uid=keys, rule_patterns=st.lists(st.sampled_from(PATTERNS), min_size=0, max_size=2,
                                           unique=True),
          tenant_filter=st.sampled_from(FILTERS), index=st.sampled_from(INDEXES))
    def tenant_search(self, uid, rule_patterns, tenant_filter, index):
        if uid is None:
            return
        key = self.model[uid]
        rules = {pattern: {"filter": tenant_filter} for pattern in rule_patterns}
        token = jwt.encode({"apiKeyUid": uid, "searchRules": rules}, key["value"],
                           algorithm="HS256")
        answer = self.request("POST", f"/indexes/{index}/search", {"q": "", "limit": 50},
                              bearer=token)
        usable = self._usable(key, answer.started)
        if usable is None:
            return
        allowed = (usable and holds(key["actions"], "search") and covers(key["indexes"], index)
                   and covers(tuple(rule_patterns), index))
        if not allowed:  # K3
            assert (answer.status, answer.body["code"]) == (403, "invalid_api_key"), (
                key, rules, index, answer.body)
            return
        assert answer.status == 200, answer.body
        condition = parse_filter_json(tenant_filter)
        for hit in answer.body["hits"]:
            assert matches(condition, hit), (tenant_filter, hit)

    @rule(seconds=st.floats(0.2, 4.0))
    def advance(self, seconds):
        self.runner.call(trio.sleep, seconds)

    @invariant()
    def keys_listed_are_the_live_ones(self):
        if self.sim is None:
            return
        answer = self.request("GET", "/keys?limit=1000")
        listed = {key["uid"] for key in answer.body["results"]}
        live = {uid for uid, key in self.model.items() if not key["deleted"]}
        assert live <= listed and not (listed & {u for u, k in self.model.items()
                                                 if k["deleted"]})

    def teardown(self):
        try:
            if self.closed is not None:
                self.runner.call(_set, self.closed)
        finally:
            self.runner.close()


async def _set(event: trio.Event) -> None:
    event.set()


KeysInTheSimulator.TestCase.settings = settings(
    # ~10 s by default; more when asked (MIROIR_SIM_EXAMPLES), as the cluster machine does.
    max_examples=int(os.environ.get("MIROIR_SIM_EXAMPLES", "0")) or 10,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestKeysInTheSimulator = pytest.mark.filterwarnings("ignore")(KeysInTheSimulator.TestCase)
