"""Membership changes in the simulator: add a node, drain one, remove one (a drained one, or an
active one by force), add a replica group, racing the client operations and faults of
`miroir.sim.simulation`, with the migration engine running in the simulated proxy.

Theory of operation. Each change is the operator's admin request through the app
(`POST /_miroir/nodes`, `.../drain`, `DELETE /_miroir/nodes/{id}[?force=true]`,
`POST /_miroir/groups`); the engine (`miroir.cluster.rebalance.Rebalancer`, driven by its own
service loop `run_engine`) carries it out while the state machine keeps writing, reading and
injecting faults. While shards move, `Simulation.in_flux` is set: quorum and reads then follow
two placements, so the per-owner checks (I3, I4, I6) wait, and every other invariant holds as
always. `settle` (before every checkpoint) heals the faults, waits for the rebalance to finish
and switches the simulation's expected fleet to the target membership; the checkpoint that
follows checks I7-I12 under the new owners: no acknowledged write lost, no deleted document back
(I8), search equal to the single-node reference (I9), every replica of a shard alike (I11).

Invariants of its own (recorded in the simulation's report like the others):
  R1  a started rebalance finishes `done` once faults heal, within a budget of virtual time;
  R2  shard replicas copied == the plan's minimum (`core.rebalance_plan.minimum_copies` of the
      two memberships' placements, recomputed here from the documented placement), summed over
      the shard counts in use: the topology's and the index's own (`SimSpec.index_shards`);
  R3  once done, every node holds only documents of the shards it owns (old copies deleted),
      by the index's shard count.

Must never: decide what the engine decides; expectations come from placement and the requests
this module sent.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import attrs
import trio

from miroir.cluster.rebalance import Rebalancer, RebalanceSettings
from miroir.core.rebalance_plan import minimum_copies
from miroir.core.routing import SHARD_FIELD
from miroir.core.topology import Placement
from miroir.sim.cluster import Answer
from miroir.sim.simulation import Simulation

# Quick enough for a few-second example: the copy runs at 200 documents per virtual second.
ENGINE = RebalanceSettings(settle_ms=400, grace_ms=400, max_docs_per_second=200, page_size=10,
                           poll_s=0.1, lease_ttl_ms=2000)
SETTLE_BUDGET_S = 60.0


@attrs.define
class Pending:
    """A change the engine is carrying out: the fleet to expect afterwards and its cost."""

    kind: str
    members: dict[str, int]
    groups: int
    minimum: int
    drained: str | None = None  # a drain's node: forgettable once the change settled


class Membership:
    """The membership operations of one `Simulation`; see the module docstring."""

    def __init__(self, simulation: Simulation) -> None:
        self.simulation = simulation
        self.sim = simulation.sim
        self.pending: Pending | None = None
        self.removed: set[str] = set()  # drained and cut over: `DELETE` forgets them
        self.gone: set[str] = set()  # force-removed: crashed for good, no fault rule picks them
        self._names = (f"n{i}" for i in itertools.count(simulation.spec.nodes))
        state = self.sim.app.extensions["miroir"]
        state.config = attrs.evolve(state.config, rebalance=attrs.evolve(
            state.config.rebalance, enabled=True))

    async def run_engine(self) -> None:
        """The engine's service loop, as `run_services` starts it in production."""
        await Rebalancer(self.sim.cluster, ENGINE).run()

    # ---- the operator's requests ----------------------------------------------------------

    async def add_node(self, group: int) -> Answer | None:
        if self.pending is not None:
            return None
        node = next(self._names)
        self.sim.transport.add_node(node)
        group = group % self.simulation.groups
        return await self._change("add_node", "POST", "/_miroir/nodes",
                                  {"id": node, "address": _address(node), "group": group},
                                  {**self.simulation.members, node: group})

    def fault_targets(self) -> list[str]:
        """The nodes a fault rule may pick: the fleet without the force-removed ones."""
        return [n for n in self.simulation.node_ids() if n not in self.gone]

    async def drain(self, node: str) -> Answer | None:
        if self.pending is not None:
            return None
        members = {n: g for n, g in self.simulation.members.items() if n != node}
        return await self._change("drain_node", "POST", f"/_miroir/nodes/{node}/drain", None,
                                  members, drained=node)

    async def force_remove(self, node: str) -> Answer | None:
        """Only from a clean state (no fault since the last checkpoint, which reconciled every
        replica): what a forced removal may lose is documented, not checked here."""
        if self.pending is not None or self.simulation.disturbed:
            return None
        members = {n: g for n, g in self.simulation.members.items() if n != node}
        answer = await self._change("force_remove", "DELETE", f"/_miroir/nodes/{node}?force=true",
                                    None, members)
        if answer is not None and answer.status == 200:
            self.sim.transport.crash(node)  # it is gone: nothing may depend on it any more
            self.gone.add(node)
        return answer

    async def forget(self) -> Answer | None:
        """`DELETE /_miroir/nodes/{id}` of a drained node: it leaves the topology."""
        if not self.removed:
            return None
        node = min(self.removed)
        answer = await self.sim.request("DELETE", f"/_miroir/nodes/{node}")
        self.simulation._common_checks("task", answer)
        if answer.status == 200:
            self.removed.discard(node)
        return answer

    async def add_group(self, size: int) -> Answer | None:
        if self.pending is not None:
            return None
        nodes = [next(self._names) for _ in range(size)]
        for node in nodes:
            self.sim.transport.add_node(node)
        group = self.simulation.groups
        return await self._change(
            "add_group", "POST", "/_miroir/groups",
            {"nodes": [{"id": n, "address": _address(n)} for n in nodes]},
            {**self.simulation.members, **dict.fromkeys(nodes, group)}, groups=group + 1)

    async def _change(self, kind: str, method: str, path: str, body: Any,
                      members: dict[str, int], *, groups: int | None = None,
                      drained: str | None = None) -> Answer:
        simulation = self.simulation
        simulation.report.operations[kind] += 1
        groups = simulation.groups if groups is None else groups
        answer = await self.sim.request(method, path, body)
        simulation._common_checks("task", answer)
        if answer.status != 200:
            # refused with Miroir's shape (I1 checked it): the last node of a group, ...
            simulation.report.outcomes[f"{kind} refused {answer.code}"] += 1
            return answer
        # Per shard count in use (the topology's, and the index's own when it has one): the
        # engine plans and counts each.
        minimum = sum(minimum_copies(_placement(simulation, simulation.members, groups, shards),
                                     _placement(simulation, members, groups, shards))
                      for shards in {simulation.spec.shards, simulation.shards})
        simulation._check("R2 shard replicas copied == the plan's minimum",
                          answer.body["shardReplicasToCopy"] == minimum,
                          lambda: f"{kind}: {answer.body['shardReplicasToCopy']} to copy, "
                                  f"minimum {minimum}")
        # A drained node becomes forgettable at `settle`, when the fleet the checks expect
        # leaves it too: forgotten before, the checks would still ask the cluster about it.
        self.pending = Pending(kind, members, groups, minimum, drained)
        simulation.in_flux = True
        return answer

    # ---- settling --------------------------------------------------------------------------

    async def settle(self) -> None:
        """Heal every fault, wait for the rebalance (R1), expect the target fleet from now on
        and check where documents live (R3). A checkpoint follows."""
        if self.pending is None:
            return
        simulation = self.simulation
        for node in sorted(simulation.crashed):
            self.sim.transport.restart(node)
        self.sim.transport.heal()
        for node in simulation.node_ids():
            self.sim.transport.set_faults(node, self.sim.transport.default_faults)
        simulation.crashed.clear()
        simulation.partitioned.clear()
        simulation.down.clear()
        waited, status = 0.0, {}
        while waited <= SETTLE_BUDGET_S:
            answer = await self.sim.request("GET", "/_miroir/rebalance")
            status = answer.body if answer.status == 200 else {}
            if status.get("state") in ("done", "failed"):
                break
            await trio.sleep(0.2)
            waited += 0.2
        pending = self.pending
        simulation._check("R1 a rebalance finishes done once faults heal",
                          status.get("state") == "done",
                          lambda: f"{pending.kind} is {status.get('state')} after "
                                  f"{waited:.1f}s: {status.get('errors')}")
        simulation._check("R2 shard replicas copied == the plan's minimum",
                          status.get("shardsTotal") == pending.minimum,
                          lambda: f"{pending.kind}: {status.get('shardsTotal')} copied, "
                                  f"minimum {pending.minimum}")
        simulation.set_members(pending.members, pending.groups)
        simulation.in_flux = False
        if pending.drained is not None and status.get("state") == "done":
            self.removed.add(pending.drained)
        self.pending = None
        if status.get("state") == "done":
            self.check_placement()

    def check_placement(self) -> None:
        """R3, on the nodes' engines (the simulated world's ground truth)."""
        simulation = self.simulation
        self.sim.transport.catch_up()
        for node in simulation.node_ids():
            index = self.sim.transport.engine(node).indexes.get(simulation.node_index)
            held = {d.get(SHARD_FIELD) for d in (index.documents.values() if index else ())}
            group = simulation.group_of(node)
            owned = {s for s in range(simulation.shards)
                     if node in simulation.owners[(group, s)]}
            simulation._check("R3 a node holds only the shards it owns", held <= owned,
                              lambda node=node, held=held, owned=owned:
                              f"{node} holds shards {sorted(held - owned)} it does not own")


def _placement(simulation: Simulation, members: Mapping[str, int], groups: int,
               shards: int) -> Placement:
    return Placement.from_members(
        shards, simulation.spec.rf,
        tuple(tuple(sorted(n for n, g in members.items() if g == group))
              for group in range(groups)))


def _address(node: str) -> str:
    return f"http://{node}.sim.invalid:7700"
