"""One log line per client request, on the `miroir.access` logger.

Fields: time (ms since the epoch), method, path (without the query string, which may hold
filters or keys of no business in a log), status, duration_ms, remote. Never a header, a body
or a key (a path under `/keys/` is logged as `/keys/<key>`). The line's shape follows the log format (`miroir.logs`: a JSON object by default);
the level is the `miroir` loggers' (a request is logged at INFO).

When nobody configured logging, `ensure_output` sets up Miroir's (`miroir.logs`), and while its
handler is the only place a line can go, `log_request` writes the line to its stream itself:
building a `LogRecord` and walking the handler chain cost about 5 % of a search's CPU for the
same bytes. Any other handler (a host application's) gets the record, its message the JSON line.
"""

from __future__ import annotations

import logging
import time

import orjson

from miroir import logs

logger = logging.getLogger("miroir.access")


def ensure_output() -> None:
    """Make the lines reach stderr when nobody configured logging (plain hypercorn, or a worker
    of `miroir serve`): Miroir's own setup, from the environment (`miroir.logs`). If the host
    application configured the root logger, its handlers decide, and nothing is added."""
    logs.ensure_configured()


KEYS_PREFIX = "/keys/"
REDACTED_KEY_PATH = "/keys/<key>"


def loggable_path(path: str) -> str:
    """`path` as the log may show it: `/keys/{uid_or_key}` may hold an API key's value, so
    every path under /keys/ is logged as `/keys/<key>`."""
    return REDACTED_KEY_PATH if path.startswith(KEYS_PREFIX) else path


def log_request(method: str, path: str, status: int, duration_s: float, remote: str | None) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    path = loggable_path(path)
    fields = {
        "time": time.time_ns() // 1_000_000,
        "method": method,
        "path": path,
        "status": status,
        "duration_ms": round(duration_s * 1000, 3),
        "remote": remote,
    }
    handler = logs.sole_handler(logger)
    if handler is not None:
        stream = handler.stream
        stream.write(handler.formatter.access_line(fields) + "\n")  # type: ignore[union-attr]
        stream.flush()
        return
    logger.info(orjson.dumps(fields).decode(), extra={"access": fields})
