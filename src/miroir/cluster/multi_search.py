"""POST /multi-search over the read path's scatter: plain (each query merged on its own) and
federated (one merged list).

Theory of operation. A plain multi-search plans every query (`plan_node_query`) and sends all
of them to each node of a covering set in one /multi-search request; each query's answers are
merged on their own, in input order. A federated one lets every node federate over its shards
(`plan_federated_query`) and merges the nodes' lists (`merge_federated`). Both read with the
map of their indexes (`settings_sync.read_map`).

Indexes of different shard counts (a node-side index with its own S: `Cluster.shard_map_for`)
cannot share one scatter: a shard number means something only for one S. The queries are
grouped by their index's S (`miroir.core.query_groups`), each group goes to its own covering
set at the same time as the others, and the answers are put back in the client's terms
(positions in hits and errors) before the same merges. With one S -- the common case -- there
is one group and the client's body goes out as before.

Must never: render HTTP, merge anything itself (the core does), or outlive the deadline of the
scatters it runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson
import trio

from miroir.cluster.indexes import index_settings
from miroir.cluster.runtime import Cluster, NodeRejected
from miroir.cluster.search import (
    PARTIAL,
    BodyFor,
    Gathered,
    Phases,
    ReadResult,
    check_coverage,
    gather_shards,
    params_body,
    rejection_error,
    search_index,
)
from miroir.cluster.settings_sync import read_map
from miroir.core.errors import MeiliError
from miroir.core.merge import merge_search_outcome
from miroir.core.merge_federated import (
    merge_federated,
    plan_federated_query,
    restrict_federated_to_shards,
)
from miroir.core.merge_hybrid import split_hybrid
from miroir.core.query_groups import (
    federated_part,
    group_positions,
    message_position,
    renumber_hits,
    renumber_message,
)
from miroir.core.search_plan import NodePlan, plan_node_query, restrict_to_shards
from miroir.core.topology import ShardMap
from miroir.transport.base import NodeResponse


def _inside(position: int, error: MeiliError) -> MeiliError:
    return MeiliError(error.code, f"Inside `.queries[{position}]`: {error.message}")


async def _settings_by_index(cluster: Cluster, uids: Sequence[str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for position, uid in enumerate(uids):
        if uid in found:
            continue
        try:
            found[uid] = await index_settings(cluster, uid)
        except NodeRejected as rejected:
            raise _inside(position, rejection_error(rejected)) from None
    return found


async def multi_search(cluster: Cluster, body: Any, *, policy: str = PARTIAL) -> ReadResult:
    """POST /multi-search, its body checked by `miroir.meili.params.check_multi_search`.
    Federated bodies are merged into one list (`federated_search`); otherwise every query is
    planned, all of them go to each node in one /multi-search request (one per shard count
    among the queries' indexes: `miroir.core.query_groups`), and each query's answers are
    merged on their own, in input order."""
    queries = body["queries"]
    if body.get("federation") is not None:
        return await federated_search(cluster, body, policy=policy)
    uids = [query["indexUid"] for query in queries]
    groups, maps = await _read_maps(cluster, uids)
    settings = await _settings_by_index(cluster, uids)
    plans: list[NodePlan] = []
    for position, query in enumerate(queries):
        params = {k: v for k, v in query.items() if k != "indexUid"}
        try:
            plans.append(plan_node_query(params, settings[query["indexUid"]]))
        except MeiliError as error:
            raise _inside(position, error) from None

    def body_for_group(positions: Sequence[int], _first: bool) -> BodyFor:
        def node_body(shards: Sequence[int] | None) -> bytes:
            node_queries = [
                {"indexUid": uids[p], **(plans[p].node_params if shards is None
                                         else restrict_to_shards(plans[p].node_params, shards))}
                for p in positions
            ]
            return orjson.dumps({"queries": node_queries})
        return node_body

    perf = any(query.get("showPerformanceDetails") is True for query in queries)
    started = trio.current_time() if perf else 0.0
    gathered_groups = await _gather_groups(cluster, groups, maps, body_for_group, policy)
    scattered = trio.current_time() if perf else 0.0
    # Per query position: its group's answers and the node results of each answer.
    placed: dict[int, tuple[Gathered, list[Any], int]] = {}
    missing: set[int] = set()
    for positions, gathered in zip(groups, gathered_groups, strict=True):
        per_node = [node_body["results"] for node_body in gathered.bodies()]
        missing.update(gathered.missing)
        for local, position in enumerate(positions):
            placed[position] = (gathered, per_node, local)
    results: list[dict[str, Any]] = []
    for position, (uid, plan) in enumerate(zip(uids, plans, strict=True)):
        query = queries[position]
        gathered, per_node, local = placed[position]
        if isinstance(query.get("hybrid"), Mapping) and split_hybrid(
            query, plan, "id", None
        ) is not None:
            # A true hybrid query is mixed from two merged lists: asked on its own.
            params = {k: v for k, v in query.items() if k != "indexUid"}
            try:
                alone = await search_index(cluster, uid, params, policy=policy)
            except NodeRejected as rejected:
                raise _inside(position, rejection_error(rejected)) from None
            missing.update(alone.missing)
            results.append({"indexUid": uid, **alone.response})
            continue
        merging = trio.current_time() if perf else 0.0
        outcome = merge_search_outcome(plan, [node_results[local] for node_results in per_node])
        if perf and query.get("showPerformanceDetails") is True:
            outcome.response["performanceDetails"] = _query_phases(
                scattered - started, trio.current_time() - merging, gathered, per_node, local)
        if outcome.refetch is not None:
            # Rare (cross-shard distinct left the window short): finish this query on its own.
            again = await _finish_refetch(cluster, uid, outcome.refetch, policy)
            response, more_missing = again.response, again.missing
            missing.update(more_missing)
        else:
            response = outcome.response
        results.append({"indexUid": uid, **response})
    return ReadResult({"results": results}, tuple(sorted(missing)))


def _query_phases(scatter_s: float, merge_s: float, gathered: Gathered,
                  per_node: Sequence[Any], local: int) -> dict[str, str]:
    """One plain query's `performanceDetails`: Miroir's phases and each node's own."""
    phases = Phases()
    phases.add("scatter", scatter_s)
    phases.add("merge", merge_s)
    for answer, node_results in zip(gathered.answers, per_node, strict=True):
        details = node_results[local].get("performanceDetails")
        if isinstance(details, Mapping):
            for name, value in details.items():
                phases.nodes[f"node {answer.node_id} > {name}"] = value
    return phases.render()


async def _read_maps(
    cluster: Cluster, uids: Sequence[str]
) -> tuple[list[list[int]], list[ShardMap]]:
    """The queries' positions grouped by their index's shard count, and each group's read map
    (`read_map`: before the settings are looked up, since it may file them). One group, with
    every position, unless the indexes differ in S."""
    groups = group_positions([cluster.shard_map_for(uid).shards for uid in uids])
    maps = [await read_map(cluster, [uids[p] for p in positions]) for positions in groups]
    return groups, maps


async def _gather_groups(
    cluster: Cluster,
    groups: Sequence[Sequence[int]],
    maps: Sequence[ShardMap],
    body_for_group: Callable[[Sequence[int], bool], BodyFor],
    policy: str,
) -> list[Gathered]:
    """One /multi-search scatter per group of query positions, each over its own map, the
    groups at once. A node's refusal names the query by its position in the client's body;
    of several, the one about the first position is raised, as one node would."""
    if len(groups) == 1:
        gathered = await gather_shards(cluster, "POST", "/multi-search",
                                       body_for_group(groups[0], True), shard_map=maps[0])
        check_coverage(gathered, policy)
        return [gathered]
    found: list[Gathered | None] = [None] * len(groups)
    refusals: list[tuple[float, int, Exception]] = []

    async def one(index: int) -> None:
        try:
            gathered = await gather_shards(cluster, "POST", "/multi-search",
                                           body_for_group(groups[index], index == 0),
                                           shard_map=maps[index])
            check_coverage(gathered, policy)
            found[index] = gathered
        except NodeRejected as rejected:
            renumbered, position = _renumbered(rejected, groups[index])
            refusals.append((float("inf") if position is None else position, index, renumbered))
        except MeiliError as error:
            refusals.append((float("inf"), len(groups) + index, error))

    async with trio.open_nursery() as nursery:
        for index in range(len(groups)):
            nursery.start_soon(one, index)
    if refusals:
        raise min(refusals, key=lambda refusal: refusal[:2])[2]
    return [gathered for gathered in found if gathered is not None]


def _renumbered(rejected: NodeRejected, positions: Sequence[int]) -> tuple[NodeRejected, int | None]:
    """A group's refusal with `.queries[i]` naming the client's position, and that position."""
    response = rejected.response
    try:
        body = orjson.loads(response.body)
        message = body["message"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return rejected, None
    if not isinstance(message, str):
        return rejected, None
    body["message"] = renumber_message(message, positions)
    return (NodeRejected(NodeResponse(response.node_id, response.status, response.headers,
                                      orjson.dumps(body))),
            message_position(body["message"]))


async def _finish_refetch(cluster: Cluster, uid: str, plan: NodePlan, policy: str) -> ReadResult:
    path = f"/indexes/{uid}/search"
    shard_map = await read_map(cluster, (uid,))
    current: NodePlan | None = plan
    while True:
        assert current is not None
        gathered = await gather_shards(cluster, "POST", path, params_body(current.node_params),
                                       shard_map=shard_map)
        check_coverage(gathered, policy)
        outcome = merge_search_outcome(current, gathered.bodies())
        if outcome.refetch is None:
            return ReadResult(outcome.response, gathered.missing)
        current = outcome.refetch


async def federated_search(cluster: Cluster, body: Any, *, policy: str = PARTIAL) -> ReadResult:
    """Federated POST /multi-search: each node federates over its shards, the core merges
    (with indexes of several shard counts, one federation per count, merged together)."""
    queries = body["queries"]
    plan = plan_federated_query(body)
    uids = [query["indexUid"] for query in queries]
    groups, maps = await _read_maps(cluster, uids)
    settings = await _settings_by_index(cluster, uids)
    faceting = {uid: value.get("faceting") or {} for uid, value in settings.items()}

    def body_for_group(positions: Sequence[int], first: bool) -> BodyFor:
        node_body = plan.node_body if len(groups) == 1 else federated_part(
            plan.node_body, positions, first=first)
        full = orjson.dumps(node_body)

        def for_shards(shards: Sequence[int] | None) -> bytes:
            if shards is None:
                return full
            return orjson.dumps(restrict_federated_to_shards(node_body, shards))
        return for_shards

    perf = (body.get("federation") or {}).get("showPerformanceDetails") is True
    started = trio.current_time() if perf else 0.0
    gathered_groups = await _gather_groups(cluster, groups, maps, body_for_group, policy)
    scattered = trio.current_time() if perf else 0.0
    if len(groups) == 1:
        bodies = gathered_groups[0].bodies()
    else:
        bodies = [renumber_hits(node_body, positions)
                  for positions, gathered in zip(groups, gathered_groups, strict=True)
                  for node_body in gathered.bodies()]
    response = merge_federated(plan, bodies, faceting)
    if perf:
        phases = Phases()
        phases.add("scatter", scattered - started)
        phases.add("merge", trio.current_time() - scattered)
        for gathered in gathered_groups:
            phases.add_nodes(gathered.answers)
        response.pop("performanceDetails", None)
        response["performanceDetails"] = phases.render()
    missing = {shard for gathered in gathered_groups for shard in gathered.missing}
    return ReadResult(response, tuple(sorted(missing)))
