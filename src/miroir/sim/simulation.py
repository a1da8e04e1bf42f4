"""Simulation: client operations and faults on a `SimCluster`, each followed by its invariants.

Owns the vocabulary shared by `miroir simulate` (a seeded random program) and the hypothesis
state machine (a shrinkable program): the operations (add, update, delete, delete by filter,
delete all, get, search, change settings), the faults (crash, restart, partition, heal, slow, flaky), `advance` of virtual time,
and `checkpoint` (heal everything, wait until the cluster is surely recovered and every task
finished, re-send ambiguous writes, then check the heavy invariants). Every check that fails is
recorded in `report.violations` as one line; nothing raises, so a run always reaches its summary.

Must never: look inside the cluster to decide what is right. Expectations come from the model
(`miroir.sim.model`), from placement recomputed by `miroir.core.placement` (which node owns
which shard is public knowledge: it is the documented hash) and the core's quorum rule, from
what the simulated network saw each node answer (SimTransport's observers: the ground truth of
the simulated world, not the cluster's belief about it), and from which faults *this module*
injected. The app's own state is read only for reports.

Invariants (the issue's list, as checked here)
----------------------------------------------
after every operation:
  I1  every answer is Meilisearch-shaped: an error body has exactly message/code/type/link, and
      no answer is a 500;
  I2  a read by id, a search hit, returns only versions some client once sent;
  I3  a write's `X-Miroir-Degraded` lists the (group, shard) pairs that missed quorum by what
      each owner answered the proxy (seen by SimTransport) and the core's quorum rule: exactly,
      up to the owners whose answer was lost but whose engine enqueued the write (its tag,
      `customMetadata`, is in the node's tasks), which a node-write retry may adopt;
      a search's lists exactly the shards no node answered 2xx for; a listed pair or shard has
      an owner an injected fault disturbed; a down owner (RF <= 2) or a shard with every owner
      down is always reported;
  I4  `miroir_no_quorum` exactly when some written shard met quorum in no group, and only when
      every group of that shard had a disturbed owner;
  I5  no request outlives its deadline: its virtual duration is within the bound that the
      cluster code's deadlines imply (see `deadline_bound_s`);
  I6  with no fault since the last checkpoint, every write is confirmed (no header, no 503)
      and every read is complete;
  I11 health hysteresis: a node no fault touched since the last checkpoint (and whose default
      fault model injects no failure) is never `failed`.
at a checkpoint, once faults heal:
  I7  every task a client was given reaches succeeded/failed/canceled;
  I8  every acknowledged write is readable by id: the answer is one of the model's possible
      versions, and after the re-sends exactly the newest acknowledged one;
  I9  with full coverage, a search equals the single-node reference over the settled corpus;
  I10 every node back from `failed` (wiped or not) is repaired and leaves `joining`;
  I12 every task a client was given that finished was announced as finished exactly once (what
      the webhook delivery listens to: `Cluster.task_finished_listeners`), never twice;
  I13 no node task is duplicated by a retry: no node's engine holds two tasks with the same
      node-write tag (`customMetadata`, `miroir.core.write_retry`: document writes, deletes by
      id, by filter and all); and (checked after each settings change, whose node tasks carry
      no tag) no node enqueued one change's patch twice.

Which nodes are `joining` or `failed` (their acknowledgements count toward no quorum, so I3/I4
leave them out) is read from the live `Cluster`'s node states -- what GET /_miroir/topology
renders for an operator -- before and after each write made while some node is disturbed; a
write during which that set changed gets no exact I3/I4 verdict.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote

import attrs
import orjson
import trio

from miroir.cluster.broadcast import protect_settings_patch
from miroir.core.node_state import NodeState
from miroir.core.placement import assign_shard_in_group, shard_for_key
from miroir.core.quorum import quorum_size
from miroir.core.routing import SHARD_FIELD
from miroir.core.write_retry import TAG_PREFIX
from miroir.sim import clock as sim_clock
from miroir.sim.cluster import INDEX, Answer, SimCluster, SimSpec
from miroir.sim.model import (
    ABSENT,
    DocumentModel,
    reference_engine,
    reference_search,
    search_difference,
    version_of,
)
from miroir.sim.transport import FaultModel

ERROR_FIELDS = {"message", "code", "type", "link"}
TERMINAL = ("succeeded", "failed", "canceled")
_OUT_OF_QUORUM = (NodeState.JOINING, NodeState.FAILED)


def deadline_bound_s(kind: str, spec: SimSpec) -> float:
    """I5: the longest a client operation of `kind` may take in virtual time, from the deadlines
    in miroir.cluster, in node timeouts T: a document write (and a delete by filter or a
    delete-all, sent to every node) is one fan-out with its node-write retries, within the
    write's deadline (2T, `cluster.write_retry`); a search may
    fetch the index settings (T) and then scatter (T); a task read refreshes and then completes
    the task (2T); a read by id asks its RG x RF candidates one after another; a settings change
    goes node by node -- read, apply, wait (3T) -- and may roll back the same way (3T more),
    with every node read back at once after each (T); a reconciler pass at a checkpoint is
    bounded per node and per shard replica (see the table)."""
    timeouts = {"add": 2, "update": 2, "delete": 2, "search": 2, "task": 2,
                # every node at once, each call with its node-write retries (2T)
                "delete by filter": 2, "clear": 2,
                "get": spec.groups * spec.rf,
                # + reading every node back at once and repairing the ones that differ (4T),
                # after the change and after a rollback
                "settings": 6 * spec.nodes + 8,
                # a reconciler pass: per node a settings read and repair (4T); per shard and
                # owner a count, the pages, a second look and a repair (8T)
                "reconcile": 4 * spec.nodes + 8 * spec.shards * spec.groups * spec.rf}[kind]
    return timeouts * spec.node_timeout_ms / 1000 + 1e-6


# I5 while a reshard mirrors the index (`cluster.reshard_mirror`): what a client write waits
# for after its own, in node timeouts. A document write or delete: one quorum write to the
# mirror; a settings change: the patch on every node, its tasks, the read-back and a repair.
MIRRORED_EXTRA_TIMEOUTS = {"add": 1, "update": 1, "delete": 1, "delete by filter": 1,
                           "clear": 1, "settings": 4}


SETTINGS_CHOICES = (
    {"filterableAttributes": ["genre"]},
    {"filterableAttributes": ["genre", "year"], "sortableAttributes": ["year"]},
    {"searchableAttributes": ["title"]},
    {"searchableAttributes": ["*"], "filterableAttributes": []},
)
WORDS = ("red", "blue", "night", "sun", "river", "stone", "wolf", "light")
GENRES = ("drama", "comedy", "horror")


@attrs.define
class Report:
    operations: Counter[str] = attrs.field(factory=Counter)
    faults: Counter[str] = attrs.field(factory=Counter)
    checks: Counter[str] = attrs.field(factory=Counter)
    outcomes: Counter[str] = attrs.field(factory=Counter)
    # What the proxy's node-write retries did (`Cluster.write_retries`: for the report only).
    retries: Counter[str] = attrs.field(factory=Counter)
    violations: list[str] = attrs.field(factory=list)


def make_document(doc_id: int, words: list[str], genre: str, year: int) -> dict[str, Any]:
    return {"id": doc_id, "title": " ".join(words), "genre": genre, "year": year}


class Simulation:
    """A SimCluster, its model and its report; see the module docstring."""

    def __init__(self, sim: SimCluster, *, max_latency_s: float) -> None:
        self.sim = sim
        self.spec = sim.spec
        # The index's shard count: what its placement, routing and checks follow (the
        # topology's S unless the spec gives the index its own, `SimSpec.index_shards`).
        self.shards = sim.spec.shards_of_index
        self.model = DocumentModel(settle_s=max_latency_s / 2 + 0.001)
        self.report = Report()
        # What a behind-the-back fault picks (which document, which version); seeded by the run.
        self.fault_rng = random.Random(0)
        self.settings: dict[str, Any] = {}
        self.settings_certain = True
        self.tasks: set[int] = set()
        # uid -> how many times the cluster announced that task finished (I12).
        self.finished_announced: Counter[int] = Counter()
        sim.cluster.task_finished_listeners.append(
            lambda task: self.finished_announced.update((task.uid,)))
        self.down: set[str] = set()  # crashed or partitioned now
        self.crashed: set[str] = set()
        self.partitioned: set[str] = set()
        self.disturbed: set[str] = set()  # touched by a fault since the last checkpoint
        # While a client write runs: node -> the node-write tags it was sent (I3's upper bound).
        self._write_tags: dict[str, set[str]] = {}
        # While a client write runs: node -> "answered a document write with 2xx" (I3 exact);
        # while a search runs: the shards some node answered 2xx for.
        self._write_acks: dict[str, bool] | None = None
        self._enqueued_unanswered: set[str] = set()
        # The joining or failed nodes during the write in flight; None when that changed.
        self._out_of_quorum: frozenset[str] | None = frozenset()
        self._searched: set[int] | None = None
        sim.transport.observers.append(self._observe_node_answer)
        sim.cluster.write_retries.observers.append(
            lambda outcome: self.report.retries.update((outcome,)))
        self._timeout_s = self.spec.node_timeout_ms / 1000
        benign = sim.transport.default_faults
        self._faultless_by_default = (
            benign.error_rate == benign.stall_rate == benign.drop_rate == benign.lost_reply_rate
            == benign.spike_rate == 0
            and benign.latency[1] * 1000 < self.spec.health_timeout_ms
        )
        # The fleet the checks expect (node -> group); it changes only through
        # `miroir.sim.membership`, which also sets `in_flux` while shards move (quorum and reads
        # then follow two placements, so the exact per-owner checks I3/I4/I6 wait for the
        # rebalance to finish).
        self.in_flux = False
        # Set by `miroir.sim.reshard` while a reshard may mirror the index's writes: a document
        # write then also waits for its mirror write (`cluster.reshard_mirror`), sent after the
        # index's own write was acknowledged, one node timeout more.
        self.mirrored = False
        # The index's node-side name: it changes (with `shards`) only through
        # `miroir.sim.reshard` (at a reshard's flip, which its settle adopts).
        self.node_index = INDEX
        # Called at a checkpoint before the replicas are compared (I11): `miroir.sim.reshard`
        # adopts a flip that happened meanwhile, so I11 looks at the layout in force.
        self.before_replica_check: Callable[[], Awaitable[None]] | None = None
        self.set_members({n: self.spec.group_of(n) for n in self.spec.node_ids()},
                         self.spec.groups)

    def set_members(self, members: Mapping[str, int], groups: int) -> None:
        """The fleet from now on: owners recomputed by the documented placement."""
        self.members = dict(members)
        self.groups = groups
        self.owners = {
            (group, shard): assign_shard_in_group(
                shard, sorted(n for n, g in self.members.items() if g == group), self.spec.rf)
            for group in range(groups) for shard in range(self.shards)
        }
        # deadlines grow with the fleet (a settings change goes node by node) and the shards
        self._bounds_spec = attrs.evolve(self.spec, nodes=len(self.members), groups=groups,
                                         shards=max(self.shards, self.spec.shards))

    def set_layout(self, node_index: str, shards: int) -> None:
        """The index lives in `node_index` with `shards` shards from now on (a reshard's flip)."""
        self.node_index = node_index
        self.shards = shards
        self.set_members(self.members, self.groups)

    def node_ids(self) -> list[str]:
        return sorted(self.members, key=lambda n: (len(n), n))

    def group_of(self, node_id: str) -> int:
        return self.members[node_id]

    # ------------------------------------------------------------------ bookkeeping helpers

    def violation(self, text: str) -> None:
        self.report.violations.append(f"t={trio.current_time():.6f} {text}")
        self.sim.note(f"VIOLATION {text}")

    def _check(self, name: str, ok: bool, text: str | Callable[[], str]) -> bool:
        """Count a check of `name`; on failure record `text` (a function of nothing when the
        message is costly to build, e.g. the repr of a whole answer: most checks pass)."""
        self.report.checks[name] += 1
        if not ok:
            self.violation(f"{name}: {text() if callable(text) else text}")
        return ok

    def _observe_node_answer(self, node: str, method: str, path: str, body: bytes | None,
                             status: int | None) -> None:
        """What the proxy got from each node for the client request in flight (only client
        writes and the repair worker send POST/PUT under /documents, and the repair worker only
        to a joining (or just failed) node, which I3/I4 leave out; only searches POST /search;
        the poller and the health checker only GET)."""
        answered = status is not None and 200 <= status < 300
        # POST /documents/fetch is a read (the repair worker pages its sources with it).
        if self._write_acks is not None and method in ("POST", "PUT") \
                and path.startswith(f"/indexes/{self.node_index}/documents") \
                and not path.startswith(f"/indexes/{self.node_index}/documents/fetch"):
            self._write_acks[node] = self._write_acks.get(node, False) or answered
            tag = _WRITE_TAG.search(path)
            if tag:
                self._write_tags.setdefault(node, set()).add(unquote(tag.group(1)))
        elif self._searched is not None and answered and method == "POST" \
                and path == f"/indexes/{self.node_index}/search":
            self._searched.update(self._shards_asked(node, body))

    def _shards_asked(self, node: str, body: bytes | None) -> set[int]:
        """The shards a node search answers for: the `_miroir_shard IN [...]` restriction in its
        body, or every shard the node owns when the body is unrestricted."""
        restriction = _SHARD_RESTRICTION.search((body or b"").decode())
        if restriction:
            return {int(s) for s in restriction.group(1).split(",") if s.strip()}
        group = self.group_of(node)
        return {s for s in range(self.shards) if node in self.owners[(group, s)]}

    async def _send_write(self, method: str, path: str, body: Any) -> tuple[Answer, dict]:
        out_before = self.nodes_out_of_quorum() if self.disturbed else frozenset()
        self._write_acks = {}
        self._write_tags = {}
        try:
            answer = await self.sim.request(method, path, body)
            acks = self._write_acks
        finally:
            self._write_acks = None
        # The nodes whose answer was lost but which enqueued the write all the same: a retry
        # may have found and adopted their task, so they may count as acknowledgements.
        self._enqueued_unanswered = {
            node for node, tags in self._write_tags.items()
            if not acks.get(node) and self._engine_holds_tag(node, tags)}
        self._out_of_quorum = out_before
        if self.disturbed and self.nodes_out_of_quorum() != out_before:
            self._out_of_quorum = None  # a node changed state mid-write: no exact verdict
        return answer, acks

    def _engine_holds_tag(self, node: str, tags: set[str]) -> bool:
        """Whether the node's engine enqueued a task tagged with one of `tags` (the newest
        tasks only: the write just ran)."""
        engine = self.sim.transport.engine(node)
        for seen, task in enumerate(reversed(engine.tasks.values())):
            if task.custom_metadata in tags:
                return True
            if seen >= 200:
                return False
        return False

    def nodes_out_of_quorum(self) -> frozenset[str]:
        """The nodes in state `joining` or `failed`, as GET /_miroir/topology shows them to an
        operator: their acknowledgements count toward no quorum (a joining node takes writes, a
        failed one is sent none, but the repair worker may still be writing to a node that just
        failed). Read from the live `Cluster`, the object that route renders, because asking the
        route before and after every write under faults was 40 % of a chaos run's requests."""
        cluster = self.sim.cluster
        return frozenset(node for node in cluster.node_ids()
                         if cluster.state_of(node) in _OUT_OF_QUORUM)

    def shard_of(self, doc_id: str) -> int:
        return shard_for_key(doc_id, self.shards)

    def _common_checks(self, kind: str, answer: Answer) -> None:
        self.report.outcomes[f"{kind} {answer.status}"] += 1
        if answer.status >= 400:
            body = answer.body
            self._check("I1 error shape", isinstance(body, dict) and set(body) == ERROR_FIELDS,
                        lambda: f"{answer.method} {answer.path} -> {answer.status} {body!r}")
        self._check("I1 no 500", answer.status != 500,
                    lambda: f"{answer.method} {answer.path} -> 500 {answer.body!r}")
        bound = deadline_bound_s(kind, self._bounds_spec)
        if self.mirrored:
            bound += MIRRORED_EXTRA_TIMEOUTS.get(kind, 0) * self.spec.node_timeout_ms / 1000
        self._check("I5 deadline", answer.duration <= bound,
                    lambda: f"{kind} took {answer.duration:.6f}s > {bound:.6f}s")
        if self._faultless_by_default:
            cluster = self.sim.cluster
            wrongly_failed = [node for node in self.node_ids() if node not in self.disturbed
                              and cluster.state_of(node) is NodeState.FAILED]
            self._check("I11 an untouched node is not failed", not wrongly_failed,
                        lambda: f"{wrongly_failed} failed with no fault injected")
        if not self.disturbed and not self.in_flux:
            self._check("I6 quiet cluster answers fully",
                        answer.status < 500 and answer.degraded is None,
                        lambda: f"{answer.method} {answer.path} -> {answer.status} "
                                f"degraded={answer.degraded} {answer.code}")

    # --------------------------------------------------------------------------- writes

    async def write(self, kind: str, documents: list[dict[str, Any]]) -> Answer:
        """`kind` add (POST, replace) or update (PUT, merge: the model sends full documents, so
        both end in the same version)."""
        self.report.operations[kind] += 1
        method = "POST" if kind == "add" else "PUT"
        for document in documents:
            self.model.sent(str(document["id"]), version_of(document))
        answer, acks = await self._send_write(method, f"/indexes/{INDEX}/documents", documents)
        self._after_write(kind, answer, {str(d["id"]): version_of(d) for d in documents}, acks)
        return answer

    async def delete(self, doc_ids: list[int]) -> Answer:
        self.report.operations["delete"] += 1
        for doc_id in doc_ids:
            self.model.sent(str(doc_id), ABSENT)
        answer, acks = await self._send_write(
            "POST", f"/indexes/{INDEX}/documents/delete-batch", doc_ids)
        self._after_write("delete", answer, {str(d): ABSENT for d in doc_ids}, acks)
        return answer

    async def delete_by_filter(self, genre: str) -> Answer:
        """POST /documents/delete with `genre = <genre>`: every node, no quorum. Each id that
        may hold a version of that genre may now be absent on some replica; the newest version
        becomes absent when the write was accepted and that version is of the genre (a node
        where `genre` is not filterable fails the task instead: the checkpoint's re-send of
        the newest version then settles it either way)."""
        self.report.operations["delete by filter"] += 1
        hit = [i for i in self.model.ids() if any(
            v != ABSENT and orjson.loads(v).get("genre") == genre
            for v in self.model.possible[i])]
        answer = await self.sim.request("POST", f"/indexes/{INDEX}/documents/delete",
                                        {"filter": f"genre = {genre}"})
        self._after_broadcast_delete("delete by filter", answer, hit, lambda v: (
            v != ABSENT and orjson.loads(v).get("genre") == genre))
        return answer

    async def clear(self) -> Answer:
        """DELETE /documents: every node, no quorum; every id may now be absent anywhere."""
        self.report.operations["clear"] += 1
        answer = await self.sim.request("DELETE", f"/indexes/{INDEX}/documents")
        self._after_broadcast_delete("clear", answer, self.model.ids(), lambda _v: True)
        return answer

    def _after_broadcast_delete(self, kind: str, answer: Answer, ids: list[str],
                                deletes: Callable[[bytes], bool]) -> None:
        self._common_checks(kind, answer)
        accepted = answer.status == 202
        if accepted:
            self.tasks.add(answer.body["taskUid"])
        for doc_id in ids:
            self.model.uncertain(doc_id, ABSENT, answer.started,
                                 acknowledged=accepted and deletes(self.model.newest[doc_id]))

    def _after_write(self, kind: str, answer: Answer, versions: Mapping[str, bytes],
                     acks: Mapping[str, bool]) -> None:
        self._common_checks(kind, answer)
        shards = {self.shard_of(doc_id) for doc_id in versions}
        accepted = answer.status == 202
        if accepted:
            self.tasks.add(answer.body["taskUid"])
        pairs = _parse_write_header(answer.degraded) if answer.degraded else set()
        if self.in_flux:
            self.report.checks["I3/I4 skipped (shards moving)"] += 1
            self._settle_in_model(versions, answer, accepted and not pairs)
            return
        self._check_write_verdict(kind, answer, shards, pairs, acks)
        for group, shard in sorted(pairs):
            self._check("I3 degraded write is explained", self._pair_disturbed(group, shard),
                        f"{kind}: ({group}, {shard}) missed quorum but no owner was disturbed")
        if self.spec.rf <= 2 and accepted:
            for shard in sorted(shards):
                for group in range(self.groups):
                    down = [n for n in self.owners[(group, shard)] if n in self.down]
                    self._check("I3 down owner is reported", not down or (group, shard) in pairs,
                                f"{kind}: owners {down} of ({group}, {shard}) were down but the "
                                f"answer had degraded={answer.degraded}")
        if answer.code == "miroir_no_quorum":
            explained = any(
                all(self._pair_disturbed(g, s) for g in range(self.groups)) for s in shards)
            self._check("I4 no_quorum is explained", explained,
                        f"{kind}: miroir_no_quorum but every shard had an undisturbed group")
        self._settle_in_model(versions, answer, accepted and not pairs)

    def _settle_in_model(self, versions: Mapping[str, bytes], answer: Answer,
                         clean: bool) -> None:
        confirmed = clean and self.spec.rf <= 2
        for doc_id, version in versions.items():
            if confirmed:
                self.model.confirmed(doc_id, version, answer.started)
            else:
                self.model.uncertain(doc_id, version, answer.started,
                                     acknowledged=answer.status == 202)

    def _check_write_verdict(self, kind: str, answer: Answer, shards: set[int],
                             pairs: set[tuple[int, int]], acks: Mapping[str, bool]) -> None:
        """I3/I4 exactly: from what each owner answered (as the proxy saw it) and the quorum
        rule, the (group, shard) pairs that missed quorum are exactly the header's, and the
        answer is 503 `miroir_no_quorum` exactly when some shard met quorum in no group."""
        if self._out_of_quorum is None:
            self.report.checks["I3/I4 exact skipped (a node changed state mid-write)"] += 1
            return
        needed = quorum_size(self.spec.rf)

        def missed_with(acked: Callable[[str], bool]) -> set[tuple[int, int]]:
            return {(g, s) for s in shards for g in range(self.groups)
                    if sum(acked(n) for n in self.owners[(g, s)]
                           if n not in self._out_of_quorum) < needed}

        missed = missed_with(lambda n: acks.get(n, False))
        # At most these missed, had every lost answer's task been adopted by a retry.
        surely = missed_with(lambda n: acks.get(n, False) or n in self._enqueued_unanswered)
        lost = sorted(s for s in shards if all((g, s) in missed for g in range(self.groups)))
        surely_lost = sorted(
            s for s in shards if all((g, s) in surely for g in range(self.groups)))
        if surely_lost:
            self._check("I4 no_quorum exactly when a shard met quorum nowhere",
                        answer.status == 503 and answer.code == "miroir_no_quorum",
                        f"{kind}: shards {surely_lost} met quorum in no group (acks {dict(acks)})"
                        f" but the answer was {answer.status} {answer.code}")
        elif answer.status == 202:
            self._check("I3 write header lists exactly the missed pairs",
                        surely <= pairs <= missed,
                        f"{kind}: header {sorted(pairs)} but missed {sorted(missed)}, of which "
                        f"{sorted(surely)} surely (acks {dict(acks)})")
        elif lost:
            self.report.checks["I4 no_quorum, a lost answer's task not adopted"] += 1
        else:
            self._check("I4 no_quorum exactly when a shard met quorum nowhere",
                        answer.code != "miroir_no_quorum",
                        f"{kind}: miroir_no_quorum but every shard met quorum somewhere "
                        f"(acks {dict(acks)})")

    def _pair_disturbed(self, group: int, shard: int) -> bool:
        return any(node in self.disturbed for node in self.owners[(group, shard)])

    async def change_settings(self, patch: Mapping[str, Any]) -> Answer:
        self.report.operations["settings"] += 1
        before = self._settings_tasks()
        answer = await self.sim.request("PATCH", f"/indexes/{INDEX}/settings", dict(patch))
        self._common_checks("settings", answer)
        self._check_settings_sent_once(patch, before)
        status = None
        if answer.status == 202:
            uid = answer.body["taskUid"]
            self.tasks.add(uid)
            task = await self.sim.request("GET", f"/tasks/{uid}")
            status = task.body.get("status") if task.status == 200 else None
        if status == "succeeded":
            self.settings.update(patch)
            self.settings_certain = True  # applied on every node, by the task's own account
        elif status != "failed" or self.disturbed:
            # A failed change is rolled back, but a rollback that cannot reach a node leaves it.
            self.settings_certain = False
        return answer

    def _settings_tasks(self) -> dict[str, tuple[int, int]]:
        """Per node up now: (its engine's identity, its newest task uid)."""
        seen = {}
        for node in self.node_ids():
            if node not in self.crashed:
                engine = self.sim.transport.engine(node)
                seen[node] = (id(engine), max(engine.tasks, default=-1))
        return seen

    def _check_settings_sent_once(self, patch: Mapping[str, Any],
                                  before: Mapping[str, tuple[int, int]]) -> None:
        """I13 for settings, whose node tasks carry no tag (Meilisearch takes no
        `customMetadata` there): during one change, no node enqueued the change's patch twice.
        The patch is the only partial settings body a change sends (a rollback or a repair
        writes whole settings), so two tasks with its keys are a resend that duplicated one."""
        keys = set(protect_settings_patch(patch))
        for node, (engine_id, newest) in before.items():
            if node in self.crashed:
                continue
            engine = self.sim.transport.engine(node)
            if id(engine) != engine_id:
                continue  # restarted wiped meanwhile
            # Per node-side index: a reshard's mirror applies the same patch to its new layout,
            # one task on each index, not a resend.
            by_index: dict[str | None, list[int]] = {}
            for uid, task in engine.tasks.items():
                if uid > newest and task.type == "settingsUpdate" and \
                        set(task.details or ()) == keys:
                    by_index.setdefault(task.index_uid, []).append(uid)
            for index_uid, twice in by_index.items():
                self._check("I13 no node task is duplicated by a retry", len(twice) <= 1,
                            lambda node=node, twice=twice, index_uid=index_uid:
                            f"{node} enqueued settings {dict(patch)} on {index_uid} "
                            f"{len(twice)} times in one change (tasks {twice})")

    # ---------------------------------------------------------------------------- reads

    async def get(self, doc_id: int) -> Answer:
        self.report.operations["get"] += 1
        answer = await self.sim.request("GET", f"/indexes/{INDEX}/documents/{doc_id}")
        self._common_checks("get", answer)
        key = str(doc_id)
        version = _read_version(answer)
        if version is not None:
            history = self.model.history.get(key, {ABSENT})
            self._check("I2 read returns a written version", version in history,
                        f"get {doc_id} returned {version[:80]!r}, never written")
        return answer

    async def search(self, query: Mapping[str, Any]) -> Answer:
        self.report.operations["search"] += 1
        self._searched = set()
        try:
            answer = await self.sim.request("POST", f"/indexes/{INDEX}/search", dict(query))
            searched = self._searched
        finally:
            self._searched = None
        self._common_checks("search", answer)
        uncovered = set(range(self.shards)) - searched
        if self.in_flux:  # reads follow the source placement: no exact header check
            self.report.checks["I3 search skipped (shards moving)"] += 1
        elif answer.status == 200:
            listed = _parse_search_header(answer.degraded) if answer.degraded else set()
            self._check("I3 search header lists exactly the unanswered shards",
                        listed == uncovered,
                        f"search: header {sorted(listed)} but no node answered for "
                        f"{sorted(uncovered)}")
        elif answer.code == "miroir_shard_unavailable":
            self._check("I3 shard_unavailable exactly when a shard went unanswered",
                        bool(uncovered), "search: miroir_shard_unavailable but every shard "
                        "was answered")
        if answer.status == 200:
            for hit in answer.body.get("hits", []):
                doc = {k: v for k, v in hit.items() if not k.startswith("_")}
                ok = version_of(doc) in self.model.history.get(str(hit.get("id")), set())
                self._check("I2 search hit is a written version", ok,
                            f"search {dict(query)} returned {doc}, never written")
            missing = _parse_search_header(answer.degraded) if answer.degraded else set()
            for shard in sorted(missing) if not self.in_flux else ():
                explained = any(self._pair_disturbed(g, shard) for g in range(self.groups))
                self._check("I3 missing shard is explained", explained,
                            f"search: shard {shard} missing but no owner was disturbed")
            for shard in range(self.shards) if not self.in_flux else ():
                all_down = all(n in self.down for g in range(self.groups)
                               for n in self.owners[(g, shard)])
                if all_down:
                    self._check("I3 uncovered shard is reported", shard in missing,
                                f"search: every owner of shard {shard} was down, header "
                                f"{answer.degraded}")
        return answer

    # ---------------------------------------------------------------------------- faults

    def _disturb(self, kind: str, node: str) -> None:
        self.report.faults[kind] += 1
        self.disturbed.add(node)
        self.sim.note(f"fault {kind} {node}")

    def crash(self, node: str) -> None:
        if node in self.crashed:
            return
        self.sim.transport.crash(node)
        self.crashed.add(node)
        self.down.add(node)
        self._disturb("crash", node)

    def restart(self, node: str, *, wipe: bool = False) -> None:
        """Restart a crashed node; `wipe` starts it with an empty engine (its disk was lost):
        every document it owned may now be missing from it, and so may its settings."""
        if node not in self.crashed:
            return
        self.sim.transport.restart(node, wipe=wipe)
        self.crashed.discard(node)
        if node not in self.partitioned:
            self.down.discard(node)
        if wipe:
            now = trio.current_time()
            for doc_id in self.model.ids():
                shard = self.shard_of(doc_id)
                if any(node in self.owners[(g, shard)] for g in range(self.groups)):
                    self.model.uncertain(doc_id, ABSENT, now, acknowledged=False)
            self.settings_certain = False
        self._disturb("restart wiped" if wipe else "restart", node)

    def partition(self, node: str) -> None:
        if node in self.partitioned:
            return
        self.sim.transport.partition(node)
        self.partitioned.add(node)
        self.down.add(node)
        self._disturb("partition", node)

    def heal(self, node: str) -> None:
        if node not in self.partitioned:
            return
        self.sim.transport.heal(node)
        self.partitioned.discard(node)
        if node not in self.crashed:
            self.down.discard(node)
        self._disturb("heal", node)

    def tamper_document(self, node: str, pick: Callable[[list], Any]) -> None:
        """Someone changes or deletes, on `node` only and behind Miroir's back, a document the
        node owns: to an older version a client once sent, or away. The id becomes uncertain in
        the model (Miroir cannot tell which replica is right; the checkpoint re-sends it) and
        the replicas disagree until the reconciler's pass (I11)."""
        engine = self.sim.transport.engine(node)
        if node in self.down or self.node_index not in engine.indexes:
            return
        group = self.group_of(node)
        owned = [i for i in self.model.ids() if node in self.owners[(group, self.shard_of(i))]]
        if not owned:
            return
        doc_id = pick(owned)
        version = pick(sorted(self.model.history[doc_id]))
        if version == ABSENT:
            change = lambda e: e.delete_documents(self.node_index, [doc_id])  # noqa: E731
        else:
            document = {**orjson.loads(version), SHARD_FIELD: self.shard_of(doc_id)}
            change = lambda e: e.add_documents(  # noqa: E731
                self.node_index, [document], primary_key="id")
        if self.sim.transport.out_of_band(node, change):
            self.model.uncertain(doc_id, version, trio.current_time(), acknowledged=False)
            self._disturb("tamper document", node)

    def tamper_settings(self, node: str, patch: Mapping[str, Any]) -> None:
        """Someone applies a settings patch to `node` only, behind Miroir's back (keeping
        `_miroir_shard` filterable, as an operator who knows Miroir would)."""
        engine = self.sim.transport.engine(node)
        if node in self.down or self.node_index not in engine.indexes:
            return
        sent = protect_settings_patch(patch)
        if self.sim.transport.out_of_band(
                node, lambda e: e.update_settings(self.node_index, sent)):
            self._disturb("tamper settings", node)

    def set_faults(self, kind: str, node: str, faults: FaultModel) -> None:
        """`kind` names the fault for the report: slow, flaky, ..."""
        self.sim.transport.set_faults(node, faults)
        self._disturb(kind, node)

    async def advance(self, seconds: float) -> None:
        self.report.operations["advance"] += 1
        await sim_clock.sleep(seconds)

    # ------------------------------------------------------------------------ checkpoint

    async def checkpoint(self, queries: list[Mapping[str, Any]]) -> None:
        """Heal every fault, wait for recovery and repairs, then check I7-I10 (see the module
        docstring)."""
        self.report.operations["checkpoint"] += 1
        await self.heal_and_resend()
        if self.before_replica_check is not None:
            await self.before_replica_check()
        await self._reconcile()
        await self._check_reads()
        await self._check_searches(queries)

    async def heal_and_resend(self) -> None:
        """A checkpoint's first half: heal every fault, wait for recovery, repairs and every
        task (I7, I10), re-send what is ambiguous as a retrying client would, so the model
        knows the corpus again (`miroir.sim.reshard` uses it before following a reshard)."""
        self.sim.note("checkpoint: heal all")
        for node in sorted(self.crashed):
            self.sim.transport.restart(node)
        for node in self.node_ids():
            self.sim.transport.set_faults(node, self.sim.transport.default_faults)
        self.sim.transport.heal()
        self.crashed.clear()
        self.partitioned.clear()
        self.down.clear()
        await trio.sleep(self.spec.recovery_s() + self.model.settle_s)
        await self._wait_repairs()
        await self._wait_tasks()
        # Re-send what is ambiguous, as a client retrying its failed writes would.
        resend = self.model.uncertain_ids()
        documents = [orjson.loads(self.model.newest[i]) for i in resend
                     if self.model.newest[i] != ABSENT]
        deleted = [int(i) for i in resend if self.model.newest[i] == ABSENT]
        self.disturbed.clear()
        if documents:
            await self.write("add", documents)
        if deleted:
            await self.delete(deleted)
        if not self.settings_certain:
            await self.change_settings(self.settings or {"filterableAttributes": []})
        await self._wait_tasks()

    async def _reconcile(self) -> None:
        """One reconciler pass (POST /_miroir/consistency), then I11 on the nodes' engines (the
        simulated world's ground truth): every owner of a shard, in every group, holds the same
        documents of it, and every node the same settings."""
        answer = await self.sim.request("POST", "/_miroir/consistency")
        self._common_checks("reconcile", answer)
        self.sim.transport.catch_up()
        engines = {node: self.sim.transport.engine(node) for node in self.node_ids()}
        indexes = {node: engine.indexes.get(self.node_index) for node, engine in engines.items()}
        settings = {node: index.settings if index is not None else None
                    for node, index in indexes.items()}
        distinct = {orjson.dumps(s, option=orjson.OPT_SORT_KEYS) for s in settings.values()}
        self._check("I11 every node holds the same settings", len(distinct) == 1,
                    lambda: "settings differ in " + ", ".join(sorted({
                        key for s in settings.values() if s for key in s
                        if len({orjson.dumps(o.get(key) if o else None, option=orjson.OPT_SORT_KEYS)
                                for o in settings.values()}) > 1})))
        for node, engine in engines.items():
            tags = Counter(task.custom_metadata for task in engine.tasks.values()
                           if (task.custom_metadata or "").startswith(TAG_PREFIX))
            twice = sorted(tag for tag, count in tags.items() if count > 1)
            self._check("I13 no node task is duplicated by a retry", not twice,
                        lambda node=node, twice=twice: f"{node} enqueued {twice} more than once")
        for shard in range(self.shards):
            held: dict[str, dict[str, Any]] = {}
            for group in range(self.groups):
                for node in self.owners[(group, shard)]:
                    index = indexes[node]
                    held[node] = {} if index is None else {
                        i: d for i, d in index.documents.items() if self.shard_of(i) == shard}
            first = next(iter(held.values()))
            self._check("I11 every replica of a shard holds the same documents",
                        all(docs == first for docs in held.values()),
                        lambda held=held, shard=shard: f"shard {shard}: " + ", ".join(
                            f"{n}: {sorted(d)}" for n, d in sorted(held.items())))

    async def _wait_repairs(self) -> None:
        """I10: a node back from `failed` is repaired (re-provisioned, caught up) and leaves
        `joining` once its faults are healed, within a budget of health rounds."""
        waited = 0.0
        budget = 20 * self._timeout_s + 10 * self.spec.recovery_s()
        while (pending := self.nodes_out_of_quorum()) and waited <= budget:
            await trio.sleep(self.spec.task_poll_interval_s)
            waited += self.spec.task_poll_interval_s
        self._check("I10 repaired after heal", not pending,
                    f"nodes {sorted(pending)} still joining or failed after {waited:.1f}s of "
                    "healing")

    async def _wait_tasks(self) -> None:
        """I7: every task a client was given reaches a terminal state. Asked through the proxy's
        task list (one request per poll; listing refreshes unfinished tasks), then each given
        uid is looked up in the final listing."""
        waited = 0.0
        budget = 20 * self._timeout_s + 10 * self.spec.task_poll_interval_s
        path = "/tasks?statuses=enqueued,processing&limit=1000"
        while True:
            answer = await self.sim.request("GET", path)
            self._common_checks("task", answer)
            unfinished = {t["uid"] for t in answer.body.get("results", [])} \
                if answer.status == 200 else set(self.tasks)
            if not unfinished & self.tasks or waited > budget:
                break
            await trio.sleep(self.spec.task_poll_interval_s)
            waited += self.spec.task_poll_interval_s
        listing = await self.sim.request("GET", "/tasks?limit=100000")
        self._common_checks("task", listing)
        statuses = {t["uid"]: t["status"] for t in listing.body.get("results", [])} \
            if listing.status == 200 else {}
        for uid in sorted(self.tasks):
            self._check("I7 task terminal", statuses.get(uid) in TERMINAL,
                        f"task {uid} is {statuses.get(uid)} after {waited:.1f}s of healing")
            if statuses.get(uid) in TERMINAL:
                self._check("I12 a finished task is announced exactly once",
                            self.finished_announced[uid] == 1,
                            f"task {uid} was announced finished "
                            f"{self.finished_announced[uid]} times")
        self.tasks = {uid for uid in self.tasks if statuses.get(uid) not in TERMINAL}

    async def _check_reads(self) -> None:
        for doc_id in self.model.ids():
            answer = await self.sim.request("GET", f"/indexes/{INDEX}/documents/{doc_id}")
            self._common_checks("get", answer)
            version = _read_version(answer)
            self._check("I8 readable after heal", version == self.model.newest[doc_id],
                        f"get {doc_id} -> {answer.status} {version!r:.100}, expected "
                        f"{self.model.newest[doc_id]!r:.100}")

    async def _check_searches(self, queries: list[Mapping[str, Any]]) -> None:
        corpus = self.model.settled_corpus()
        if corpus is None or not self.settings_certain:
            self.report.checks["I9 skipped (corpus not settled)"] += 1
            return
        reference = reference_engine(corpus, self.settings)
        for query in queries:
            full = {**query, "limit": 1000, "offset": 0, "showRankingScore": True}
            answer = await self.sim.request("POST", f"/indexes/{INDEX}/search", full)
            self._common_checks("search", answer)
            status, expected = reference_search(reference, full)
            if not self._check("I9 search status equals reference", answer.status == status,
                               f"search {query}: {answer.status} {answer.code} vs reference "
                               f"{status}"):
                continue
            if status == 200:
                difference = search_difference(answer.body, expected, query.get("sort", ()))
                self._check("I9 search equals reference", difference is None,
                            f"search {query}: {difference}")


def _read_version(answer: Answer) -> bytes | None:
    """The version a read by id saw: the document, ABSENT for 404, None for no answer."""
    if answer.status == 200 and isinstance(answer.body, dict):
        return version_of(answer.body)
    if answer.status == 404 and answer.code == "document_not_found":
        return ABSENT
    return None


def _parse_write_header(value: str) -> set[tuple[int, int]]:
    pairs = set()
    for item in value.split(","):
        group, _, shard = item.partition("/")
        pairs.add((int(group), int(shard)))
    return pairs


_WRITE_TAG = re.compile(r"[?&]customMetadata=([^&]+)")
_SHARD_RESTRICTION = re.compile(r"_miroir_shard IN \[([0-9, ]*)\]")


def _parse_search_header(value: str) -> set[int]:
    _, _, shards = value.partition("shards=")
    return {int(s) for s in shards.split(",") if s}
