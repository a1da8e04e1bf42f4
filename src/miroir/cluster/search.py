"""The read path's scatter: ask one replica group's covering set, fall back shard by shard.

Owns `gather_shards` (the covering-set scatter with group fallback every read route uses) and
the searches of one index built on it: `search_index` and `facet_search` (the multi-searches
are `miroir.cluster.multi_search`). It must never render HTTP (the proxy does), never merge anything itself (that
is `miroir.core.merge*`, which is pure), and never let a node call outlive the request's deadline.

Theory of operation
-------------------
A read takes the next query number `seq` of this process. Group `seq % RG` is asked first: the
shard map's `read_plan` (the core's covering set, memoized per map) picks one readable owner per
shard (rotated by `seq`, so replicas share the load) and groups the shards per node. Every node is sent its request at once, each call
under the one deadline of the whole read (`node_timeout_ms` from its start). The first plan
goes out as one batch (`Cluster.call_each`): over `HttpTransport` one task sends every request
and then reads every answer, which is most of what makes a search cheap (docs/benchmarks.md). When any shard has
another replica (RF > 1 or RG > 1), a call gets only half the time left (`ATTEMPT_SHARE`), so a
node that hangs instead of failing still leaves time for a fallback; with RF = RG = 1 there is
nobody to fall back to and each call gets all of it.

A node that fails (transport error or 5xx) does not fail the read: each of its shards moves on,
as soon as that failure is known and while the others are still in flight, to its next
candidate (`miroir.core.replicas.read_candidates`: the other readable replicas of the same
group, then the replicas of the other groups in round-robin order), grouped per node again. Shards with no readable owner in the
first group start on the other groups straight away. Everything runs in one nursery under a
cancel scope at the deadline, so a fallback never extends the read. A shard whose candidates
are exhausted, or whose node had not answered by the deadline, is *missing*: the caller's policy
decides between a partial answer (with the missing shards listed) and `miroir_shard_unavailable`.

Before the scatter, the merge needs the index's settings (ranking rules, distinct, faceting):
they come from the index catalog (`cluster.indexes.index_settings`), and a lookup it cannot
answer asks the serving nodes as a hedged race under one node timeout in all. So a search ends within two node timeouts whatever the
nodes do: one for the lookup, one for the scatter and its fallbacks.

A 4xx answer is the node's verdict on the request (bad filter, unknown index) that every node
would repeat: the read stops and that answer is raised as `NodeRejected`, passed to the client.

A node holding more shards than it was given answers only for its share: its body is built with
the shards listed (`restrict_to_shards` in the core). When its share is exactly what it owns, the
body goes unrestricted, which is the common case (RF=1) and spares the node a filter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs
import orjson
import trio

from miroir.cluster.indexes import index_settings, primary_key
from miroir.cluster.runtime import Cluster, NodeRejected
from miroir.cluster.settings_sync import read_map
from miroir.core.errors import MeiliError, Overloaded
from miroir.core.merge import clean_hit, distinct_values, merge_search_outcome
from miroir.core.merge_facets import merge_facet_search
from miroir.core.merge_hybrid import HybridSplit, merge_hybrid_search, split_hybrid
from miroir.core.placement import query_group
from miroir.core.replicas import read_candidates
from miroir.core.routing import hide_shard_field
from miroir.core.search_plan import NodePlan, plan_node_query, restrict_to_shards
from miroir.core.topology import ShardMap
from miroir.transport.base import (
    FailureKind,
    NodeResponse,
    NodeResult,
    failure_kind,
    is_node_failure,
)

# The share of the time left that one node call gets when another replica could take over.
ATTEMPT_SHARE = 0.5
PARTIAL = "partial"  # scatter.unavailable_shard_policy; the other value, "error", refuses

# body_for(shards) -> request body; `shards` is None when the node owns exactly its share.
BodyFor = Callable[[Sequence[int] | None], bytes]


@attrs.frozen
class ShardAnswer:
    """One node's 2xx answer for `shards`."""

    node_id: str
    shards: tuple[int, ...]
    response: NodeResponse


@attrs.frozen
class Gathered:
    """Every answer (ordered by the first shard each covers) and the shards nobody answered."""

    answers: list[ShardAnswer]
    missing: tuple[int, ...]

    def bodies(self) -> list[Any]:
        return [answer.response.json() for answer in self.answers]


@attrs.frozen
class ReadResult:
    """A merged answer and the shards it lacks (empty unless the policy is `partial`)."""

    response: dict[str, Any]
    missing: tuple[int, ...] = ()


async def gather_shards(
    cluster: Cluster, method: str, path: str, body_for: BodyFor, *, timeout_ms: int | None = None,
    shard_map: ShardMap | None = None,
) -> Gathered:
    """Every shard answered once, by the first group's covering set or a fallback replica.

    `shard_map`: the map to read with (`settings_sync.read_map`: without the nodes that lag
    behind the index's committed settings); the cluster's current one by default.

    Raises `NodeRejected` on the first 4xx answer. Never raises for failed or slow nodes: their
    shards end up in `Gathered.missing` when no other replica answered before the deadline.
    """
    return await _Gathering(cluster, method, path, body_for, timeout_ms, shard_map).run()


class _Gathering:
    """The state of one `gather_shards`. A class rather than closures on purpose: closures that
    call each other (ask -> settle -> dispatch -> ask) form a reference cycle through their
    cells, which left every read's answers to the cyclic garbage collector; under load that cost
    ~10% of a search's CPU (docs/benchmarks.md). Bound methods hold no such cycle."""

    def __init__(
        self,
        cluster: Cluster,
        method: str,
        path: str,
        body_for: BodyFor,
        timeout_ms: int | None,
        shard_map: ShardMap | None = None,
    ) -> None:
        self.cluster = cluster
        self.method = method
        self.path = path
        self.body_for = body_for
        # One snapshot for the whole read.
        self.shard_map = shard_map = shard_map if shard_map is not None else cluster.shard_map
        self.seq = cluster.next_query_seq()
        timeout_s = (timeout_ms or cluster.settings.node_timeout_ms) / 1000
        self.deadline = trio.current_time() + timeout_s
        # With a second replica somewhere, an attempt gets only part of the time left, so that
        # a node that hangs (rather than failing fast) still leaves time to ask another replica.
        self.retry_on_timeout = cluster.settings.retry_on_timeout
        self.may_fall_back = self.retry_on_timeout and (
            shard_map.replica_groups > 1 or shard_map.placement.replication_factor > 1
        )
        # Nodes asked per shard, filled on a shard's first fallback (the common read has none).
        self.tried: dict[int, set[str]] = {}
        self.answers: list[ShardAnswer] = []
        self.rejection: NodeResponse | None = None
        self.first_shards: dict[str, list[int]] = {}
        self.nursery: trio.Nursery | None = None
        # Calls sent and not yet answered (node -> how many), so that a call the read's own
        # deadline cuts off is still counted as that node's timeout (health, metrics): trio
        # delivers the cancellation to the outermost expired scope, the nursery's, so the call's
        # own timeout never reports it.
        self.unanswered: dict[str, int] = {}
        self.started = self.sent_at = trio.current_time()
        self.gated = False  # whether this read holds admission slots (`cluster.admission`)
        # Hedged reads (RF > 1 or RG > 1, `scatter.hedging`): shards answered so far (a late
        # loser's answer is dropped), first-plan nodes still unanswered, hedge calls in flight
        # (their cancel scopes, so the loser is cancelled), and whether the read ended early
        # because every shard was answered while a loser was still running.
        self.hedging = self.may_fall_back and cluster.settings.hedging
        self.track_shards = self.may_fall_back
        self.answered_shards: set[int] = set()
        self.pending_first: set[str] = set()
        self.hedges: list[tuple[trio.CancelScope, tuple[int, ...]]] = []
        self.hedged_shards: set[int] = set()
        self.pending: dict[int, int] = {}  # shard -> calls running for it (when tracked)
        self.complete = False
        self.watch_scope: trio.CancelScope | None = None

    async def run(self) -> Gathered:
        shard_map = self.shard_map
        group = query_group(self.seq, shard_map.replica_groups)
        if self.cluster.settings.adaptive_replica_selection and shard_map.placement.replication_factor > 1:
            first_plan, uncovered = self.cluster.adaptive_read_plan(shard_map, group, self.seq)
        else:
            first_plan, uncovered = shard_map.read_plan(group, self.seq)
        first_bodies: dict[str, bytes] = {}
        for node_id, shards, exact in first_plan:
            self.first_shards[node_id] = shards
            first_bodies[node_id] = self.body_for(None if exact else shards)
        gates = self.cluster.gates
        await self.prepare(first_bodies, uncovered)
        try:
            # The nursery's own scope carries the deadline (one scope per search, not two);
            # like move_on_at, it swallows its own cancellation.
            async with trio.open_nursery() as self.nursery:
                self.nursery.cancel_scope.deadline = self.deadline
                if uncovered:
                    self.dispatch(uncovered)
                    self.shards_wanted = shard_map.shards
                if self.hedging:
                    self.watch_scope = trio.CancelScope()
                    self.nursery.start_soon(self.watch_for_hedges, self.watch_scope)
                # The first plan goes out as one batch driven by this task (no task per node
                # when the transport offers it); a failure's fallback starts in the nursery as
                # soon as that failure is known, while the other answers are still being read.
                await self.cluster.call_each(
                    self.method,
                    self.path,
                    first_bodies,
                    timeout_ms=self.attempt_timeout_ms(),
                    on_result=self.settle_first,
                )
                if self.watch_scope is not None:
                    self.watch_scope.cancel()  # every first-plan node has its result
            cut_off = self.nursery.cancel_scope.cancelled_caught
            if cut_off and self.rejection is None and not self.complete:
                self.count_cut_off_calls()
        finally:
            self.nursery = None
            if self.gated:
                for node_id, calls in self.unanswered.items():
                    for _ in range(calls):
                        gates.leave(node_id, None)
            self.unanswered = {}
        if self.rejection is not None:
            raise NodeRejected(_without_shard_field(self.rejection))
        answers = self.answers
        answers.sort(key=lambda answer: min(answer.shards))
        if not uncovered and not self.tried and len(answers) == len(first_plan):
            return Gathered(answers, ())  # every first-plan node answered: all shards covered
        answered = {shard for answer in answers for shard in answer.shards}
        missing = tuple(s for s in range(shard_map.shards) if s not in answered)
        return Gathered(answers, missing)

    async def prepare(self, first_bodies: Mapping[str, bytes], uncovered: Sequence[int]) -> None:
        """Before the first batch: its admission slots, and the bookkeeping of a read that may
        fall back or hedge."""
        gates = self.cluster.gates
        if gates.enabled:
            # Every node's slot before any call (node-id order; `Overloaded` refuses the read
            # before a node sees it). Each slot is left when its answer arrives.
            await gates.enter_all(first_bodies, self.deadline)
            self.gated = True
        self.unanswered = dict.fromkeys(first_bodies, 1)
        self.sent_at = trio.current_time()
        shards = self.shard_map.shards
        self.shards_wanted = shards - len(uncovered)
        if self.track_shards:
            self.pending = dict.fromkeys(range(shards), 0)
            for first in self.first_shards.values():
                for shard in first:
                    self.pending[shard] += 1
        if self.hedging:
            self.cluster.hedge_budget.earn(len(first_bodies))
            self.pending_first = set(first_bodies)

    def attempt_timeout_ms(self) -> int:
        remaining_ms = (self.deadline - trio.current_time()) * 1000
        if self.may_fall_back:
            remaining_ms *= ATTEMPT_SHARE  # leave the rest of the deadline to a fallback
        return max(1, int(remaining_ms))

    def count_cut_off_calls(self) -> None:
        elapsed = trio.current_time() - self.started
        for node_id, calls in self.unanswered.items():
            for _ in range(calls):
                self.cluster.observe_unanswered(
                    node_id, elapsed, f"{self.method} {self.path}: the read's deadline passed"
                )

    def answered(self, node_id: str, sent_at: float | None) -> None:
        """One call to `node_id` ended (with a result when `sent_at` is given, else cancelled):
        its slot, if any, is left."""
        left = self.unanswered[node_id] - 1
        if left:
            self.unanswered[node_id] = left
        else:
            del self.unanswered[node_id]
        if self.gated:
            self.cluster.gates.leave(
                node_id, None if sent_at is None else trio.current_time() - sent_at
            )

    def settle_first(self, node_id: str, result: NodeResult) -> None:
        self.answered(node_id, self.sent_at)
        if self.hedging:
            self.pending_first.discard(node_id)
            if not self.pending_first and self.watch_scope is not None:
                self.watch_scope.cancel()
        self.settle(node_id, self.first_shards[node_id], result)

    def settle(self, node_id: str, shards: list[int], result: NodeResult) -> bool:
        """Take a node's result for `shards`: an answer (True when taken), a rejection, or a
        failure whose shards move on to their next replica."""
        if self.track_shards:
            self.ended(shards)
        if not is_node_failure(result):
            assert isinstance(result, NodeResponse)
            if result.ok:
                if self.track_shards and not self.take_shards(shards):
                    return False  # a hedge's loser (or a fallback's) answered late: dropped
                self.answers.append(ShardAnswer(node_id, tuple(shards), result))
                return True
            if self.rejection is None:
                self.rejection = result
                assert self.nursery is not None
                self.nursery.cancel_scope.cancel()
            return False
        if not self.retry_on_timeout and failure_kind(result) is FailureKind.TIMEOUT:
            return False  # scatter.retry_on_timeout is off: the shards stay missing
        if self.track_shards:
            # Another call (a hedge, or the first-plan call a hedge raced) may still be running
            # for some of these shards, or have answered them: only the rest move on.
            shards = [s for s in shards if s not in self.answered_shards and not self.pending[s]]
        self.dispatch(shards)
        return False

    def ended(self, shards: Sequence[int]) -> None:
        """A call for `shards` is no longer running (it has a result, or was cancelled)."""
        pending = self.pending
        for shard in shards:
            pending[shard] -= 1

    def take_shards(self, shards: Sequence[int]) -> bool:
        """Record an answer for `shards` unless it adds nothing (then it is a race's loser:
        dropped). Cancels hedges made useless, and the whole read once every shard is answered
        while a loser still runs.

        A node's answer cannot be split per shard (totals, facets, one ranked list), so an answer
        that overlaps answers taken before either replaces them or is dropped. A hedge or a
        fallback asks for part of one earlier call's shards, so the answers it overlaps each
        cover part of its shards: it replaces them when it also covers a shard nobody answered
        (the late primary of a hedge that could only take over some of its shards -- dropping
        it would leave the others missing although their answer had arrived, the simulator's
        seed 15 on 6n-3g-rf1); otherwise it is dropped."""
        answered = self.answered_shards
        wanted = set(shards)
        overlap = wanted & answered
        if overlap:
            replaced = [a for a in self.answers if wanted.intersection(a.shards)]
            if wanted <= answered or not all(wanted.issuperset(a.shards) for a in replaced):
                return False
            self.answers = [a for a in self.answers if not wanted.intersection(a.shards)]
        answered.update(shards)
        if self.hedges:
            for scope, hedge_shards in self.hedges:
                if not scope.cancel_called and all(s in answered for s in hedge_shards):
                    scope.cancel()  # the primary (or another answer) won: the hedge loses
            if len(answered) >= self.shards_wanted and self.nursery is not None:
                self.complete = True
                self.nursery.cancel_scope.cancel()  # a slow primary lost: stop waiting for it
        return True

    async def watch_for_hedges(self, scope: trio.CancelScope) -> None:
        """At each first-plan node's recent p95 latency, a node still silent has its shards
        asked of another replica too, while the budget allows (`core.replica_choice`)."""
        with scope:
            latency = self.cluster.latency
            at = []
            for node_id in self.first_shards:
                stats = latency.get(node_id)
                p95 = None if stats is None else stats.p95()
                if p95 is not None:
                    at.append((self.sent_at + p95, node_id))
            at.sort()
            for moment, node_id in at:
                await trio.sleep_until(moment)
                if node_id not in self.pending_first:
                    continue
                shards = [s for s in self.first_shards[node_id]
                          if s not in self.answered_shards and s not in self.hedged_shards]
                # One token per hedged call: the shards may go to several replicas.
                by_node = self.next_candidates(shards)
                if by_node and self.cluster.hedge_budget.try_spend(len(by_node)):
                    self.hedged_shards.update(shards)
                    self.dispatch(shards, hedge=True)

    async def ask(self, node_id: str, shards: list[int],
                  hedge: trio.CancelScope | None = None) -> None:
        if hedge is None:
            await self._ask(node_id, shards)
            return
        # Exactly one outcome per hedged call (`sent` was counted at dispatch). Cancelled, it
        # lost: by its own scope, or with the whole read once every shard was answered (then
        # trio's Cancelled passes through this scope to the read's, hence `finally`).
        outcome = "lost"
        try:
            with hedge:
                outcome = await self._ask(node_id, shards)
        finally:
            self.cluster.observe_hedge(outcome)

    async def _ask(self, node_id: str, shards: list[int]) -> str:
        """One call for `shards`; how it ended, as a hedge's outcome: `won` (its answer was
        taken), `dropped` (an answer after the winner's) or `failed` (a failure, a refusal, or
        no room in the node's queue)."""
        body = self.body_for(None if self.shard_map.owns_exactly(node_id, shards) else shards)
        if self.gated:
            try:
                await self.cluster.gates.enter(node_id, self.deadline)
            except Overloaded:
                if self.track_shards:
                    self.ended(shards)
                self.dispatch(shards)  # this replica's queue is too long: the next one
                return "failed"
            except trio.Cancelled:
                if self.track_shards:
                    self.ended(shards)
                raise
        self.unanswered[node_id] = self.unanswered.get(node_id, 0) + 1
        sent_at = trio.current_time()
        try:
            result = await self.cluster.call(
                node_id, self.method, self.path, raw_body=body,
                timeout_ms=self.attempt_timeout_ms(),
            )
        except trio.Cancelled:
            self.answered(node_id, None)  # a hedge that lost, or the read ended: slot back now
            if self.track_shards:
                self.ended(shards)
            raise
        self.answered(node_id, sent_at)
        if self.settle(node_id, shards, result):
            return "won"
        return "dropped" if isinstance(result, NodeResponse) and result.ok else "failed"

    def next_candidates(self, shards: Sequence[int]) -> dict[str, list[int]]:
        """Each shard's next untried candidate, grouped per node (a shard with no untried
        candidate is left out); nothing is marked tried."""
        by_node: dict[str, list[int]] = {}
        for shard in shards:
            seen = self.tried.get(shard)
            if seen is None:  # first fallback of this shard: its first-plan node was tried
                seen = {node_id for node_id, owned in self.first_shards.items() if shard in owned}
            for node_id in read_candidates(self.shard_map, shard, self.seq):
                if node_id not in seen:
                    by_node.setdefault(node_id, []).append(shard)
                    break
        return by_node

    def dispatch(self, shards: Sequence[int], hedge: bool = False) -> None:
        """Send each shard to its next untried candidate (one call per node)."""
        by_node = self.next_candidates(shards)
        for node_id, node_shards in by_node.items():
            for shard in node_shards:
                seen = self.tried.get(shard)
                if seen is None:
                    seen = self.tried[shard] = {
                        n for n, owned in self.first_shards.items() if shard in owned
                    }
                seen.add(node_id)
                if self.track_shards:
                    self.pending[shard] += 1
        assert self.nursery is not None
        for node_id, node_shards in by_node.items():
            scope = None
            if hedge:
                # Registered now, not when its task starts: an answer arriving in between (at
                # the same instant as the hedge's threshold) must find it to cancel it, or the
                # read would wait for a hedge whose shards were already answered.
                scope = trio.CancelScope()
                self.hedges.append((scope, tuple(node_shards)))
                self.cluster.observe_hedge("sent")  # one per hedged call: its outcome follows
            self.nursery.start_soon(self.ask, node_id, node_shards, scope)


# `_miroir_shard` as an item of a list in a node's message, in either of the spellings
# Meilisearch uses: "`a`, `b`" or "`a, b`".
def _without_shard_field(response: NodeResponse) -> NodeResponse:
    """A node's refusal with `_miroir_shard` taken out of its message (e.g. the list of
    filterable attributes in `invalid_search_filter`): clients never see Miroir's field."""
    if b"_miroir_shard" not in response.body:
        return response
    try:
        body = orjson.loads(response.body)
        message = body["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return response
    if isinstance(message, str):
        body["message"] = hide_shard_field(message)
    return NodeResponse(response.node_id, response.status, response.headers, orjson.dumps(body))


def check_coverage(gathered: Gathered, policy: str) -> None:
    """Raise `miroir_shard_unavailable` unless the policy accepts what was gathered."""
    if not gathered.missing:
        return
    if policy == PARTIAL and gathered.answers:
        return
    listed = ", ".join(str(s) for s in gathered.missing)
    raise MeiliError(
        "miroir_shard_unavailable",
        f"No replica in any replica group answered for shard(s) {listed} in time.",
    )


# ---- the searches ---------------------------------------------------------------------------


def params_body(params: Mapping[str, Any]) -> BodyFor:
    # The unrestricted body is the same for every node that owns exactly its share: encode once.
    full = orjson.dumps(params)
    return lambda shards: full if shards is None else orjson.dumps(restrict_to_shards(params, shards))


async def search_index(
    cluster: Cluster, uid: str, params: Mapping[str, Any], *, policy: str = PARTIAL
) -> ReadResult:
    """POST /indexes/{uid}/search across the shards: plan, scatter, merge (refetching while a
    cross-shard distinct leaves the window short)."""
    phases = Phases() if params.get("showPerformanceDetails") is True else None
    started = trio.current_time() if phases is not None else 0.0
    shard_map = await read_map(cluster, (uid,))  # first: it may file the committed settings
    settings = await index_settings(cluster, uid)
    plan: NodePlan | None = plan_node_query(params, settings)
    result: ReadResult | None = None
    if isinstance(params.get("hybrid"), Mapping):
        distinct = params.get("distinct") or settings.get("distinctAttribute")
        key = await primary_key(cluster, uid)
        assert plan is not None
        split = split_hybrid(params, plan, key, distinct if isinstance(distinct, str) else None)
        if split is not None:
            if phases is not None:
                phases.add("plan", trio.current_time() - started)
            result = await _hybrid_search(
                cluster, uid, split, settings, policy, phases, shard_map
            )
    if result is None:
        if phases is not None:
            phases.add("plan", trio.current_time() - started)
        result = await _plain_search(cluster, uid, plan, policy, phases, shard_map)
    if phases is not None:
        result.response["performanceDetails"] = phases.render()
    return result


class Phases:
    """`showPerformanceDetails`: the time of Miroir's phases (plan, scatter, merge) and each
    node's own `performanceDetails`, as Meilisearch shows durations (Rust's `{:.2?}`)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.nodes: dict[str, str] = {}

    def add(self, phase: str, seconds: float) -> None:
        name = f"miroir > {phase}"
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def add_nodes(self, answers: Sequence[ShardAnswer], prefix: str = "") -> None:
        for answer in answers:
            try:
                details = answer.response.json().get("performanceDetails")
            except (ValueError, AttributeError):
                continue
            if isinstance(details, Mapping):
                for name, value in details.items():
                    self.nodes[f"{prefix}node {answer.node_id} > {name}"] = value

    def render(self) -> dict[str, str]:
        shown = {name: rust_duration(seconds) for name, seconds in self.seconds.items()}
        shown.update(self.nodes)
        return shown


def rust_duration(seconds: float) -> str:
    """A duration as Rust's `format!("{:.2?}", duration)` prints it."""
    nanos = max(seconds, 0.0) * 1e9
    if nanos >= 1e9:
        return f"{nanos / 1e9:.2f}s"
    if nanos >= 1e6:
        return f"{nanos / 1e6:.2f}ms"
    if nanos >= 1e3:
        return f"{nanos / 1e3:.2f}µs"
    return f"{nanos:.2f}ns"


async def _plain_search(
    cluster: Cluster,
    uid: str,
    plan: NodePlan | None,
    policy: str,
    phases: Phases | None = None,
    shard_map: ShardMap | None = None,
) -> ReadResult:
    path = f"/indexes/{uid}/search"
    while True:
        assert plan is not None
        if phases is None:
            gathered = await gather_shards(cluster, "POST", path, params_body(plan.node_params),
                                           shard_map=shard_map)
            check_coverage(gathered, policy)
            outcome = merge_search_outcome(plan, gathered.bodies())
        else:
            started = trio.current_time()
            gathered = await gather_shards(cluster, "POST", path, params_body(plan.node_params),
                                           shard_map=shard_map)
            check_coverage(gathered, policy)
            scattered = trio.current_time()
            outcome = merge_search_outcome(plan, gathered.bodies())
            phases.add("scatter", scattered - started)
            phases.add("merge", trio.current_time() - scattered)
            phases.add_nodes(gathered.answers)
            outcome.response.pop("performanceDetails", None)
        if outcome.refetch is None:
            return ReadResult(outcome.response, gathered.missing)
        plan = outcome.refetch


async def _hybrid_search(
    cluster: Cluster,
    uid: str,
    split: HybridSplit,
    settings: Mapping[str, Any],
    policy: str,
    phases: Phases | None = None,
    shard_map: ShardMap | None = None,
) -> ReadResult:
    """A hybrid query as Meilisearch runs it on one node: the keyword and the semantic lists
    gathered (each merged exactly across the shards), then mixed by the hybrid rule."""
    found: dict[str, ReadResult | None] = {}
    # A refusal is raised as itself (the client gets the node's error), not as the nursery's
    # exception group: each search keeps its own, the keyword one is raised first.
    errors: dict[str, Exception] = {}

    async def run(name: str, params: dict[str, Any]) -> None:
        try:
            found[name] = await _plain_search(
                cluster, uid, plan_node_query(params, settings), policy, phases, shard_map
            )
        except NodeRejected as rejected:
            if name == "semantic" and rejection_error(rejected).code == "vector_embedding_error":
                found[name] = None  # no vector for `q`: Meilisearch answers with keyword hits
            else:
                errors[name] = rejected
        except MeiliError as error:
            errors[name] = error

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run, "keyword", split.keyword_params)
        nursery.start_soon(run, "semantic", split.semantic_params)
    for name in ("keyword", "semantic"):
        if name in errors:
            raise errors[name]
    keyword, semantic = found["keyword"], found["semantic"]
    assert keyword is not None
    mixing = trio.current_time()
    response = merge_hybrid_search(
        split,
        keyword.response,
        None if semantic is None else semantic.response,
        distinct_values=distinct_values,
        strip=lambda hit, fields: clean_hit(hit, fields, True, True),
    )
    if phases is not None:
        phases.add("hybrid merge", trio.current_time() - mixing)
    missing = set(keyword.missing) | set(semantic.missing if semantic is not None else ())
    return ReadResult(response, tuple(sorted(missing)))


def rejection_error(rejected: NodeRejected) -> MeiliError:
    body = rejected.response.json()
    return MeiliError(body.get("code", "bad_request"), body.get("message", ""))


async def facet_search(
    cluster: Cluster, uid: str, params: Mapping[str, Any], *, policy: str = PARTIAL
) -> ReadResult:
    """POST /indexes/{uid}/facet-search: every shard's facet hits, counts summed per value."""
    shard_map = await read_map(cluster, (uid,))
    settings = await index_settings(cluster, uid)
    gathered = await gather_shards(
        cluster, "POST", f"/indexes/{uid}/facet-search", params_body(params), shard_map=shard_map
    )
    check_coverage(gathered, policy)
    return ReadResult(merge_facet_search(params, settings, gathered.bodies()), gathered.missing)
