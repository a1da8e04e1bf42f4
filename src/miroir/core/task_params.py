"""The values of Meilisearch's task query parameters (GET /tasks, DELETE /tasks, POST /tasks/cancel).

Owns how one raw parameter value reads: integers, booleans, comma lists and filter dates, each
exactly as Meilisearch reads it (crates/meilisearch/src/routes/tasks.rs and the types it uses).
`miroir.core.tasks.parse_task_query` puts them together; the proxy and the devnode both call that.
Pure: no I/O, no clock.

What Meilisearch does, and so what this does:
- Nothing is trimmed. Integers and booleans use Rust's `str::parse`: `u32` takes ASCII digits with
  an optional leading `+` and nothing above 2^32-1; `bool` takes exactly `true` or `false`.
- A list (`serde_cs::CS`) is split on `,` and its empty pieces are dropped (`1,,2` is `[1, 2]`;
  an empty value is an empty list, a filter nothing matches). A `*` piece makes the whole list
  "no filter", but only once every other piece has parsed. A bad piece of a list with more than
  one piece is named `param[i]` in the error, `i` counting the non-empty pieces.
- A date is `*` (no filter), or `time`'s RFC 3339 (`OffsetDateTime::parse(_, &Rfc3339)`), or a
  bare date (`[year]-[month]-[day]`, the year optionally signed). A bare date is midnight UTC;
  as an `after*` bound it is the next midnight, unless that would pass the last representable
  day (9999-12-31), where Meilisearch keeps the day itself.
"""

from __future__ import annotations

import re

from miroir.core.errors import MeiliError

_U32_MAX = 2**32 - 1
_U32 = re.compile(r"\+?[0-9]+", re.ASCII)

# time's Rfc3339: 4-digit year, `T` or `t`, a fraction of any length (digits past the ninth are
# dropped), `Z`/`z` or a `+hh:mm`/`-hh:mm` offset.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))",
    re.ASCII,
)
# `[year repr:full base:calendar]-[month repr:numerical]-[day]`: the year takes an optional sign.
_BARE_DATE = re.compile(r"([+-]?)([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_MAX_YEAR = 9999  # time without its `large-dates` feature: years -9999..=9999

_NANOS_PER_SECOND = 1_000_000_000
_NANOS_PER_DAY = 86_400 * _NANOS_PER_SECOND


def bad_value(code: str, where: str, detail: str) -> MeiliError:
    return MeiliError(code, f"Invalid value in parameter `{where}`: {detail}")


def parse_u32(code: str, where: str, raw: str) -> int:
    if _U32.fullmatch(raw) and int(raw) <= _U32_MAX:
        return int(raw)
    raise bad_value(code, where, f"could not parse `{raw}` as a positive integer")


def parse_bool(code: str, where: str, raw: str) -> bool:
    if raw in ("true", "false"):
        return raw == "true"
    raise bad_value(
        code, where, f"could not parse `{raw}` as a boolean, expected either `true` or `false`"
    )


def list_pieces(raw: str) -> list[str]:
    """The non-empty pieces of a comma list, untrimmed."""
    return [piece for piece in raw.split(",") if piece]


def piece_name(param: str, index: int, count: int) -> str:
    """How Meilisearch names a bad piece of a list in its error."""
    return f"{param}[{index}]" if count > 1 else param


def invalid_date_detail(raw: str) -> str:
    return (
        f"`{raw}` is an invalid date-time. It should follow the YYYY-MM-DD or RFC 3339 "
        "date-time format."
    )


def parse_filter_date(raw: str, *, after: bool) -> int | None:
    """Nanoseconds since the Unix epoch for a date filter, or None when `raw` is not a date.

    `*` is the caller's to handle (it is "no filter", not a date).
    """
    if match := _RFC3339.fullmatch(raw):
        return _rfc3339_nanos(match)
    if match := _BARE_DATE.fullmatch(raw):
        sign, year_text, month_text, day_text = match.groups()
        year = -int(year_text) if sign == "-" else int(year_text)
        month, day = int(month_text), int(day_text)
        if not _is_date(year, month, day):
            return None
        days = _days_since_epoch(year, month, day)
        if after and (year, month, day) != (_MAX_YEAR, 12, 31):
            days += 1
        return days * _NANOS_PER_DAY
    return None


def _rfc3339_nanos(match: re.Match[str]) -> int | None:
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = match.group(7) or ""
    nanos = int(fraction[:9].ljust(9, "0")) if fraction else 0
    offset_seconds = 0
    if match.group(8):
        offset_hours, offset_minutes = int(match.group(9)), int(match.group(10))
        if offset_hours > 25 or offset_minutes > 59:  # time's UtcOffset range
            return None
        offset_seconds = (offset_hours * 60 + offset_minutes) * 60
        if match.group(8) == "-":
            offset_seconds = -offset_seconds
    if not _is_date(year, month, day) or hour > 23 or minute > 59 or second > 60:
        return None
    leap_second = second == 60
    if leap_second:  # time reads it as the nanosecond before the next second
        second, nanos = 59, _NANOS_PER_SECOND - 1
    seconds = (
        _days_since_epoch(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
        - offset_seconds
    )
    if leap_second and not _is_last_second_of_a_month(seconds):
        return None  # time only accepts a leap second at the end of a UTC month
    return seconds * _NANOS_PER_SECOND + nanos


def _is_last_second_of_a_month(seconds: int) -> bool:
    days, second_of_day = divmod(seconds, 86_400)
    if second_of_day != 86_399:
        return False
    year, month, day = _civil_from_days(days)
    return day == _days_in_month(year, month)


def _is_leap_year(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _days_in_month(year: int, month: int) -> int:
    if month == 2:
        return 29 if _is_leap_year(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _is_date(year: int, month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= _days_in_month(year, month)


# Proleptic Gregorian day numbers for any year (Python's datetime stops at year 1, and time
# goes down to -9999), after Howard Hinnant's `days_from_civil`/`civil_from_days`.
def _days_since_epoch(year: int, month: int, day: int) -> int:
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719_468
    era = days // 146_097
    day_of_era = days - era * 146_097
    year_of_era = (
        day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096
    ) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    shifted_month = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * shifted_month + 2) // 5 + 1
    month = shifted_month + (3 if shifted_month < 10 else -9)
    year = year_of_era + era * 400 + (month <= 2)
    return year, month, day
