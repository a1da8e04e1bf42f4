"""The simulated cluster under a hypothesis state machine: any program of writes, reads, settings
changes, faults (wiped restarts included) and time keeps the invariants of
`miroir.sim.simulation` (I1-I10).

The machine's model is `miroir.sim.model` (the versions a client may read, and one devnode holding
the settled corpus); the system is the real proxy app over `SimTransport` nodes. After every step
the machine asserts that no invariant was violated; `checkpoint` (heal everything, wait, check
readability, tasks and search against the reference) is a rule of its own and also runs in
teardown, so "once faults heal" is checked in every example.

Trio runs in a helper thread with a MockClock that only moves while a step runs (autojump during
a step, frozen between steps), and trio's scheduler RNG is the one hypothesis seeds per example,
so every example replays exactly. A failure prints hypothesis' shortest program (its `seed`
argument is the SimTransport seed) and the violated invariants with the trace's last lines.
"""

from __future__ import annotations

import math
import os
import threading

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from miroir.sim.cluster import SimSpec, open_sim_cluster
from miroir.sim.simulation import GENRES, SETTINGS_CHOICES, WORDS, Simulation, make_document
from miroir.sim.transport import FaultModel

SHAPES = (SimSpec(nodes=3, groups=1, rf=2, shards=4), SimSpec(nodes=4, groups=2, rf=1, shards=4))
SLOW = FaultModel(latency=(0.1, 0.8))
FLAKY = FaultModel(latency=(0.001, 0.02), error_rate=0.1, stall_rate=0.05, drop_rate=0.05,
                   lost_reply_rate=0.05, task_delay=(0.0, 0.3))
MAX_LATENCY_S = 0.8
DOC_IDS = st.integers(0, 9)
NODES = st.integers(0, 3)
# Compared with the single-node reference at every checkpoint (I9); sort and facets answer 400
# on both sides while the settings do not allow them, which I9 also compares.
CHECKPOINT_QUERIES = [{"q": ""}, {"q": "red"}, {"q": "sun", "facets": ["genre"]},
                      {"q": "", "sort": ["year:desc"], "filter": "genre = drama"}]


class TrioThread:
    """A trio run in a thread whose MockClock moves only inside `call`."""

    def __init__(self) -> None:
        self.clock = trio.testing.MockClock(autojump_threshold=math.inf)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _main(self) -> None:
        trio.run(self._serve, clock=self.clock)

    async def _serve(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self.stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self.nursery = nursery
            self._ready.set()
            await self.stop.wait()
            nursery.cancel_scope.cancel()

    def call(self, fn, *args):
        return trio.from_thread.run(self._step, fn, args, trio_token=self.token)

    async def _step(self, fn, args):
        self.clock.autojump_threshold = 0
        try:
            return await fn(*args)
        finally:
            self.clock.autojump_threshold = math.inf
            # Nothing may still be runnable when the next step arrives from the other thread.
            await trio.testing.wait_all_tasks_blocked()

    def close(self) -> None:
        trio.from_thread.run_sync(self.stop.set, trio_token=self.token)
        self._thread.join(timeout=30)


class SimulatedCluster(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.runner = TrioThread()
        self.simulation: Simulation | None = None
        self.closed = trio.Event()  # only touched from the trio thread
        self.trace: list[str] = []

    @initialize(shape=st.sampled_from(SHAPES), seed=st.integers(0, 2**16))
    def start(self, shape: SimSpec, seed: int) -> None:
        self.spec = shape

        async def hold(task_status=trio.TASK_STATUS_IGNORED) -> None:
            async with open_sim_cluster(shape, seed=seed, trace=self.trace) as sim:
                simulation = Simulation(sim, max_latency_s=MAX_LATENCY_S)
                created = await sim.request("POST", "/indexes", {"uid": "sim", "primaryKey": "id"})
                simulation.tasks.add(created.body["taskUid"])
                task_status.started(simulation)
                await self.closed.wait()

        self.simulation = self.runner.call(self.runner.nursery.start, hold)

    def nodes(self) -> list[str]:
        return self.spec.node_ids()

    def node(self, index: int) -> str:
        return self.nodes()[index % len(self.nodes())]

    # ------------------------------------------------------------------ client operations

    @rule(doc_ids=st.lists(DOC_IDS, min_size=1, max_size=3, unique=True),
          words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
          genre=st.sampled_from(GENRES), replace=st.booleans())
    def write(self, doc_ids, words, genre, replace):
        documents = [make_document(d, words, genre, 2000 + d) for d in doc_ids]
        self.runner.call(self.simulation.write, "add" if replace else "update", documents)

    @rule(doc_ids=st.lists(DOC_IDS, min_size=1, max_size=2, unique=True))
    def delete(self, doc_ids):
        self.runner.call(self.simulation.delete, doc_ids)

    @rule(doc_id=DOC_IDS)
    def get(self, doc_id):
        self.runner.call(self.simulation.get, doc_id)

    @rule(words=st.lists(st.sampled_from(WORDS), max_size=2),
          genre=st.none() | st.sampled_from(GENRES))
    def search(self, words, genre):
        query = {"q": " ".join(words)}
        if genre is not None:
            query["filter"] = f"genre = {genre}"
        self.runner.call(self.simulation.search, query)

    @rule(patch=st.sampled_from(SETTINGS_CHOICES))
    def change_settings(self, patch):
        self.runner.call(self.simulation.change_settings, patch)

    # --------------------------------------------------------------------------- faults

    def _some_node_stays_up(self, node: str) -> bool:
        return len(self.simulation.down | {node}) < len(self.nodes())

    @rule(index=NODES)
    def crash(self, index):
        node = self.node(index)
        if self._some_node_stays_up(node):
            self.runner.call(_sync, self.simulation.crash, node)

    @rule(index=NODES, wipe=st.booleans())
    def restart(self, index, wipe):
        """`wipe`: the node restarts with its state lost; the repair worker must bring it back."""
        self.runner.call(_restart, self.simulation, self.node(index), wipe)

    @rule(index=NODES)
    def partition(self, index):
        node = self.node(index)
        if self._some_node_stays_up(node):
            self.runner.call(_sync, self.simulation.partition, node)

    @rule(index=NODES)
    def heal(self, index):
        self.runner.call(_sync, self.simulation.heal, self.node(index))

    @rule(index=NODES, kind=st.sampled_from(["slow", "flaky", "normal"]))
    def misbehave(self, index, kind):
        faults = {"slow": SLOW, "flaky": FLAKY}.get(kind, FaultModel())
        self.runner.call(_sync, self.simulation.set_faults, kind, self.node(index), faults)

    @rule(index=NODES, choice=st.integers(0, 1000))
    def tamper_document(self, index, choice):
        """A document changed or deleted on one node behind Miroir's back (I11 at checkpoints:
        the reconciler makes the replicas agree again)."""
        pick = lambda options: options[choice % len(options)]  # noqa: E731
        self.runner.call(_sync, self.simulation.tamper_document, self.node(index), pick)

    @rule(index=NODES, patch=st.sampled_from(SETTINGS_CHOICES))
    def tamper_settings(self, index, patch):
        self.runner.call(_sync, self.simulation.tamper_settings, self.node(index), patch)

    @rule(seconds=st.floats(0.001, 2.0))
    def advance(self, seconds):
        self.runner.call(self.simulation.advance, seconds)

    @precondition(lambda self: self.simulation is not None)
    @rule()
    def checkpoint(self):
        self.runner.call(self.simulation.checkpoint, CHECKPOINT_QUERIES)

    # ------------------------------------------------------------------------ invariants

    @invariant()
    def no_invariant_was_violated(self):
        if self.simulation is None:
            return
        violations = self.simulation.report.violations
        assert not violations, "\n".join([*violations, "last trace lines:", *self.trace[-30:]])

    def teardown(self):
        try:
            if self.simulation is not None:
                self.runner.call(self.simulation.checkpoint, CHECKPOINT_QUERIES)
                self.no_invariant_was_violated()
        finally:
            if self.simulation is not None:
                self.runner.call(_set, self.closed)
            self.runner.close()


async def _sync(fn, *args):
    return fn(*args)


async def _restart(simulation, node: str, wipe: bool) -> None:
    simulation.restart(node, wipe=wipe)


async def _set(event: trio.Event) -> None:
    event.set()


# Each example starts an app and runs up to 30 steps (0.05-0.4 s): a modest count by default
# (about 5 s), more when exploring (HYPOTHESIS_PROFILE=explore) or when asked
# (MIROIR_SIM_EXAMPLES). At 60 the derandomized run currently finds a search that outlives its
# bound (I5: the settings fetch asks nodes one after another; see docs/simulation.md, Findings)
# and spends minutes shrinking it.
_EXAMPLES = int(os.environ.get("MIROIR_SIM_EXAMPLES", "0")) or (
    200 if os.environ.get("HYPOTHESIS_PROFILE") == "explore" else 25)
SimulatedCluster.TestCase.settings = settings(
    max_examples=_EXAMPLES,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSimulatedCluster = pytest.mark.filterwarnings("ignore")(SimulatedCluster.TestCase)


def test_regression_delete_when_every_owner_failed_is_reported():
    """The shortest program hypothesis found (kept verbatim as a regression)."""
    state = SimulatedCluster()
    try:
        state.start(shape=SHAPES[0], seed=0)
        state.advance(seconds=1.0)
        state.crash(index=2)
        state.advance(seconds=1.0)
        state.misbehave(index=0, kind="slow")
        state.change_settings(patch={"filterableAttributes": ["genre"]})
        state.delete(doc_ids=[2])
        state.no_invariant_was_violated()
    finally:
        state.simulation.report.violations.clear()  # teardown's own check is not the point
        state.teardown()


def test_regression_a_node_wiped_before_it_was_ever_marked_failed_is_repaired():
    """The shortest program hypothesis found once wipe joined the machine (80 examples): n2 is
    wiped and back before three probes failed, so it never leaves service; the checkpoint's read
    by id reached it and got 404 index_not_found (I8). The repair worker's sweep now finds it two
    ways, each enough here: its newest task uid went down from the baseline the first sweep took
    at start, and it has no index of Miroir's while a peer has."""
    state = SimulatedCluster()
    try:
        state.start(seed=0, shape=SHAPES[1])
        state.delete(doc_ids=[0])
        for seconds in (0.03125, 0.015625, 0.015625, 0.015625):
            state.advance(seconds=seconds)
        state.crash(index=2)
        state.advance(seconds=0.0625)
        state.advance(seconds=0.03125)
        state.get(doc_id=0)
        state.restart(index=2, wipe=True)
        state.checkpoint()
        state.no_invariant_was_violated()
    finally:
        state.simulation.report.violations.clear()  # teardown's own check is not the point
        state.teardown()


def test_regression_search_outlives_its_bound_while_nodes_are_unreachable():
    """The shortest program hypothesis found for the I5 finding (docs/simulation.md)."""
    state = SimulatedCluster()
    try:
        state.start(shape=SHAPES[0], seed=0)
        for _ in range(5):
            state.advance(seconds=1.0)
        state.partition(index=1)
        state.partition(index=0)
        state.search(words=[], genre=None)
        state.no_invariant_was_violated()
    finally:
        state.simulation.report.violations.clear()  # teardown's own check is not the point
        state.teardown()


def test_regression_every_node_returning_from_failed_at_once_is_caught_up():
    """The shortest program hypothesis found (explore profile, 200 examples): slow and flaky
    nodes all went failed and came back, so all three were joining at once with nobody serving.
    A node whose intact check got no answer was judged empty for good, and with every node
    judged empty none could be a source: all stayed joining after the heal (I10) and searches
    answered 503. A node that does not answer now stays unjudged and is asked again."""
    state = SimulatedCluster()
    try:
        state.start(shape=SHAPES[0], seed=0)
        state.advance(seconds=1.0)
        state.advance(seconds=1.0)
        state.misbehave(index=0, kind="slow")
        for seconds in (1.0, 1.0, 1.0, 0.001):
            state.advance(seconds=seconds)
        state.misbehave(index=1, kind="slow")
        state.misbehave(index=0, kind="flaky")
        state.advance(seconds=1.0)
        state.advance(seconds=2.0)
        state.misbehave(index=0, kind="slow")
        for seconds in (1.0, 1.0, 1.0):
            state.advance(seconds=seconds)
        state.misbehave(index=2, kind="flaky")
        for seconds in (1.0, 1.0, 1.5):
            state.advance(seconds=seconds)
        state.misbehave(index=1, kind="flaky")
        state.advance(seconds=1.0)
        state.checkpoint()
        state.no_invariant_was_violated()
    finally:
        state.simulation.report.violations.clear()  # teardown's own check is not the point
        state.teardown()
