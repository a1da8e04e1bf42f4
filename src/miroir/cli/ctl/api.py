"""`miroir ctl tasks | aliases | reshard`.

`tasks list` and `tasks cancel` are Meilisearch's routes through Miroir (`GET /tasks`, `POST
/tasks/cancel`) and send the API key (the master key, or a key with `tasks.*`; the admin key
when none is configured); `tasks show` is the admin view `GET /_miroir/tasks/{uid}` (with each
node's part). Aliases are `/_miroir/aliases`; `reshard` is `POST /_miroir/indexes/{uid}/reshard`
then, with `--watch`, `GET /_miroir/reshards/{id}` until it finishes (`done`, `failed` or
`rolledBack`; the last two exit 1); `reshards list | show | rollback` read and roll back
reshards by id. A refusal (an alias that
does not exist, a reshard outside `resharding.allowed_windows` without `--force`) is printed
with Miroir's message, which names the next window, and exits 1.

Must never: start a reshard with `force` unless `--force` was given.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

from miroir.cli.ctl.connection import AdminClient, UsageError
from miroir.cli.ctl.render import Output, number, seconds

OK, CHECK_FAILED = 0, 1
RESHARD_FINISHED = ("done", "failed", "rolledBack")
RESHARD_UNSUCCESSFUL = ("failed", "rolledBack")


# ---- tasks ---------------------------------------------------------------------------------


def task_filters(args: argparse.Namespace) -> dict[str, str]:
    params = {}
    for flag, name in (("status", "statuses"), ("type", "types"), ("index", "indexUids"),
                       ("uid", "uids")):
        values = getattr(args, flag, None)
        if values:
            params[name] = ",".join(str(v) for v in values)
    return params


def run_tasks_list(client: AdminClient, out: Output, args: argparse.Namespace) -> int:
    params = {**task_filters(args), "limit": str(args.limit)}
    if args.start_from is not None:
        params["from"] = str(args.start_from)
    page = client.get("/tasks", params=params, api=True)

    def draw(console: Console, data: dict[str, Any]) -> None:
        table = Table(title=f"Tasks ({number(data.get('total'))} matching)")
        for column in ("uid", "index", "type", "status", "enqueued", "duration", "error"):
            table.add_column(column, overflow="fold")
        for task in data["results"]:
            error = task.get("error") or {}
            table.add_row(str(task["uid"]), task.get("indexUid") or "-", task["type"],
                          task["status"], task.get("enqueuedAt") or "-",
                          task.get("duration") or "-", error.get("code") or "")
        console.print(table)
        if data.get("next") is not None:
            console.print(f"more: --from {data['next']}")

    out.emit(page, draw)
    return OK


def run_tasks_show(client: AdminClient, out: Output, args: argparse.Namespace) -> int:
    task = client.get(f"/_miroir/tasks/{args.task}")

    def draw(console: Console, data: dict[str, Any]) -> None:
        table = Table(title=f"Task {data['uid']}", show_header=False)
        for key in ("indexUid", "type", "status", "enqueuedAt", "startedAt", "finishedAt",
                    "duration", "details", "error"):
            if data.get(key) is not None:
                shown = data[key]
                table.add_row(key, shown if isinstance(shown, str) else
                              orjson.dumps(shown).decode())
        console.print(table)
        miroir = data.get("miroir") or {}
        nodes = Table(title="Node tasks")
        for column in ("node", "node task", "status"):
            nodes.add_column(column)
        for node, part in sorted((miroir.get("nodeTasks") or {}).items()):
            part = part if isinstance(part, dict) else {"taskUid": part}
            nodes.add_row(node, str(part.get("taskUid", "-")), str(part.get("status", "-")))
        console.print(nodes)
        for key in ("missedQuorum", "degradedGroups"):
            if miroir.get(key):
                console.print(f"{key}: {miroir[key]}")

    out.emit(task, draw)
    return OK


def run_tasks_cancel(client: AdminClient, out: Output, args: argparse.Namespace) -> int:
    params = task_filters(args)
    if not params:
        raise UsageError("say which tasks to cancel: task uids, or --status/--type/--index")
    answer = client.post("/tasks/cancel", params=params, api=True)
    out.emit(answer, lambda console, data: console.print(
        f"cancelation enqueued as task {data.get('taskUid')} ({data.get('status')})"))
    return OK


# ---- aliases -------------------------------------------------------------------------------


def run_aliases(client: AdminClient, out: Output, args: argparse.Namespace) -> int:
    if args.action == "list":
        listed = client.get("/_miroir/aliases")

        def draw(console: Console, data: dict[str, Any]) -> None:
            table = Table(title=f"Aliases ({data.get('total', len(data['results']))})")
            for column in ("alias", "index", "shards"):
                table.add_column(column)
            for alias in data["results"]:
                # `index` is null for a uid that names no data (renamed away)
                table.add_row(alias["alias"], alias["index"] or "(none)",
                              str(alias.get("shards") or "-"))
            console.print(table)

        out.emit(listed, draw)
        return OK
    path = f"/_miroir/aliases/{args.alias}"
    if args.action == "show":
        found = client.get(path)
        out.emit(found, lambda console, data: console.print(
            f"{data['alias']} -> {data['index']} ({data.get('shards', '-')} shards)"))
    elif args.action == "set":
        found = client.request("PUT", path, json={"index": args.index})
        out.emit(found, lambda console, data: console.print(
            f"{data.get('alias', args.alias)} -> {data.get('index', args.index)}"))
    else:
        found = client.request("DELETE", path)
        out.emit(found, lambda console, _data: console.print(f"alias {args.alias} deleted"))
    return OK


# ---- reshard -------------------------------------------------------------------------------


def run_reshard(client: AdminClient, out: Output, args: argparse.Namespace) -> int:
    if args.shards < 1:
        raise UsageError("--shards must be at least 1")
    started = client.post(f"/_miroir/indexes/{args.index}/reshard",
                          json={"shards": args.shards, "force": args.force})
    if not args.watch:
        out.emit(started, lambda console, data: console.print(
            f"reshard {data['reshardId']} of {data['index']}: {data['fromShards']} -> "
            f"{data['toShards']} shards, {data['state']}; follow it with `miroir ctl reshard "
            f"{data['index']} --watch-id {data['reshardId']}`"))
        return OK
    return follow_reshard(client, out, started["reshardId"], args.interval)


def run_reshard_watch(client: AdminClient, out: Output, args: argparse.Namespace) -> int:
    return follow_reshard(client, out, args.watch_id, args.interval)


def reshard_finished(status: dict[str, Any]) -> bool:
    return status.get("finishedAtMs") is not None or status.get("state") in RESHARD_FINISHED


def follow_reshard(client: AdminClient, out: Output, reshard_id: str, interval: float) -> int:
    status = client.get(f"/_miroir/reshards/{reshard_id}")
    if out.as_json:
        while not reshard_finished(status):
            time.sleep(interval)
            status = client.get(f"/_miroir/reshards/{reshard_id}")
    else:
        progress = Progress(
            TextColumn("[bold]{task.fields[state]:>8}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.completed:,.0f}/{task.total:,.0f} docs  {task.fields[rate]} "
                       "docs/s  ETA {task.fields[eta]}"), console=out.out)
        with progress:
            bar = progress.add_task("reshard", total=1, state="", rate="-", eta="-")
            while True:
                rate = status.get("documentsPerSecond")
                total = max(1, status.get("documentsTotal") or 0)
                progress.update(bar, completed=min(total, status.get("documentsCopied") or 0),
                                total=total,
                                state=status.get("state", ""),
                                rate=number(round(rate)) if rate else "-",
                                eta=seconds(status.get("etaSeconds")))
                if reshard_finished(status):
                    break
                time.sleep(interval)
                status = client.get(f"/_miroir/reshards/{reshard_id}")
    out.emit(status, lambda console, data: console.print(
        f"reshard {data['id']} of {data['index']}: {data['fromShards']} -> {data['toShards']} "
        f"shards, {data['state']}" + "".join(f"\n  error: {e}" for e in data.get("errors") or [])))
    return CHECK_FAILED if status.get("state") in RESHARD_UNSUCCESSFUL else OK


def run_reshards(client: AdminClient, out: Output, args: argparse.Namespace) -> int:
    """`reshards list | show ID [--watch] | rollback ID`."""
    if args.action == "show":
        if args.watch:
            return follow_reshard(client, out, args.reshard, args.interval)
        found = client.get(f"/_miroir/reshards/{args.reshard}")
        out.emit(found, lambda console, data: console.print(
            f"reshard {data['id']} of {data['index']}: {data['fromShards']} -> "
            f"{data['toShards']} shards, {data['state']}, documents "
            f"{number(data.get('documentsCopied'))}/{number(data.get('documentsTotal'))}"
            + "".join(f"\n  error: {e}" for e in data.get("errors") or []), markup=False))
        return CHECK_FAILED if found.get("state") in RESHARD_UNSUCCESSFUL else OK
    if args.action == "rollback":
        answer = client.post(f"/_miroir/reshards/{args.reshard}/rollback")
        out.emit(answer, lambda console, data: console.print(
            f"reshard {data.get('id', args.reshard)}: {data.get('state', 'rolling back')}",
            markup=False))
        return OK
    listed = client.get("/_miroir/reshards")

    def draw(console: Console, data: Any) -> None:
        results = data["results"] if isinstance(data, dict) else data
        table = Table(title=f"Reshards ({len(results)})")
        for column in ("id", "index", "shards", "state", "documents", "started", "finished"):
            table.add_column(column)
        for found in results:
            table.add_row(found["id"], found["index"],
                          f"{found['fromShards']} -> {found['toShards']}", found["state"],
                          f"{number(found.get('documentsCopied'))}/"
                          f"{number(found.get('documentsTotal'))}",
                          _when(found.get("startedAtMs")), _when(found.get("finishedAtMs")))
        console.print(table)

    out.emit(listed, draw)
    return OK


def _when(ms: int | None) -> str:
    return "-" if ms is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000))
