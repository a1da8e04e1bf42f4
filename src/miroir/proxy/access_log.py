"""One JSON log line per client request, on the `miroir.access` logger.

Fields: time (ms since the epoch), method, path (without the query string, which may hold
filters or keys of no business in a log), status, duration_ms, remote. Never a header, a body
or a key.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

logger = logging.getLogger("miroir.access")


def ensure_output() -> None:
    """Make the lines reach stderr when nobody configured logging (plain `miroir serve` or
    hypercorn): then one bare JSON line per request, nothing else. If the host application
    configured the root logger, its handlers decide, and nothing is added."""
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def log_request(method: str, path: str, status: int, duration_s: float, remote: str | None) -> None:
    if not logger.isEnabledFor(logging.INFO):
        return
    logger.info(
        orjson.dumps(
            {
                "time": time.time_ns() // 1_000_000,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(duration_s * 1000, 3),
                "remote": remote,
            }
        ).decode()
    )
