"""The simulator's model: what a client may read back, and what one node holding it all answers.

Owns two oracles the invariants compare Miroir against:

- `DocumentModel`: for every document id, the versions a read may return. Writes reach nodes
  asynchronously and faults make some writes ambiguous, so the model keeps a *set* per id,
  shrinking it only when the client saw proof that every owner took the newer version.
- `reference_search`: one devnode `Engine` holding the settled corpus with the model's settings,
  i.e. what a single Meilisearch would answer.

Pure over its inputs: it never talks to the simulated cluster, never reads a clock (callers pass
virtual times) and never decides what Miroir should do, only what a client may observe.

Theory of operation
-------------------
A version is a document's canonical JSON (sorted keys), or `ABSENT` for "no such document".
`possible[id]` maps each version a replica may still hold to its *settle time*: the virtual
instant after which a later write surely lands after it on every node (the request's start plus
half the longest latency the fault model can produce, since a request is delivered at half its
latency; a stall or drop never delivers).

- A *confirmed* write (202, no `X-Miroir-Degraded`, RF <= 2 so quorum is every owner of every
  group) started at `t`: every owner enqueued it, so after its task ran no replica holds any
  version whose settle time is before `t`. `possible` becomes that version plus the unsettled
  ones.
- Any other write (degraded 202, 503, a timeout, RF = 3 where quorum is 2 of 3): some replica may
  or may not hold it, possibly forever (Miroir has no anti-entropy yet), so the version is added
  and nothing is removed.

`history[id]` is every version ever sent: a read during faults must return one of those (nodes
never invent data); after a checkpoint (faults healed, every task finished) it must return one
of `possible[id]`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from miroir.devnode.engine import Engine
from miroir.devnode.router import Request, Router

ABSENT = b"<absent>"
REFERENCE_INDEX = "sim"


def version_of(document: Mapping[str, Any] | None) -> bytes:
    """A document's canonical bytes (what equality between versions means), or `ABSENT`."""
    if document is None:
        return ABSENT
    return orjson.dumps(dict(document), option=orjson.OPT_SORT_KEYS)


class DocumentModel:
    """Per id: every version ever written, and the versions a settled read may return."""

    def __init__(self, settle_s: float) -> None:
        self.settle_s = settle_s
        self.history: dict[str, set[bytes]] = {}
        self.possible: dict[str, dict[bytes, float]] = {}
        self.newest: dict[str, bytes] = {}

    def ids(self) -> list[str]:
        return sorted(self.possible, key=_id_order)

    def _ensure(self, doc_id: str) -> None:
        if doc_id not in self.possible:
            self.history[doc_id] = {ABSENT}
            self.possible[doc_id] = {ABSENT: -math.inf}
            self.newest[doc_id] = ABSENT

    def sent(self, doc_id: str, version: bytes) -> None:
        """A write of `version` is about to be sent: from now on a node may hold it."""
        self._ensure(doc_id)
        self.history[doc_id].add(version)

    def confirmed(self, doc_id: str, version: bytes, started: float) -> None:
        self._ensure(doc_id)
        possible = self.possible[doc_id]
        kept = {v: settle for v, settle in possible.items() if settle > started}
        kept[version] = started + self.settle_s
        self.possible[doc_id] = kept
        self.newest[doc_id] = version

    def uncertain(self, doc_id: str, version: bytes, started: float, acknowledged: bool) -> None:
        self._ensure(doc_id)
        possible = self.possible[doc_id]
        possible[version] = max(possible.get(version, -math.inf), started + self.settle_s)
        if acknowledged:
            self.newest[doc_id] = version

    def is_certain(self, doc_id: str) -> bool:
        return len(self.possible.get(doc_id, {ABSENT: 0.0})) == 1

    def uncertain_ids(self) -> list[str]:
        return [doc_id for doc_id in self.ids() if not self.is_certain(doc_id)]

    def settled_corpus(self) -> list[dict[str, Any]] | None:
        """The one corpus every replica agrees on, or None while some id is uncertain."""
        corpus = []
        for doc_id in self.ids():
            if not self.is_certain(doc_id):
                return None
            (version,) = self.possible[doc_id]
            if version != ABSENT:
                corpus.append(orjson.loads(version))
        return corpus


def _id_order(doc_id: str) -> tuple[int, str]:
    return (int(doc_id), doc_id) if doc_id.isdigit() else (1 << 62, doc_id)


# ------------------------------------------------------------------------ the reference node


def reference_engine(corpus: Iterable[Mapping[str, Any]], settings: Mapping[str, Any],
                     primary_key: str = "id") -> Router:
    """One devnode holding `corpus` with `settings`, every task applied."""
    engine = Engine(now=lambda: datetime(2026, 1, 1))
    router = Router(engine)
    engine.create_index(REFERENCE_INDEX, primary_key)
    if settings:
        engine.update_settings(REFERENCE_INDEX, dict(settings))
    _call(router, "POST", f"/indexes/{REFERENCE_INDEX}/documents", list(corpus))
    engine.process()
    return router


def reference_search(router: Router, query: Mapping[str, Any]) -> tuple[int, Any]:
    response = _call(router, "POST", f"/indexes/{REFERENCE_INDEX}/search", dict(query))
    return response.status, response.body


def _call(router: Router, method: str, path: str, body: Any) -> Any:
    return router.dispatch(Request(method, path, "", "application/json", orjson.dumps(body)))


def ranked_hits(answer: Mapping[str, Any],
                sort: Sequence[str] = ()) -> list[tuple[tuple, frozenset[str]]]:
    """Hits as runs of equal rank, each run a set of ids: the order the merge must reproduce,
    where hits of exactly equal rank may come in any order. A hit's rank is its values for the
    query's `sort` rules (`field:asc|desc`), then its `_rankingScore`."""
    fields = [rule.partition(":")[0] for rule in sort]
    runs: list[tuple[tuple, set[str]]] = []
    for hit in answer.get("hits", []):
        rank = (*(repr(hit.get(f)) for f in fields), round(hit.get("_rankingScore", 0.0), 12))
        doc_id = str(hit.get("id"))
        if runs and runs[-1][0] == rank:
            runs[-1][1].add(doc_id)
        else:
            runs.append((rank, {doc_id}))
    return [(rank, frozenset(ids)) for rank, ids in runs]


def search_difference(merged: Mapping[str, Any], reference: Mapping[str, Any],
                      sort: Sequence[str] = ()) -> str | None:
    """Why a merged search answer differs from the single-node one, or None if it does not.

    Callers ask for every hit (a limit above the corpus size), so no run of equal rank is cut
    by the window and every run must match exactly; facet counts must match too.
    """
    if merged.get("estimatedTotalHits") != reference.get("estimatedTotalHits"):
        return (f"estimatedTotalHits {merged.get('estimatedTotalHits')} != "
                f"{reference.get('estimatedTotalHits')}")
    if merged.get("facetDistribution") != reference.get("facetDistribution"):
        return (f"facetDistribution {merged.get('facetDistribution')} != "
                f"{reference.get('facetDistribution')}")
    got, want = ranked_hits(merged, sort), ranked_hits(reference, sort)
    if sum(len(ids) for _, ids in got) != sum(len(ids) for _, ids in want):
        return f"{sum(len(i) for _, i in got)} hits != {sum(len(i) for _, i in want)}"
    for index, ((rank, ids), (want_rank, want_ids)) in enumerate(zip(got, want, strict=False)):
        if rank != want_rank or ids != want_ids:
            return f"rank run {index}: {rank} {sorted(ids)} != {want_rank} {sorted(want_ids)}"
    return None
