"""`miroir` command line: one subcommand per module in this package.

Each subcommand module exposes `register(subparsers)`, which adds its parser and sets
`func(args) -> int` as the parser default. Adding a subcommand is one line in SUBCOMMANDS.
Options before the subcommand apply to all of them: `--version`, and `--log-level` /
`--log-format`, which set up every `miroir.*` logger (`miroir.logs`) in this process and, through
the environment, in the processes it starts.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from importlib.metadata import PackageNotFoundError, version

from miroir import logs

SUBCOMMANDS: tuple[str, ...] = ("devnode", "serve", "dev", "simulate", "ctl")


def miroir_version() -> str:
    try:
        return version("miroir")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="miroir", description="Make a fleet of Meilisearch nodes look like one."
    )
    parser.add_argument("--version", action="version", version=f"miroir {miroir_version()}")
    defaults = logs.LogSettings.from_env()
    parser.add_argument(
        "--log-level", choices=logs.LEVELS, default=defaults.level,
        help=f"least severe log line written, for every miroir.* logger (default: "
             f"${logs.LEVEL_ENV} or info; the access log writes at info)",
    )
    parser.add_argument(
        "--log-format", choices=logs.FORMATS, default=defaults.format,
        help=f"log lines as JSON objects or as text (default: ${logs.FORMAT_ENV} or json)",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"miroir.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    set_up_logging(args)
    return int(args.func(args) or 0)


def set_up_logging(args: argparse.Namespace) -> None:
    """`--log-level` and `--log-format` for this process and, through the environment, for
    the processes it starts (hypercorn's workers, `miroir dev`'s proxy and devnodes)."""
    settings = logs.LogSettings(args.log_level, args.log_format)
    settings.export()
    logs.configure(settings)


if __name__ == "__main__":
    sys.exit(main())
