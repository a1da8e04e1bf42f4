"""SimCluster: the real Miroir proxy over simulated nodes, used as a client under virtual time.

Owns the assembly of one simulated deployment: a `SimTransport` with one devnode engine per node,
the in-memory task store, the unmodified proxy app from `miroir.proxy.create_app` with both
injected, the background services the app starts itself (`SimSpec.services`: the health checker,
the repair worker and the task poller, started by `miroir.cluster.services.run_services` like in
production), and trio's clock as the only clock (`VirtualClock`, the `clock` handed to
`create_app`: task times, "last seen" and health verdicts read virtual time). It also
owns the client side: one request at a time through the app's ASGI interface (as hypercorn calls
it), returning what a client saw (status, body, `X-Miroir-Degraded`), and the event trace.

Must never: decide anything a cluster module decides (routing, quorum, fallback, health), call a
cluster function instead of the app, read the wall clock, or draw unseeded randomness. There is
no `if simulated:` anywhere above the transport; the only things swapped are the transport, the
store and the clock, which `create_app` takes as parameters (with the description of which
services run); nothing reaches into the app once it runs.

Why the app and not `Cluster` directly: the issue's invariants are about what clients see
(the degraded header, 503 bodies), and the route handlers are where those are rendered. Driving
the app costs throughput (measured in docs/simulation.md); that is the price of observing the
real answers.

Determinism: `open_sim_cluster` runs the deployment under `miroir.sim.determinism.
trio_determinism(seed)` (trio's scheduler seeded, its scheduling mode pinned, deadline ties
broken by registration), which with seeded faults and virtual time makes a run a function of its
seed in any process; tests/sim/test_sim_cluster.py and tests/sim/test_simulate_cli.py prove it on
the traces.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import orjson
import trio

from miroir.cluster.services import ReconcileSettings, RepairSettings, Services
from miroir.config import MiroirConfig, config_from_dict
from miroir.core.index_layout import LAYOUTS_RECORD, Layouts, encode_layouts
from miroir.meili.extensions import DEGRADED_HEADER
from miroir.proxy import create_app
from miroir.sim.determinism import trio_determinism
from miroir.sim.transport import SIM_EPOCH, FaultModel, SimTransport
from miroir.store.memory import MemoryStore

SIM_EPOCH_MS = int(SIM_EPOCH.timestamp() * 1000)
INDEX = "sim"  # the one index every simulated client works on
# Fields of a client answer that are unique per request by design, left out of trace digests.
_UNSTABLE_FIELDS = ("requestUid",)

# Longer than any run: the reconciler passes after startup are the ones checkpoints ask for.
SIM_RECONCILE_INTERVAL_S = 1e9


class VirtualClock:
    """The simulation's wall clock (`miroir.cluster.clock.Clock`): milliseconds since the Unix
    epoch in simulated time, trio time 0 being `SIM_EPOCH`."""

    def now_ms(self) -> int:
        return SIM_EPOCH_MS + round(trio.current_time() * 1000)


@attrs.frozen
class SimSpec:
    """The shape of a simulated deployment and the timings its proxy is configured with."""

    nodes: int = 3
    groups: int = 1
    rf: int = 2
    shards: int = 8
    node_timeout_ms: int = 500
    health_interval_ms: int = 200
    health_timeout_ms: int = 100
    unhealthy_threshold: int = 3
    recovery_threshold: int = 2
    policy: str = "partial"
    task_poll_interval_s: float = 0.2
    master_key: str | None = None  # None: the API is open (no auth in the traces)
    # The simulated index's own shard count (the index layouts' `nodeShards`, set before the
    # index is created, as a reshard leaves an index); None: the topology's `shards`.
    index_shards: int | None = None

    @property
    def shards_of_index(self) -> int:
        """The shard count the simulated index's documents are hashed by."""
        return self.shards if self.index_shards is None else self.index_shards

    def node_ids(self) -> list[str]:
        return [f"n{i}" for i in range(self.nodes)]

    def group_of(self, node_id: str) -> int:
        return int(node_id[1:]) % self.groups

    def config(self) -> MiroirConfig:
        raw = {
            "shards": self.shards,
            "replication_factor": self.rf,
            "replica_groups": self.groups,
            "nodes": [
                {"id": node, "address": f"http://{node}.sim.invalid:7700",
                 "replica_group": self.group_of(node)}
                for node in self.node_ids()
            ],
            "scatter": {"node_timeout_ms": self.node_timeout_ms,
                        "unavailable_shard_policy": self.policy},
            "health": {"interval_ms": self.health_interval_ms,
                       "timeout_ms": self.health_timeout_ms,
                       "unhealthy_threshold": self.unhealthy_threshold,
                       "recovery_threshold": self.recovery_threshold},
            "task_store": {"backend": "memory"},
        }
        if self.master_key is not None:
            raw["master_key"] = self.master_key
        return config_from_dict(raw, env={})

    def services(self) -> Services:
        """The background services the simulated proxy runs: all but the pruner (runs last
        minutes of virtual time and the task TTL is days, so it would only add scheduling to
        every trace). The repair worker sweeps for lost task queues once per health round, so a
        node wiped and restarted between two probes is found within a checkpoint's recovery
        wait."""
        return Services(
            task_poll_interval_s=self.task_poll_interval_s,
            repair=RepairSettings(sweep_s=self.health_interval_ms / 1000),
            health=self.config().health,
            # One pass at startup, then only the passes checkpoints ask for (POST
            # /_miroir/consistency): a background pass writing during a client write would blur
            # which node acknowledged that write (I3/I4 count document writes per node).
            reconcile=ReconcileSettings(interval_s=SIM_RECONCILE_INTERVAL_S, shard_pause_s=0.01),
        )

    def recovery_s(self) -> float:
        """Virtual time after which a healed node is surely back in service: enough health
        rounds for `recovery_threshold` successes, plus one round of slack."""
        return (self.recovery_threshold + 2) * self.health_interval_ms / 1000


@attrs.frozen
class Answer:
    """What one client request got back, and when (virtual seconds)."""

    method: str
    path: str
    status: int
    body: Any
    degraded: str | None
    started: float
    finished: float

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None

    @property
    def duration(self) -> float:
        return self.finished - self.started


class SimCluster:
    """One simulated deployment; see the module docstring. Build it with `open_sim_cluster`."""

    def __init__(self, spec: SimSpec, transport: SimTransport, app: Any,
                 trace: list[str] | None) -> None:
        self.spec = spec
        self.transport = transport
        self.app = app
        self.trace = trace

    @property
    def cluster(self) -> Any:
        """The app's live `Cluster` (read-only use: node states for reports)."""
        return self.app.extensions["miroir"].cluster

    def note(self, text: str) -> None:
        if self.trace is not None:
            self.trace.append(f"{trio.current_time():.6f} {text}")

    async def request(self, method: str, path: str, body: Any = None, *,
                      bearer: str | None = None) -> Answer:
        """One client request through the app's ASGI interface, as hypercorn would make it,
        with `Authorization: Bearer <bearer>` (default: the spec's master key, if any)."""
        data = None if body is None else orjson.dumps(body)
        started = trio.current_time()
        bearer = bearer if bearer is not None else self.spec.master_key
        status, headers, raw = await _asgi_request(self.app, method, path, data, bearer)
        parsed = orjson.loads(raw) if raw else None
        degraded = next((value.decode("latin-1") for name, value in headers
                         if name.lower() == _DEGRADED_HEADER_BYTES), None)
        answer = Answer(method, path, status, parsed, degraded, started, trio.current_time())
        if self.trace is not None:
            self.trace.append(
                f"{started:.6f} client {method} {path} {_digest(data)} -> {answer.status} "
                f"degraded={answer.degraded or '-'} body={_digest_answer(parsed)} "
                f"at {answer.finished:.6f}"
            )
        return answer


_DEGRADED_HEADER_BYTES = DEGRADED_HEADER.lower().encode()
_BASE_HEADERS = [(b"host", b"miroir.sim.invalid")]
_JSON_HEADERS = [*_BASE_HEADERS, (b"content-type", b"application/json")]


async def _asgi_request(
    app: Any, method: str, path: str, body: bytes | None, bearer: str | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Call an ASGI app once with a complete request; (status, headers, body). Quart's test
    client would do the same with two to three times the overhead per request (measured)."""
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": raw_path, "raw_path": raw_path.encode(),
        "query_string": query.encode(), "root_path": "",
        "headers": _headers(body is not None, bearer),
        "client": ("127.0.0.1", 40000), "server": ("miroir.sim.invalid", 7700),
        "extensions": {},
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if delivered:  # the whole body was sent; the client then just waits for the answer
            await trio.sleep_forever()
        delivered = True
        return {"type": "http.request", "body": body or b"", "more_body": False}

    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return start["status"], list(start.get("headers", ())), b"".join(chunks)


def _headers(has_body: bool, bearer: str | None) -> list[tuple[bytes, bytes]]:
    headers = _JSON_HEADERS if has_body else _BASE_HEADERS
    if bearer is None:
        return headers
    return [*headers, (b"authorization", b"Bearer " + bearer.encode("latin-1"))]


def _digest(data: bytes | None) -> str:
    return hashlib.sha1(data).hexdigest()[:12] if data else "-"


def _digest_answer(parsed: Any) -> str:
    if isinstance(parsed, dict) and any(field in parsed for field in _UNSTABLE_FIELDS):
        parsed = {k: v for k, v in parsed.items() if k not in _UNSTABLE_FIELDS}
    if parsed is None:
        return "-"
    return _digest(orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS))


@asynccontextmanager
async def open_sim_cluster(
    spec: SimSpec,
    *,
    seed: int,
    trace: list[str] | None = None,
    faults: FaultModel | None = None,
) -> AsyncIterator[SimCluster]:
    """A running simulated deployment. Call under `trio.testing.MockClock(autojump_threshold=0)`
    (or another clock that only virtual events move)."""
    config = spec.config()
    tracer = None if trace is None else trace.append
    transport = SimTransport(seed, default_faults=faults or FaultModel(), tracer=tracer)
    for node in spec.node_ids():
        transport.add_node(node)
    store = MemoryStore()
    if spec.index_shards is not None:
        # The deployment starts with the index layouts saying so (an operator's record, not a
        # cluster call): every process routes the index by its own count from the start.
        await store.put_record_if(LAYOUTS_RECORD, 0, encode_layouts(
            Layouts().with_node_shards(INDEX, spec.index_shards)))
    app = create_app(config, transport=transport, store=store, clock=VirtualClock(),
                     services=spec.services())
    access = logging.getLogger("miroir.access")
    level = access.level
    access.setLevel(logging.WARNING)  # one line per request would be most of a run's cost
    try:
        with trio_determinism(seed):  # nothing has drawn from trio's RNG before this
            async with app.test_app():
                yield SimCluster(spec, transport, app, trace)
    finally:
        access.setLevel(level)
