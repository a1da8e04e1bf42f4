"""Meilisearch's date and duration text: RFC 3339 instants and ISO 8601 durations.

Owns only formatting and parsing of time values; it never reads a clock (instants are passed in).
Formats follow reference/meilisearch-api.md §2: UTC with a `Z` suffix, the fraction trimmed of
trailing zeros; durations as `P[nD]T<secs>[.fff|.ffffff]S` counted within the day. Task
filter dates are read by miroir.core.task_params, shared with the proxy.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def rfc3339(instant: datetime) -> str:
    """`2024-08-08T17:05:55.500000Z`: UTC, always six fraction digits.

    Meilisearch drops the fraction on a whole second, which the official Python SDK cannot
    parse; a fixed fraction is valid RFC 3339 and parses everywhere.
    """
    if instant.tzinfo is not UTC:
        instant = instant.astimezone(UTC)
    if 1000 <= instant.year:  # isoformat is cheaper than strftime (every task view)
        return instant.isoformat(timespec="microseconds")[:-6] + "Z"  # drops "+00:00"
    return instant.strftime("%Y-%m-%dT%H:%M:%S") + f".{instant.microsecond:06d}Z"


def iso_duration(span: timedelta) -> str | None:
    """`PT0.011S`, `PT1S`, `P1DT5S`; None for a negative span (Meilisearch sends null)."""
    if span < timedelta(0):
        return None
    days, seconds, micros = span.days, span.seconds, span.microseconds
    text = "P" + (f"{days}D" if days else "")
    if days and not seconds and not micros:
        return text
    if micros == 0:
        fraction = ""
    elif micros % 1000 == 0:
        fraction = f".{micros // 1000:03d}"
    else:
        fraction = f".{micros:06d}"
    return f"{text}T{seconds}{fraction}S"
