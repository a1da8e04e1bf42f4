"""How verbose Miroir's logs are and what a line looks like: one setup for every `miroir.*`
logger.

Owns the two knobs, `level` (debug, info, warning, error, critical; default info) and `format`
(json, the default, or text), and the one stderr handler that writes the lines, hung on the
`miroir` logger so every `miroir.*` logger (access log, repair worker, task poller, store,
proxy errors) goes through it. A line, by format:
- json: one object per line, `{"time": ms since the epoch, "level", "logger", "message"}` plus
  `"exception"` when there is one; an access-log line keeps its own fields (`time, method,
  path, status, duration_ms, remote`, see `miroir.proxy.access_log`).
- text: `2026-01-01T12:00:00.123Z WARNING miroir.repair: message`, an access-log line's message
  being `GET /path 200 1.234 ms 10.0.0.1`.

Where the settings come from: `miroir --log-level L --log-format F` (`miroir.cli`), which also
exports them as `MIROIR_LOG_LEVEL` / `MIROIR_LOG_FORMAT` so that the processes it starts (the
workers of `miroir serve --workers N`, the proxy and devnodes of `miroir dev`) set up the same;
an app started without the CLI (plain hypercorn) reads those variables when it starts serving
(`ensure_configured`).

Must never: configure a logger outside `miroir`, or add a handler when the host application
already configured logging and nobody asked Miroir to (`ensure_configured` leaves it alone).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import attrs
import orjson

LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("json", "text")
LEVEL_ENV = "MIROIR_LOG_LEVEL"
FORMAT_ENV = "MIROIR_LOG_FORMAT"
ROOT_LOGGER = "miroir"


@attrs.frozen
class LogSettings:
    level: str = attrs.field(default="info", validator=attrs.validators.in_(LEVELS))
    format: str = attrs.field(default="json", validator=attrs.validators.in_(FORMATS))

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> LogSettings:
        """The settings the environment names; a value it does not know is the default (a log
        setting must not stop a proxy from starting)."""
        level = env.get(LEVEL_ENV, "").lower()
        fmt = env.get(FORMAT_ENV, "").lower()
        return cls(level if level in LEVELS else "info", fmt if fmt in FORMATS else "json")

    def export(self, env: dict[str, str] | os._Environ[str] = os.environ) -> None:
        """Put the settings where child processes read them."""
        env[LEVEL_ENV] = self.level
        env[FORMAT_ENV] = self.format


class MiroirFormatter(logging.Formatter):
    """One line per record in the chosen format (see the module docstring). An access-log
    record carries its fields as `record.access`."""

    def __init__(self, fmt: str) -> None:
        super().__init__()
        self.json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        access = getattr(record, "access", None)
        if access is not None:
            return self.access_line(access)
        message = record.getMessage()
        exception = self.formatException(record.exc_info) if record.exc_info else None
        if self.json:
            fields: dict[str, Any] = {
                "time": int(record.created * 1000), "level": record.levelname.lower(),
                "logger": record.name, "message": message,
            }
            if exception:
                fields["exception"] = exception
            return orjson.dumps(fields).decode()
        line = f"{_iso_ms(record.created)} {record.levelname} {record.name}: {message}"
        return f"{line}\n{exception}" if exception else line

    def access_line(self, fields: Mapping[str, Any]) -> str:
        """An access-log line from its fields (`time` in ms since the epoch)."""
        if self.json:
            return orjson.dumps(fields).decode()
        remote = fields.get("remote") or "-"
        return (f"{_iso_ms(fields['time'] / 1000)} INFO miroir.access: {fields['method']} "
                f"{fields['path']} {fields['status']} {fields['duration_ms']} ms {remote}")


def _iso_ms(seconds: float) -> str:
    whole = int(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + \
        f".{int((seconds - whole) * 1000):03d}Z"


_handler: logging.StreamHandler | None = None  # the one `configure` installed


def configure(settings: LogSettings) -> None:
    """Write every `miroir.*` logger's lines to stderr in `settings.format`, from
    `settings.level` up. Replaces the handler an earlier call installed; other handlers
    (a host's, pytest's) are left as they are."""
    global _handler
    miroir = logging.getLogger(ROOT_LOGGER)
    if _handler is not None:
        miroir.removeHandler(_handler)
    handler = _handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MiroirFormatter(settings.format))
    miroir.addHandler(handler)
    miroir.setLevel(settings.level.upper())


def ensure_configured() -> None:
    """Set up from the environment unless somebody already configured logging (Miroir's CLI,
    or the host application's root logger)."""
    if logging.getLogger(ROOT_LOGGER).handlers or logging.getLogger().handlers:
        return
    configure(LogSettings.from_env())


def sole_handler(logger: logging.Logger) -> logging.StreamHandler | None:
    """The handler `configure` installed when a record of `logger` at INFO would reach it and
    nothing else, unfiltered: writing the formatted line to its stream is then exactly what
    logging would do, at a fraction of the cost (the access log's hot path)."""
    handler = _handler
    if handler is None or logger.handlers or logger.filters or logger.disabled:
        return None
    parent = logger.parent
    if parent is None or parent.name != ROOT_LOGGER or not logger.propagate:
        return None
    # A propagated record meets the parent's handlers only: not its level, filters or
    # `disabled`, so those do not matter here.
    return handler if (
        len(parent.handlers) == 1 and parent.handlers[0] is handler
        and not handler.filters and handler.level <= logging.INFO
        and (not parent.propagate or not logging.getLogger().handlers)
    ) else None
