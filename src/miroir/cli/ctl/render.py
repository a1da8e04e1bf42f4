"""How `miroir ctl` prints: JSON for scripts (`--json`), rich tables for people.

Every command hands `Output.emit` the data it got (or built) and a function that draws it; with
`--json` the data goes to stdout as JSON and nothing else is printed there, so a script can
pipe it. Messages for people (errors, hints) go to stderr either way. Tables are rich's: a
terminal gets colours and its width, a pipe gets plain text 160 columns wide.

Must never: print anything but the JSON on stdout under `--json`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import orjson
from rich.console import Console

PIPE_WIDTH = 160


def console(file: Any = None) -> Console:
    target = file if file is not None else sys.stdout
    if target.isatty():
        return Console(file=target)
    return Console(file=target, width=PIPE_WIDTH, no_color=True, highlight=False)


class Output:
    def __init__(self, *, as_json: bool) -> None:
        self.as_json = as_json
        self.out = console()
        self.err = console(sys.stderr)

    def emit(self, data: Any, draw: Callable[[Console, Any], None]) -> None:
        if self.as_json:
            sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")
            sys.stdout.flush()
        else:
            draw(self.out, data)

    def error(self, message: str) -> None:
        self.err.print(f"error: {message}", markup=False, highlight=False)


def size(value: int | float | None) -> str:
    """Bytes for a person: 1.5 MiB."""
    if value is None:
        return "-"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if amount < 1024 or unit == "TiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return str(value)  # unreachable: the loop returns at TiB


def number(value: int | float | None) -> str:
    return "-" if value is None else f"{value:,}"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    whole = int(value)
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"
