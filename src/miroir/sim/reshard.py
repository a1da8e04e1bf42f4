"""Resharding in the simulator: `POST /_miroir/indexes/sim/reshard` racing the state machine's
writes, deletes, searches and faults, with the reshard engine running in the simulated proxy.

Theory of operation. `start(shards)` is the operator's request through the app (admin API,
`force: true`: the simulator's virtual clock has no business with maintenance windows, which
`core.reshard_window` states as properties); the engine copies the index into a shadow layout
of S2 shards while the state machine keeps writing, reading and injecting faults. While it runs,
`Simulation.in_flux` is set (writes go to two layouts, so the per-owner checks I3/I4/I6 wait).
`settle` (before every checkpoint) heals the faults, re-sends ambiguous writes (the first half
of a checkpoint, `Simulation.heal_and_resend`) and polls `GET /_miroir/reshards/{id}` to
its end; at every poll it compares every search with the single-node reference over the
acknowledged corpus, so searches are checked in each state the reshard passes through (copying,
verifying, grace: before and after the flip). Then the simulation expects the new layout
(node-side name from the admin view `GET /_miroir/aliases/{uid}`, S2 from the reshard) and the
checkpoint that follows checks I7-I13 under it. A checkpoint may also be taken in the middle of
a reshard (`Simulation.checkpoint` without settling): I8 and I9 are then checked mid-reshard.

Invariants of its own (recorded in the simulation's report like the others):
  X1  a started reshard ends `done` once faults heal, within a budget of virtual time; its
      record says what was asked (index, fromShards, toShards), and afterwards the uid names
      the new node-side index with the new shard count;
  X2  every search equals the reference over the acknowledged corpus before, during and after
      the flip (counted per reshard state, `X2 search equals reference (<state>)`);
  X3  once done, every node holds the index under its new node-side name only (the old layout
      deleted), each document's `_miroir_shard` is `shard_for_key(id, S2)` and each node holds
      only shards it owns under S2.
The measurement of transient amplification (`measure_amplification`) runs one reshard with a
steady writer and counts node document writes and documents held, for docs/simulation.md.

Must never: decide what the engine decides; expectations come from the reshard request this
module sent, placement and the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs
import orjson
import trio

from miroir.cluster.reshard import Resharder, ReshardSettings
from miroir.core.placement import shard_for_key
from miroir.core.routing import SHARD_FIELD
from miroir.sim.cluster import Answer
from miroir.sim.model import reference_engine, reference_search, search_difference
from miroir.sim.simulation import INDEX, Simulation

# Quick enough for a few-second example: the copy runs at 200 documents per virtual second.
ENGINE = ReshardSettings(max_docs_per_second=200, grace_ms=400, lease_ttl_ms=2000, poll_s=0.1,
                         page_size=10)
SETTLE_BUDGET_S = 120.0
POLL_S = 0.25
ENDED = ("done", "failed", "rolledBack")
QUERIES = ({"q": ""}, {"q": "red"}, {"q": "night sun"}, {"q": "", "sort": ["id:asc"]})


@attrs.define
class Pending:
    """A reshard the engine is carrying out."""

    reshard_id: str
    from_shards: int
    to_shards: int
    old_node_index: str


class Resharding:
    """The reshard operations of one `Simulation`; see the module docstring."""

    def __init__(self, simulation: Simulation) -> None:
        self.simulation = simulation
        self.sim = simulation.sim
        self.pending: Pending | None = None
        self.finished: list[dict[str, Any]] = []
        simulation.before_replica_check = self.follow_layout

    async def run_engine(self) -> None:
        """The reshard engine's service loop, as `run_services` starts it in production."""
        await Resharder(self.sim.cluster, ENGINE).run()

    # ---- the operator's request -----------------------------------------------------------

    async def start(self, shards: int) -> Answer | None:
        simulation = self.simulation
        if self.pending is not None or shards == simulation.shards:
            return None
        simulation.report.operations["reshard"] += 1
        answer = await self.sim.request("POST", f"/_miroir/indexes/{INDEX}/reshard",
                                        {"shards": shards, "force": True})
        simulation._common_checks("task", answer)
        if answer.status != 202:
            simulation.report.outcomes[f"reshard refused {answer.code}"] += 1
            return answer
        body = answer.body
        simulation._check("X1 a reshard record says what was asked",
                          (body.get("index"), body.get("fromShards"), body.get("toShards"))
                          == (INDEX, simulation.shards, shards),
                          lambda: f"asked {simulation.shards} -> {shards}, got {body}")
        self.pending = Pending(body["reshardId"], simulation.shards, shards,
                               simulation.node_index)
        simulation.in_flux = True
        simulation.mirrored = True
        return answer

    async def status(self) -> dict[str, Any]:
        assert self.pending is not None
        answer = await self.sim.request("GET", f"/_miroir/reshards/{self.pending.reshard_id}")
        self.simulation._common_checks("task", answer)
        return answer.body if answer.status == 200 else {}

    async def layout(self) -> tuple[str, int]:
        """The node-side index and shard count the uid names now (the admin view)."""
        answer = await self.sim.request("GET", f"/_miroir/aliases/{INDEX}")
        if answer.status == 200:
            return answer.body["index"], answer.body["shards"]
        # no alias entry: the uid names its own node-side index
        return INDEX, self.simulation.spec.shards_of_index

    async def follow_layout(self) -> None:
        """Adopt a flip (or a flip back) made while a checkpoint waited."""
        node_index, shards = await self.layout()
        if (node_index, shards) != (self.simulation.node_index, self.simulation.shards):
            self.simulation.report.checks["layout followed mid-reshard"] += 1
            self.simulation.set_layout(node_index, shards)

    # ---- settling --------------------------------------------------------------------------

    async def settle(self) -> None:
        """Heal every fault, follow the reshard to its end comparing searches with the
        reference at each poll (X1, X2), adopt the new layout and check it (X3)."""
        if self.pending is None:
            return
        simulation = self.simulation
        # healed, every task finished and ambiguous writes re-sent: the model knows the corpus
        await simulation.heal_and_resend()
        await trio.sleep(simulation.model.settle_s)
        pending = self.pending
        waited, status = 0.0, await self.status()
        while status.get("state") not in ENDED and waited <= SETTLE_BUDGET_S:
            await self.compare_searches(status.get("state", "?"))
            await trio.sleep(POLL_S)
            waited += POLL_S
            status = await self.status()
        simulation._check("X1 a reshard ends done once faults heal",
                          status.get("state") == "done",
                          lambda: f"reshard {pending.reshard_id} is {status.get('state')} after "
                                  f"{waited:.1f}s of healing: {status.get('errors')}")
        self.finished.append(status)
        self.pending = None
        simulation.in_flux = False
        simulation.mirrored = False
        node_index, shards = await self.layout()
        simulation.set_layout(node_index, shards)
        if status.get("state") == "done":
            simulation._check("X1 the uid names the new layout after done",
                              shards == pending.to_shards
                              and node_index != pending.old_node_index,
                              lambda: f"{INDEX} -> {node_index} ({shards} shards)")
            await self.compare_searches("done")
            self.check_layout(pending)

    async def compare_searches(self, state: str) -> None:
        """X2: every query against the single-node reference over the acknowledged corpus,
        when the model knows it (no write in doubt) and the settings are certain."""
        simulation = self.simulation
        corpus = simulation.model.settled_corpus()
        if corpus is None or not simulation.settings_certain or simulation.disturbed:
            simulation.report.checks["X2 skipped (corpus not settled)"] += 1
            return
        reference = reference_engine(corpus, simulation.settings)
        for query in QUERIES:
            full = {**query, "limit": 1000, "offset": 0}
            answer = await self.sim.request("POST", f"/indexes/{INDEX}/search", full)
            simulation._common_checks("search", answer)
            status, expected = reference_search(reference, full)
            name = f"X2 search equals reference ({state})"
            if not simulation._check(name, answer.status == status,
                                     lambda a=answer, q=query, s=status:
                                     f"search {q}: {a.status} {a.code} vs reference {s}"):
                continue
            if status == 200:
                difference = search_difference(answer.body, expected, query.get("sort", ()))
                simulation._check(name, difference is None,
                                  lambda q=query, d=difference: f"search {q}: {d}")

    def check_layout(self, pending: Pending) -> None:
        """X3, on the nodes' engines (the simulated world's ground truth)."""
        simulation = self.simulation
        self.sim.transport.catch_up()
        for node in simulation.node_ids():
            engine = self.sim.transport.engine(node)
            simulation._check("X3 the old layout is deleted",
                              simulation.node_index != pending.old_node_index
                              and pending.old_node_index not in engine.indexes,
                              lambda node=node: f"{node} still holds {pending.old_node_index} "
                                                f"(the index is now {simulation.node_index})")
            index = engine.indexes.get(simulation.node_index)
            documents = index.documents if index is not None else {}
            wrong = sorted(i for i, d in documents.items()
                           if d.get(SHARD_FIELD) != shard_for_key(i, pending.to_shards))
            simulation._check("X3 _miroir_shard follows the new shard count", not wrong,
                              lambda node=node, wrong=wrong: f"{node}: {wrong[:10]}")
            group = simulation.group_of(node)
            owned = {s for s in range(pending.to_shards)
                     if node in simulation.owners[(group, s)]}
            held = {d.get(SHARD_FIELD) for d in documents.values()}
            simulation._check("X3 a node holds only the shards it owns", held <= owned,
                              lambda node=node, held=held, owned=owned:
                              f"{node} holds shards {sorted(held - owned)} it does not own")


# ---- measuring the transient amplification ------------------------------------------------


@attrs.define
class NodeWrites:
    """Documents written to nodes, by node-side index, counted from what the simulated network
    carried (SimTransport's observers): every POST/PUT of a document batch (its length) and
    every delete batch."""

    by_index: dict[str, int] = attrs.Factory(dict)
    counting: bool = False

    def observe(self, _node: str, method: str, path: str, body: bytes | None,
                status: int | None) -> None:
        if not self.counting or status is None or not 200 <= status < 300 or not body:
            return
        parts = path.split("?")[0].split("/")
        if len(parts) < 4 or parts[1] != "indexes" or parts[3] != "documents":
            return
        rest = parts[4:]
        if method in ("POST", "PUT") and not rest or rest == ["delete-batch"]:
            batch = orjson.loads(body)
            if isinstance(batch, list):
                self.by_index[parts[2]] = self.by_index.get(parts[2], 0) + len(batch)


def documents_held(simulation: Simulation) -> dict[str, int]:
    """Documents held across every node, per node-side index (the simulated uid is the only
    client index, so every node-side index is one of its layouts)."""
    simulation.sim.transport.catch_up()
    held: dict[str, int] = {}
    for node in simulation.node_ids():
        for name, index in simulation.sim.transport.engine(node).indexes.items():
            held[name] = held.get(name, 0) + len(index.documents)
    return held


@attrs.define
class Phase:
    """What happened while the reshard was in one state: client documents written, node
    documents written per node-side index, documents the backfill copied (its progress)."""

    client: int = 0
    nodes: dict[str, int] = attrs.Factory(dict)
    copied: int = 0

    def amplification(self, copies: int) -> tuple[float, float]:
        """(node document writes per client document write over RF x RG; the same without the
        backfill's copies: the dual writes the model counts)."""
        total = sum(self.nodes.values())
        return (total / (self.client * copies),
                (total - self.copied * copies) / (self.client * copies))


@attrs.frozen
class Amplification:
    documents: int
    from_shards: int
    to_shards: int
    copies: int  # RF x RG: node copies of a document in one layout
    phases: Mapping[str, Phase]  # by reshard state, in the order they came
    held_before: int
    held_peak: int
    held_peak_by_index: Mapping[str, int]
    reshard_seconds: float
    state: str

    @property
    def storage(self) -> float:
        return self.held_peak / self.held_before

    def rows(self, deployment: str) -> list[str]:
        """One markdown row per state: client and node document writes, backfill, both
        amplifications."""
        rows = []
        for state, phase in self.phases.items():
            if not phase.client:
                continue
            total, dual = phase.amplification(self.copies)
            by_index = " / ".join(f"{phase.nodes.get(name, 0):,}"
                                  for name in sorted(self.held_peak_by_index))
            rows.append(f"| {deployment} | {self.from_shards}→{self.to_shards} | {state} | "
                        f"{phase.client:,} | {by_index} | {phase.copied:,} | {total:.3f} | "
                        f"{dual:.3f} |")
        return rows


async def measure_amplification(
    simulation: Simulation, *, documents: int, to_shards: int, batch: int = 20,
    write_every_s: float = 0.1, sample_every: int = 5,
) -> Amplification:
    """Fill `documents`, then reshard to `to_shards` while a writer updates `batch` existing
    documents every `write_every_s` virtual seconds; count node document writes per reshard
    state (the state read before each client write; the engine's writes meanwhile count too)
    and the peak of documents held across nodes over every layout of the index, sampled every
    `sample_every` writes."""
    for start in range(0, documents, 500):
        await simulation.write("add", [_document(i, 0)
                                       for i in range(start, min(documents, start + 500))])
    await trio.sleep(simulation.spec.recovery_s())
    before = sum(documents_held(simulation).values())
    counter = NodeWrites(counting=True)
    simulation.sim.transport.observers.append(counter.observe)
    resharding = Resharding(simulation)
    from_shards = simulation.shards
    started_at = trio.current_time()
    answer = await resharding.start(to_shards)
    if answer is None or answer.status != 202:
        raise RuntimeError(f"reshard refused: {answer and answer.body}")
    peak, peak_by_index, version = before, documents_held(simulation), 0
    phases: dict[str, Phase] = {}
    status = await resharding.status()
    while status.get("state") not in ENDED:
        state, nodes_before = status.get("state", "?"), dict(counter.by_index)
        copied_before = status.get("documentsCopied") or 0
        version += 1
        ids = [(version * batch + k) * 7919 % documents for k in range(batch)]
        await simulation.write("update", [_document(i, version) for i in ids])
        await trio.sleep(write_every_s)
        if version % sample_every == 0:
            held = documents_held(simulation)
            if sum(held.values()) > peak:
                peak, peak_by_index = sum(held.values()), held
        status = await resharding.status()
        phase = phases.setdefault(state, Phase())
        phase.client += len(ids)
        for name, count in counter.by_index.items():
            phase.nodes[name] = phase.nodes.get(name, 0) + count - nodes_before.get(name, 0)
        phase.copied += (status.get("documentsCopied") or 0) - copied_before
    counter.counting = False
    return Amplification(
        documents=documents, from_shards=from_shards, to_shards=to_shards,
        copies=simulation.spec.rf * simulation.groups, phases=phases, held_before=before,
        held_peak=peak, held_peak_by_index=peak_by_index,
        reshard_seconds=trio.current_time() - started_at, state=status.get("state", "?"))


def _document(i: int, version: int) -> dict[str, Any]:
    return {"id": i, "title": f"red doc {i}", "genre": "drama", "year": 1990 + version % 30}

