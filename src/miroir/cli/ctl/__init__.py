"""`miroir ctl` (also installed as `miroir-ctl`): the operator's command line, over the admin
API only (never a node directly).

Theory of operation. The parser is built here, one sub-parser per command, each pointing at a
`run_*(client, out, args) -> exit code` in `fleet` (status, stats, nodes, groups, rebalance),
`checks` (verify, settings diff, reconcile) or `api` (tasks, aliases, reshard, reshards). `run` resolves the
connection (`connection.resolve`: flags, environment, credentials file), opens one
`AdminClient`, runs the command and maps what went wrong to the exit code scripts rely on:

    0  ok
    1  a check failed (verify found differences, the fleet is not fully covered, a rebalance
       failed) or Miroir refused the request (its message is printed)
    2  usage: bad arguments, no URL, an unreadable or unsafe credentials file
    3  Miroir could not be reached (connection refused, timeout, not Miroir)

The connection options and `--json` are accepted before or after the command.

Must never: show a traceback for something an operator can cause (an unreachable URL, a
refusal, a bad file): each is one line on stderr and its exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import httpx

from miroir.cli.ctl import api, checks, fleet
from miroir.cli.ctl.connection import (
    AdminClient,
    ApiError,
    CannotReach,
    UsageError,
    credentials_path,
    read_credentials,
    resolve,
)
from miroir.cli.ctl.render import Output

OK, CHECK_FAILED, USAGE, UNREACHABLE = 0, 1, 2, 3

EPILOG = """\
connection (first found wins): --url/--admin-key/--api-key, then $MIROIR_URL, $MIROIR_ADMIN_KEY,
$MIROIR_API_KEY, then the context chosen with --context/$MIROIR_CONTEXT (or current-context) in
~/.config/miroir/credentials ($MIROIR_CREDENTIALS), which must be mode 0600.

exit codes: 0 ok, 1 check failed or request refused, 2 usage, 3 cannot reach Miroir.

examples:
  miroir ctl --url http://127.0.0.1:7700 status
  miroir ctl nodes add node-4 http://10.0.0.14:7700 --group 0 --dry-run
  miroir ctl rebalance plan add-node node-4 http://10.0.0.14:7700 --group 0
  miroir ctl rebalance status --watch
  miroir ctl verify movies --full
  miroir ctl reshard movies --shards 32 --watch
  miroir ctl --json stats | jq '.indexes.movies.groups'
"""

Runner = Callable[[AdminClient, Output, argparse.Namespace], int]


def connection_options() -> argparse.ArgumentParser:
    """Options every command takes, before or after its name (defaults suppressed so a value
    given before the command is not reset by the sub-parser)."""
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection and output")
    group.add_argument("--url", default=argparse.SUPPRESS,
                       help="Miroir's address (default $MIROIR_URL, then the context's)")
    group.add_argument("--admin-key", default=argparse.SUPPRESS,
                       help="admin key (default $MIROIR_ADMIN_KEY, then the context's); "
                            "prefer the environment or the credentials file: a flag shows "
                            "in the process list")
    group.add_argument("--api-key", default=argparse.SUPPRESS,
                       help="key for the Meilisearch routes `tasks` uses (default "
                            "$MIROIR_API_KEY, the context's, then the admin key)")
    group.add_argument("--context", default=argparse.SUPPRESS,
                       help="context of the credentials file (default $MIROIR_CONTEXT, then "
                            "its current-context)")
    group.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                       help="print the answer as JSON, for scripts")
    return common


def _command(subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser,
             name: str, runner: Runner | None, help_text: str, example: str = "",
             ) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        name, help=help_text, description=help_text, parents=[common],
        epilog=f"example:\n  {example}" if example else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    if runner is not None:
        parser.set_defaults(runner=runner)
    return parser


def _nested(subparsers: argparse._SubParsersAction, name: str,
            help_text: str) -> argparse._SubParsersAction:
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    return parser.add_subparsers(dest=f"{name}_command", required=True)


def add_commands(parser: argparse.ArgumentParser) -> None:
    common = connection_options()
    commands = parser.add_subparsers(dest="ctl_command", required=True)
    _command(commands, common, "status", fleet.run_status,
             "the fleet at a glance: nodes by group, coverage, degraded pairs, rebalance "
             "(exit 1 when some shard has no readable owner)", "miroir ctl status")
    stats = _command(commands, common, "stats", fleet.run_stats,
                     "documents and sizes per node, per shard, per index; balance and skew",
                     "miroir ctl stats movies --shards")
    stats.add_argument("index", nargs="?", help="only this index")
    stats.add_argument("--shards", action="store_true", help="also the per-shard table")
    _command(commands, common, "contexts", None,
             "the credentials file's contexts (names and URLs; never keys)",
             "miroir ctl contexts").set_defaults(local=list_contexts)

    nodes = _nested(commands, "nodes", "list, add, drain and remove nodes")
    _command(nodes, common, "list", fleet.run_nodes_list, "every node, its membership and "
             "state", "miroir ctl nodes list")
    for change, name, text, example in (
        ("add-node", "add", "add a node to a group (it joins; a rebalance copies its shards)",
         "miroir ctl nodes add node-4 http://10.0.0.14:7700 --group 0"),
        ("drain", "drain", "move a node's shards away (it is `removed` at the cutover)",
         "miroir ctl nodes drain node-2"),
        ("remove", "remove", "forget a drained node", "miroir ctl nodes remove node-2"),
    ):
        parser = _command(nodes, common, name, fleet.run_change, text, example)
        fleet.add_change_arguments(parser, change)
        parser.add_argument("--dry-run", action="store_true", help="show the plan only")
    groups = _nested(commands, "groups", "add a replica group")
    parser = _command(groups, common, "add", fleet.run_change,
                      "add a replica group of new nodes",
                      "miroir ctl groups add g1-a=http://10.0.1.1:7700 g1-b=http://10.0.1.2:7700")
    fleet.add_change_arguments(parser, "add-group")
    parser.add_argument("--dry-run", action="store_true", help="show the plan only")

    rebalance = _nested(commands, "rebalance", "plan, start and follow a rebalance")
    for name, dry in (("plan", True), ("start", False)):
        verb = _nested(rebalance, name, ("which shards a change moves where, and how many "
                                         "documents (nothing changes)") if dry else
                       "carry out a change (needs `rebalance.enabled`)")
        for change, text in (("add-node", "a node joins a group"), ("drain", "a node leaves"),
                             ("add-group", "a new replica group")):
            parser = _command(verb, common, change, fleet.run_change, text,
                              f"miroir ctl rebalance {name} {change} ...")
            fleet.add_change_arguments(parser, change)
            parser.set_defaults(dry_run=dry)
    status = _command(rebalance, common, "status", fleet.run_rebalance_status,
                      "the last rebalance; --watch follows it with a live bar until it ends "
                      "(exit 1 when it failed)", "miroir ctl rebalance status --watch")
    status.add_argument("--watch", action="store_true", help="poll until it ends")
    status.add_argument("--interval", type=float, default=1.0, help="seconds between polls")

    verify = _command(commands, common, "verify", checks.run_verify,
                      "check every replica: per-shard counts, sampled document digests across "
                      "replicas and groups, settings on every node (exit 1 on a difference)",
                      "miroir ctl verify movies --sample 500")
    verify.add_argument("indexes", nargs="*", metavar="INDEX", help="default: every index")
    verify.add_argument("--sample", type=int, default=100,
                        help="ids compared per replica of each shard (default 100)")
    verify.add_argument("--full", action="store_true", help="compare every document")
    verify.add_argument("--timeout", type=float, default=600.0,
                        help="seconds to wait for the check (default 600: it reads every "
                             "replica)")

    reconcile = _command(commands, common, "reconcile", checks.run_reconcile,
                         "run a reconciler (anti-entropy) pass now: it repairs what differs "
                         "from the majority and the committed settings", "miroir ctl reconcile")
    reconcile.add_argument("--timeout", type=float, default=600.0,
                           help="seconds to wait for the pass (default 600)")

    settings = _nested(commands, "settings", "compare an index's settings across nodes")
    diff = _command(settings, common, "diff", checks.run_settings_diff,
                    "each settings key that differs between nodes, node by node (exit 1 when "
                    "one does)", "miroir ctl settings diff movies")
    diff.add_argument("index")

    tasks = _nested(commands, "tasks", "list, show and cancel tasks")
    listing = _command(tasks, common, "list", api.run_tasks_list, "tasks, newest first",
                       "miroir ctl tasks list --status failed --index movies")
    _task_filters(listing)
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--from", dest="start_from", type=int, help="first uid to show")
    show = _command(tasks, common, "show", api.run_tasks_show,
                    "one task with each node's part", "miroir ctl tasks show 42")
    show.add_argument("task", type=int)
    cancel = _command(tasks, common, "cancel", api.run_tasks_cancel,
                      "cancel tasks by uid or filter", "miroir ctl tasks cancel 42 43")
    cancel.add_argument("uid", nargs="*", type=int)
    _task_filters(cancel)

    aliases = _nested(commands, "aliases", "index aliases")
    _command(aliases, common, "list", api.run_aliases, "every alias",
             "miroir ctl aliases list").set_defaults(action="list")
    for name, text, example in (("show", "one alias", "miroir ctl aliases show movies"),
                                ("set", "point an alias at an index",
                                 "miroir ctl aliases set movies movies_v2"),
                                ("delete", "delete an alias", "miroir ctl aliases delete old")):
        parser = _command(aliases, common, name, api.run_aliases, text, example)
        parser.set_defaults(action=name)
        parser.add_argument("alias")
        if name == "set":
            parser.add_argument("index")

    reshard = _command(commands, common, "reshard", api.run_reshard,
                       "change an index's shard count (refused outside "
                       "resharding.allowed_windows unless --force)",
                       "miroir ctl reshard movies --shards 32 --watch")
    reshard.add_argument("index")
    reshard.add_argument("--shards", type=int, help="the new shard count")
    reshard.add_argument("--force", action="store_true", help="start outside the windows")
    reshard.add_argument("--watch", action="store_true", help="follow it until it ends")
    reshard.add_argument("--watch-id", help="follow a reshard already started")
    reshard.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    reshards = _nested(commands, "reshards", "list, follow and roll back reshards")
    _command(reshards, common, "list", api.run_reshards, "every reshard, newest first",
             "miroir ctl reshards list").set_defaults(action="list")
    show = _command(reshards, common, "show", api.run_reshards,
                    "one reshard's progress (--watch follows it; exit 1 when it failed or was "
                    "rolled back)", "miroir ctl reshards show rs-1 --watch")
    show.set_defaults(action="show")
    show.add_argument("reshard", help="the reshard's id")
    show.add_argument("--watch", action="store_true", help="follow it until it ends")
    show.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    rollback = _command(reshards, common, "rollback", api.run_reshards,
                        "flip the index back to its old layout (during the grace period)",
                        "miroir ctl reshards rollback rs-1")
    rollback.set_defaults(action="rollback")
    rollback.add_argument("reshard", help="the reshard's id")


def _task_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status", action="append", help="enqueued, processing, succeeded, ...")
    parser.add_argument("--type", action="append", help="documentAdditionOrUpdate, ...")
    parser.add_argument("--index", action="append", help="index uid")


def list_contexts(out: Output) -> int:
    credentials = read_credentials(credentials_path())
    contexts = credentials.get("contexts") or {}
    current = credentials.get("current-context")
    listed = [{"name": name, "url": (context or {}).get("url"), "current": name == current}
              for name, context in sorted(contexts.items())]

    def draw(console, data) -> None:
        if not data:
            console.print(f"no contexts in {credentials_path()}")
        for context in data:
            console.print(f"{'*' if context['current'] else ' '} {context['name']}  "
                          f"{context['url']}", markup=False)

    out.emit(listed, draw)
    return OK


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ctl", help="operate a running Miroir through its admin API",
        description="Operate a running Miroir through its admin API.", epilog=EPILOG,
        parents=[connection_options()], formatter_class=argparse.RawDescriptionHelpFormatter)
    add_commands(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    out = Output(as_json=getattr(args, "json", False))
    try:
        if getattr(args, "local", None) is not None:
            return args.local(out)
        if args.ctl_command == "reshard" and args.shards is None and args.watch_id is None:
            raise UsageError("reshard needs --shards N (or --watch-id ID)")
        connection = resolve(url=getattr(args, "url", None),
                             admin_key=getattr(args, "admin_key", None),
                             api_key=getattr(args, "api_key", None),
                             context=getattr(args, "context", None))
        client = AdminClient(connection)
        try:
            runner = api.run_reshard_watch if (
                args.ctl_command == "reshard" and args.shards is None) else args.runner
            return runner(client, out, args)
        finally:
            client.close()
    except UsageError as error:
        out.error(str(error))
        return USAGE
    except CannotReach as error:
        out.error(str(error))
        return UNREACHABLE
    except ApiError as error:
        out.error(f"{error} ({error.code or 'HTTP ' + str(error.status)})"
                  + (f"\nhint: {error.hint}" if error.hint else ""))
        return CHECK_FAILED
    except httpx.HTTPError as error:  # anything httpx raises that is not a transport error
        out.error(f"request failed: {type(error).__name__}: {error}")
        return UNREACHABLE
    except (KeyError, TypeError) as error:  # a 200 answer without the fields this ctl reads
        out.error(f"unexpected answer ({type(error).__name__}: {error}): is the URL a Miroir "
                  "of this version?")
        return UNREACHABLE
    except KeyboardInterrupt:
        return CHECK_FAILED


def main(argv: list[str] | None = None) -> int:
    """The `miroir-ctl` console script."""
    parser = argparse.ArgumentParser(
        prog="miroir-ctl", description="Operate a running Miroir through its admin API.",
        epilog=EPILOG, parents=[connection_options()],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_commands(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
