"""`miroir ctl status | stats | nodes | groups | rebalance`: the fleet and its membership.

Each command is `run_<name>(client, out, args) -> exit code` over the admin API only:
`/_miroir/topology`, `/_miroir/nodes`, `/_miroir/shards`, `/_miroir/stats`, `/_miroir/groups`,
`/_miroir/rebalance`, `/_miroir/reshards` (`status` shows a running reshard; a Miroir without
resharding answers 501 there, shown as "unavailable"). A membership change is the same request whether it comes from `nodes
add` or `rebalance start --add-node`; `rebalance plan` is that request with `?dryRun=true`,
each move's documents counted from `/_miroir/stats` (the shard's documents over every index).
`rebalance status --watch` polls until the rebalance ends and draws a live bar (shards copied
of shards to copy; documents copied, rate and ETA beside it); the human views name the
processes the engine waits for (`waitingFor`) and the replicas a forced removal lost (`lost`).

Must never: change the fleet without being asked to (`plan`, `--dry-run`, `status` and `stats`
only read), or retry a membership change on its own.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

from miroir.cli.ctl.connection import AdminClient, ApiError, UsageError
from miroir.cli.ctl.render import Output, number, seconds, size

OK, CHECK_FAILED = 0, 1
FINISHED = ("done", "failed", "idle")
RESHARD_ENDED = ("done", "failed", "rolledBack")


# ---- status --------------------------------------------------------------------------------


def degraded_pairs(shards: dict[str, Any]) -> list[dict[str, Any]]:
    """(group, shard) pairs with fewer readable owners than owners."""
    return [{"group": g["group"], "shard": s["shard"], "owners": g["owners"],
             "readable": g["readable"]}
            for s in shards["shards"] for g in s["groups"] if len(g["readable"]) < len(g["owners"])]


def run_status(client: AdminClient, out: Output, _args: argparse.Namespace) -> int:
    topology = client.get("/_miroir/topology")
    listed = client.get("/_miroir/nodes")
    shards = client.get("/_miroir/shards")
    rebalance = client.get("/_miroir/rebalance")
    reshards = list_reshards(client)
    membership = {n["id"]: n.get("membership") for n in listed["nodes"]}
    status = {
        "version": topology.get("version"),
        "storeBackend": topology.get("storeBackend"),
        "epoch": listed.get("epoch"),
        "shards": topology["shards"],
        "replicationFactor": topology["replicationFactor"],
        "replicaGroups": topology["replicaGroups"],
        "fullyCovered": topology["fullyCovered"],
        "rebalanceEnabled": topology.get("rebalanceEnabled"),
        "nodes": [{**n, "membership": membership.get(n["id"])} for n in topology["nodes"]],
        "degraded": degraded_pairs(shards),
        "rebalance": rebalance,
        "reshardAvailable": reshards is not None,
        "reshards": [r for r in reshards or () if r.get("state") not in RESHARD_ENDED],
    }
    out.emit(status, draw_status)
    return OK if status["fullyCovered"] else CHECK_FAILED


def draw_status(console: Console, status: dict[str, Any]) -> None:
    covered = "[green]yes[/]" if status["fullyCovered"] else "[red]NO[/]"
    console.print(
        f"Miroir {status['version']}  store {status['storeBackend']}  epoch {status['epoch']}  "
        f"shards {status['shards']}  RF {status['replicationFactor']}  "
        f"groups {status['replicaGroups']}  fully covered {covered}")
    table = Table(title="Nodes")
    for column in ("group", "node", "address", "membership", "state", "shards", "last seen"):
        table.add_column(column)
    for node in sorted(status["nodes"], key=lambda n: (n["replicaGroup"], n["id"])):
        state = node["state"]
        style = "green" if state in ("active", "healthy") else "yellow" if state in (
            "joining", "draining", "degraded") else "red"
        seen = node.get("lastSeenMs")
        table.add_row(str(node["replicaGroup"]), node["id"], node["address"],
                      node.get("membership") or "-", f"[{style}]{state}[/]",
                      str(node["shardCount"]),
                      "-" if seen is None else time.strftime("%H:%M:%S", time.localtime(seen / 1000)))
    console.print(table)
    degraded = status["degraded"]
    if degraded:
        console.print(f"[yellow]{len(degraded)} degraded (group, shard) pairs:[/] " + ", ".join(
            f"({d['group']}, {d['shard']})" for d in degraded[:20])
            + (" ..." if len(degraded) > 20 else ""))
    else:
        console.print("Degraded pairs: none")
    rebalance = status["rebalance"]
    if rebalance.get("state") in ("idle", None):
        console.print("Rebalance: none" + ("" if status.get("rebalanceEnabled") else
                                           " (engine off: rebalance.enabled is false)"))
    else:
        console.print(f"Rebalance {rebalance.get('id')}: {rebalance_line(rebalance)}")
        for line in rebalance_details(rebalance):
            console.print(f"  {line}", markup=False)
    if not status.get("reshardAvailable", True):
        console.print("Reshard: unavailable (this Miroir cannot reshard)")
    elif not status.get("reshards"):
        console.print("Reshard: none running")
    for reshard in status.get("reshards") or ():
        console.print(f"Reshard {reshard.get('id')}: {reshard_line(reshard)}", markup=False)


def list_reshards(client: AdminClient) -> list[dict[str, Any]] | None:
    """Every reshard, newest first (`GET /_miroir/reshards`), or None when this Miroir has no
    resharding (it answers 501 `miroir_reshard_unavailable`, or 404 before that route existed)."""
    try:
        listed = client.get("/_miroir/reshards")
    except ApiError as error:
        if error.status in (404, 501):
            return None
        raise
    return listed["results"] if isinstance(listed, dict) else list(listed)


def reshard_line(status: dict[str, Any]) -> str:
    rate = status.get("documentsPerSecond")
    return (f"{status['index']} {status['fromShards']} -> {status['toShards']} shards, "
            f"{status['state']}, documents {number(status.get('documentsCopied'))}/"
            f"{number(status.get('documentsTotal'))}, "
            f"{number(round(rate)) if rate else '-'} docs/s, "
            f"ETA {seconds(status.get('etaSeconds'))}")


def rebalance_details(status: dict[str, Any]) -> list[str]:
    """What a person needs beyond the progress line: the processes the engine waits for
    (each `process@epoch`, still routing by an older epoch) and the replicas a forced removal
    lost (their documents are gone where no other replica had them)."""
    lines = []
    if status.get("waitingFor"):
        lines.append("waiting for processes still on an older epoch: "
                     + ", ".join(status["waitingFor"]))
    for lost in status.get("lost") or ():
        lines.append(f"lost: {lost}")
    return lines


def rebalance_line(status: dict[str, Any]) -> str:
    return (f"{status.get('state')} ({status.get('kind') or '-'}), shards "
            f"{status.get('shardsDone', 0)}/{status.get('shardsTotal', 0)}, documents "
            f"{number(status.get('documentsCopied'))}, "
            f"{number(round(status['documentsPerSecond'])) if status.get('documentsPerSecond') else '-'}"
            f" docs/s, ETA {seconds(status.get('etaSeconds'))}")


# ---- stats ---------------------------------------------------------------------------------


def run_stats(client: AdminClient, out: Output, args: argparse.Namespace) -> int:
    stats = client.get("/_miroir/stats", params={"indexes": args.index} if args.index else None)

    def draw(console: Console, data: dict[str, Any]) -> None:
        draw_stats(console, data, shards=args.shards)

    out.emit(stats, draw)
    return OK


def draw_stats(console: Console, stats: dict[str, Any], *, shards: bool) -> None:
    table = Table(title="Nodes")
    for column in ("node", "group", "state", "shards", "documents", "database", "used"):
        table.add_column(column, justify="right" if column not in ("node", "state") else "left")
    for node in stats["nodes"]:
        table.add_row(node["id"], str(node["replicaGroup"]), node["state"],
                      str(node["shardCount"]), number(node["numberOfDocuments"]),
                      size(node["databaseSize"]), size(node["usedDatabaseSize"]))
    console.print(table)
    for uid, index in sorted(stats["indexes"].items()):
        table = Table(title=f"Index {uid}: {number(index['numberOfDocuments'])} documents")
        for column in ("node", "group", "shards", "documents", "raw size", "avg doc"):
            table.add_column(column, justify="left" if column == "node" else "right")
        for node, seen in sorted(index["nodes"].items()):
            table.add_row(node, str(seen["replicaGroup"]), str(seen["shards"]),
                          number(seen["numberOfDocuments"]), size(seen["rawDocumentDbSize"]),
                          size(seen["avgDocumentSize"]))
        console.print(table)
        console.print("  skew per group (fullest node / mean): " + ", ".join(
            f"group {g['group']}: {g['skew'] if g['skew'] is not None else '-'}"
            for g in index["groups"]))
        if shards:
            # an index's own shard count when the layouts give it one (older proxies: absent)
            count = index.get("shardCount")
            table = Table(title=f"Index {uid}: shards" + (f" (S={count})" if count else ""))
            for column in ("shard", "documents", "est. size", "replicas"):
                table.add_column(column, justify="left" if column == "replicas" else "right")
            for shard in index["shards"]:
                table.add_row(str(shard["shard"]), number(shard["documents"]),
                              size(shard["estimatedSize"]), ", ".join(
                                  f"{r['node']}={number(r['numberOfDocuments'])}"
                                  for r in shard["replicas"]))
            console.print(table)


# ---- nodes, groups: membership changes -----------------------------------------------------


def run_nodes_list(client: AdminClient, out: Output, _args: argparse.Namespace) -> int:
    listed = client.get("/_miroir/nodes")

    def draw(console: Console, data: dict[str, Any]) -> None:
        table = Table(title=f"Nodes (epoch {data['epoch']})")
        for column in ("node", "group", "address", "membership", "state", "shards"):
            table.add_column(column)
        for node in sorted(data["nodes"], key=lambda n: (n["replicaGroup"], n["id"])):
            table.add_row(node["id"], str(node["replicaGroup"]), node["address"],
                          node["membership"], node["state"], str(node["shardCount"]))
        console.print(table)

    out.emit(listed, draw)
    return OK


def change_request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None,
                                                     dict[str, str]]:
    """(method, path, body, params) of the membership change the arguments describe."""
    params = {"dryRun": "true"} if getattr(args, "dry_run", False) else {}
    if args.change == "add-node":
        return "POST", "/_miroir/nodes", {"id": args.node, "address": args.address,
                                          "group": args.group}, params
    if args.change == "drain":
        return "POST", f"/_miroir/nodes/{args.node}/drain", None, params
    if args.change == "remove":
        if args.force:
            params["force"] = "true"
        return "DELETE", f"/_miroir/nodes/{args.node}", None, params
    if args.change == "add-group":
        nodes = []
        for pair in args.members:
            node, sep, address = pair.partition("=")
            if not sep or not node or not address:
                raise UsageError(f"`{pair}`: a group member is ID=ADDRESS")
            nodes.append({"id": node, "address": address})
        return "POST", "/_miroir/groups", {"nodes": nodes}, params
    raise UsageError(f"unknown change {args.change}")  # argparse's choices prevent it


def run_change(client: AdminClient, out: Output, args: argparse.Namespace) -> int:
    method, path, body, params = change_request(args)
    answer = client.request(method, path, json=body, params=params)
    if answer.get("dryRun"):
        return show_plan(client, out, answer)

    def draw(console: Console, data: dict[str, Any]) -> None:
        if data.get("rebalanceId"):
            console.print(f"{data['kind']}: rebalance {data['rebalanceId']} started (epoch "
                          f"{data.get('epoch')}); follow it with `miroir ctl rebalance status "
                          "--watch`")
        else:
            console.print(f"{data['kind']}: done, epoch {data.get('epoch')}")

    out.emit(answer, draw)
    return OK


def show_plan(client: AdminClient, out: Output, answer: dict[str, Any]) -> int:
    """A dry run's plan, each move with the documents it copies (from /_miroir/stats)."""
    stats = client.get("/_miroir/stats")
    per_shard: dict[int, int] = {}
    for index in stats["indexes"].values():
        for shard in index["shards"]:
            per_shard[shard["shard"]] = per_shard.get(shard["shard"], 0) + (shard["documents"] or 0)
    plan = answer["plan"]
    for move in plan["moves"]:
        move["documents"] = per_shard.get(move["shard"], 0) * len(move["gains"])
    plan["documentsCopied"] = sum(move["documents"] for move in plan["moves"])

    def draw(console: Console, data: dict[str, Any]) -> None:
        found = data["plan"]
        console.print(f"Plan for {data['kind']} (epoch {data['epoch']}): "
                      f"{found['shardReplicasCopied']} shard replicas copied "
                      f"({found['fractionCopied']:.1%}), {found['shardReplicasDropped']} dropped, "
                      f"{number(found['documentsCopied'])} documents to copy")
        table = Table()
        for column in ("group", "shard", "keeps", "gains (copied to)", "loses", "documents"):
            table.add_column(column)
        for move in found["moves"]:
            table.add_row(str(move["group"]), str(move["shard"]), ", ".join(move["keeps"]) or "-",
                          ", ".join(move["gains"]) or "-", ", ".join(move["loses"]) or "-",
                          number(move["documents"]))
        console.print(table)

    out.emit(answer, draw)
    return OK


# ---- rebalance status ----------------------------------------------------------------------


def run_rebalance_status(client: AdminClient, out: Output, args: argparse.Namespace) -> int:
    status = client.get("/_miroir/rebalance")
    if args.watch and not out.as_json:
        status = watch(client, out, status, args.interval)
    elif args.watch:
        while status["state"] not in FINISHED:
            time.sleep(args.interval)
            status = client.get("/_miroir/rebalance")
    out.emit(status, lambda console, data: console.print(
        f"Rebalance {data.get('id') or '-'}: {rebalance_line(data)}"
        + "".join(f"\n  {line}" for line in rebalance_details(data))
        + "".join(f"\n  error: {e}" for e in data.get("errors") or []), markup=False))
    return CHECK_FAILED if status["state"] == "failed" else OK


def watch(client: AdminClient, out: Output, status: dict[str, Any],
          interval: float) -> dict[str, Any]:
    """A live bar until the rebalance ends; the last status."""
    progress = Progress(
        TextColumn("[bold]{task.fields[state]:>8}"), BarColumn(), TaskProgressColumn(),
        TextColumn("shards {task.completed:.0f}/{task.total:.0f}  {task.fields[docs]} docs  "
                   "{task.fields[rate]} docs/s  ETA {task.fields[eta]}  {task.fields[note]}"),
        console=out.out, transient=False)
    with progress:
        bar = progress.add_task("rebalance", total=1, state="", docs="0", rate="-", eta="-",
                                note="")
        while True:
            rate = status.get("documentsPerSecond")
            progress.update(bar, completed=status.get("shardsDone", 0),
                            total=max(1, status.get("shardsTotal") or 0),
                            state=status["state"], docs=number(status.get("documentsCopied", 0)),
                            rate=number(round(rate)) if rate else "-",
                            eta=seconds(status.get("etaSeconds")),
                            note=escape("; ".join(rebalance_details(status))))
            if status["state"] in FINISHED:
                return status
            time.sleep(interval)
            status = client.get("/_miroir/rebalance")


# ---- parsers -------------------------------------------------------------------------------


def add_change_arguments(parser: argparse.ArgumentParser, change: str) -> None:
    parser.set_defaults(change=change)
    if change == "add-node":
        parser.add_argument("node", help="the new node's id")
        parser.add_argument("address", help="its address, http(s)://host:port")
        parser.add_argument("--group", type=int, required=True, help="its replica group")
    elif change in ("drain", "remove"):
        parser.add_argument("node", help="the node's id")
        if change == "remove":
            parser.add_argument("--force", action="store_true",
                                help="remove a live node at once, without draining it "
                                     "(its shards are copied from their other replicas; at "
                                     "RF 1 in one group, its documents are lost)")
    else:
        parser.add_argument("members", nargs="+", metavar="ID=ADDRESS",
                            help="the new group's nodes")
