"""`miroir ctl verify` and `miroir ctl settings diff`: checks that exit 1 when replicas differ.

`verify` reads `GET /_miroir/verify` (per shard: every replica's count, a sample of documents
compared by digest across replicas and groups; per index: every node's settings against the
committed ones) and prints a table of what differs; `settings diff` reads `GET
/_miroir/indexes/{uid}/settings/nodes` and prints, for each settings key that is not the same
on every node, each node's value. Both only look: the reconciler repairs (`POST
/_miroir/consistency`).

`reconcile` is the one that changes something: it asks for a reconciler pass now, which repairs
what it finds from the majority (docs/operations.md, "Replicas that agree").

Must never: repair from `verify` or `settings diff`, or exit 0 when a difference (or a node that did not answer) was reported.
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from miroir.cli.ctl.connection import AdminClient
from miroir.cli.ctl.render import Output, number

OK, CHECK_FAILED = 0, 1
VALUE_WIDTH = 60


def run_verify(client: AdminClient, out: Output, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"sample": 0 if args.full else args.sample}
    if args.indexes:
        params["indexes"] = ",".join(args.indexes)
    report = client.get("/_miroir/verify", params=params, timeout_s=args.timeout)
    out.emit(report, draw_verify)
    return OK if report["consistent"] else CHECK_FAILED


def draw_verify(console: Console, report: dict[str, Any]) -> None:
    sample = "every document" if report["sample"] == 0 else f"{report['sample']} ids per replica"
    rows = []
    for index in report["indexes"]:
        for node in index["settings"]["differing"]:
            what = ("did not answer" if not node["answered"] else
                    "settings differ from the " + index["settings"]["reference"] + ": "
                    + ", ".join(node["keys"]))
            rows.append((index["index"], "settings", node["node"], what))
        for shard in index["shards"]:
            if shard["consistent"]:
                continue
            counts = ", ".join(f"{r['node']}={number(r['numberOfDocuments'])}"
                               for r in shard["replicas"])
            problems = []
            if not shard["countsAgree"]:
                problems.append(f"counts differ ({counts})")
            if shard["documentsDiffering"]:
                problems.append(f"{shard['documentsDiffering']} of {shard['sampled']} sampled "
                                f"documents differ: ids {', '.join(shard['differingIds'])}")
            if shard["unanswered"]:
                problems.append("no answer from " + ", ".join(shard["unanswered"]))
            rows.append((index["index"], f"shard {shard['shard']}",
                         ", ".join(r["node"] for r in shard["replicas"]), "; ".join(problems)))
    checked = sum(len(index["shards"]) for index in report["indexes"])
    if not rows:
        console.print(f"[green]consistent[/]: {len(report['indexes'])} indexes, {checked} "
                      f"shards, settings on every node equal ({sample})")
        return
    busy = [index["index"] for index in report["indexes"] if index.get("tasksUnfinished")]
    table = Table(title=f"[red]{len(rows)} differences[/] ({sample})")
    for column in ("index", "where", "nodes", "difference"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if busy:
        console.print("Tasks are still running on " + ", ".join(busy) + ": a write in flight "
                      "shows as a difference until it lands; verify again when they finish.")


def run_settings_diff(client: AdminClient, out: Output, args: argparse.Namespace) -> int:
    view = client.get(f"/_miroir/indexes/{args.index}/settings/nodes")
    answered = [n for n in view["nodes"] if n["answered"]]
    keys = sorted({k for n in answered for k in n["settings"]})
    differing = [k for k in keys
                 if len({orjson.dumps(n["settings"].get(k), option=orjson.OPT_SORT_KEYS)
                         for n in answered}) > 1]
    committed = view.get("committed")
    behind = [n["id"] for n in answered if committed is not None
              and n["digest"] != committed["digest"]]
    silent = [n["id"] for n in view["nodes"] if not n["answered"]]
    result = {**view, "differingKeys": differing, "notCommitted": behind, "unanswered": silent}

    def draw(console: Console, data: dict[str, Any]) -> None:
        version = committed["version"] if committed else "none"
        if not differing and not behind and not silent:
            console.print(f"[green]same settings[/] on {len(answered)} nodes (committed "
                          f"version {version})")
            return
        table = Table(title=f"Index {data['index']}: settings that differ (committed version "
                      f"{version})")
        table.add_column("key")
        for node in answered:
            table.add_column(node["id"], overflow="fold")
        if committed is not None:
            table.add_column("committed", overflow="fold")
        for key in differing:
            cells = [value(n["settings"].get(key)) for n in answered]
            if committed is not None:
                cells.append(value(committed["settings"].get(key)))
            table.add_row(key, *cells)
        console.print(table)
        if behind:
            console.print("Not holding the committed settings: " + ", ".join(behind))
        if silent:
            console.print("[red]No answer from:[/] " + ", ".join(silent))

    out.emit(result, draw)
    return CHECK_FAILED if differing or behind or silent else OK


def value(setting: Any) -> str:
    text = orjson.dumps(setting).decode()
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def run_reconcile(client: AdminClient, out: Output, args: argparse.Namespace) -> int:
    """A reconciler pass now (`POST /_miroir/consistency`): it repairs from the majority."""
    report = client.post("/_miroir/consistency", timeout_s=args.timeout)

    def draw(console: Console, data: dict[str, Any]) -> None:
        table = Table(title=f"Reconciler pass {data.get('passes')}")
        for column in ("index", "settings repaired", "shards checked", "shards differing",
                       "documents differing", "documents repaired", "skipped"):
            table.add_column(column, overflow="fold")
        rows = [(_index_label(uid, index), index)
                for uid, index in sorted((data.get("indexes") or {}).items())]
        rows += [(f"{name} (node-side, no client uid)", index)
                 for name, index in sorted((data.get("orphans") or {}).items())]
        for label, index in rows:
            documents = index["documents"]
            table.add_row(label, ", ".join(index["settings"]["repaired"]) or "-",
                          str(documents["shardsChecked"]),
                          ", ".join(map(str, documents["shardsDiffering"])) or "-",
                          str(documents["documentsDiffering"]),
                          str(documents["documentsRepaired"]), index.get("skipped") or "")
        console.print(table)
        console.print("Check the result with `miroir ctl verify`.")

    out.emit(report, draw)
    return OK


def _index_label(uid: str, index: dict[str, Any]) -> str:
    """A client uid, with the node-side index holding it when that is another name."""
    node_index = index.get("nodeIndex", uid)
    return uid if node_index == uid else f"{uid} (node-side {node_index})"
