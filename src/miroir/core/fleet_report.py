"""What the operator reports make of what the nodes answered (`GET /_miroir/stats`, `GET
/_miroir/verify`, `miroir ctl`): pure functions over counts and digests, stated as laws in
tests/properties/test_fleet_report.py.

- `group_balance`: per replica group, its documents and its skew, the fullest node's count over
  the group's mean (1.0 is perfect balance; never below 1).
- `settings_differences`: which nodes' settings differ from the reference, and in which keys.
  The reference is the committed settings when there are some, else the digest most nodes hold
  (a tie goes to the digest of the node listed first: nodes come sorted by id). A node that did
  not answer is a difference: nothing says it holds the reference.
- `shard_verdict`: whether a shard's owners agree: equal counts, and one digest per sampled id
  on every owner (an id an owner lacks counts as a digest of its own: absent).

Must never: do I/O or read the time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

_ABSENT = object()  # a key one side lacks differs even from a null on the other


def group_balance(nodes: Mapping[str, Mapping[str, Any]], groups: int) -> list[dict[str, Any]]:
    """`nodes`: id -> {replicaGroup, numberOfDocuments (None: no answer)}."""
    balance = []
    for group in range(groups):
        counts = [n["numberOfDocuments"] for n in nodes.values() if n["replicaGroup"] == group]
        known = [c for c in counts if c is not None]
        mean = sum(known) / len(known) if known else 0
        balance.append({
            "group": group,
            "numberOfDocuments": sum(known) if len(known) == len(counts) else None,
            "maxNodeDocuments": max(known) if known else None,
            "skew": round(max(known) / mean, 3) if known and mean else None,
        })
    return balance


def settings_differences(nodes: Sequence[Mapping[str, Any]],
                         committed: Mapping[str, Any] | None) -> dict[str, Any]:
    """`nodes`: [{id, answered, digest, settings}] sorted by id; `committed`: {digest,
    settings} or None. -> {reference: committed|majority|none, differing: [{node, keys,
    answered}]}."""
    answered = [n for n in nodes if n["answered"]]
    if committed is not None:
        name, digest, reference = "committed", committed["digest"], committed["settings"]
    elif answered:
        name = "majority"
        digest = Counter(n["digest"] for n in answered).most_common(1)[0][0]
        reference = next(n["settings"] for n in answered if n["digest"] == digest)
    else:
        name, digest, reference = "none", None, {}
    differing = []
    for node in nodes:
        if not node["answered"]:
            differing.append({"node": node["id"], "keys": [], "answered": False})
        elif node["digest"] != digest:
            keys = sorted(k for k in set(reference) | set(node["settings"])
                          if reference.get(k, _ABSENT) != node["settings"].get(k, _ABSENT))
            differing.append({"node": node["id"], "keys": keys, "answered": True})
    return {"reference": name, "differing": differing}


def shard_verdict(counts: Mapping[str, int | None],
                  digests: Mapping[str, Mapping[str, Any]],
                  ids: Sequence[str]) -> tuple[bool, list[str]]:
    """(whether the counts that came back agree, the sampled ids whose digests differ between
    the owners in `digests`)."""
    known = {count for count in counts.values() if count is not None}
    differing = [i for i in ids if len({held.get(i) for held in digests.values()}) > 1]
    return len(known) <= 1, differing
