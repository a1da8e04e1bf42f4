"""When a reshard may start: `resharding.allowed_windows`, checked as a pure function of time.

Theory of operation. An operator restricts resharding to quiet hours with a list of daily UTC
windows, each written `"HH:MM-HH:MM UTC"` (the ` UTC` is optional; no other zone is taken, so a
window never moves with daylight saving). A window whose end is earlier than its start wraps
past midnight (`"22:00-02:00 UTC"` is 22:00 to 02:00 the next day); start equal to end is
refused as ambiguous. The start minute is inside a window, the end minute is not. An empty
list allows any time. `next_opening` is the earliest moment at or after `now` that a window
allows, so a refusal can name it.

Must never: read a clock (the time is passed in, as ms since the Unix epoch) or use local time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import attrs

MINUTE_MS = 60_000
DAY_MINUTES = 24 * 60
DAY_MS = DAY_MINUTES * MINUTE_MS

_WINDOW = re.compile(r"\s*(\d\d):(\d\d)\s*-\s*(\d\d):(\d\d)(?:\s+UTC)?\s*")


class WindowError(ValueError):
    """A window that cannot be read (the message quotes it and says what is expected)."""


@attrs.frozen
class Window:
    """Minutes after UTC midnight: [start, end), wrapping past midnight when end < start."""

    start: int
    end: int

    def contains(self, minute: int) -> bool:
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    def __str__(self) -> str:
        return f"{self.start // 60:02d}:{self.start % 60:02d}-{self.end // 60:02d}:" \
               f"{self.end % 60:02d} UTC"


def parse_window(text: str) -> Window:
    matched = _WINDOW.fullmatch(text)
    if matched is None:
        raise WindowError(f"`{text}` is not a window: expected `HH:MM-HH:MM UTC`")
    sh, sm, eh, em = (int(g) for g in matched.groups())
    if sh > 23 or eh > 23 or sm > 59 or em > 59:
        raise WindowError(f"`{text}`: hours run 00-23 and minutes 00-59")
    start, end = sh * 60 + sm, eh * 60 + em
    if start == end:
        raise WindowError(f"`{text}`: a window must not start where it ends (for any time, "
                          "leave the list empty)")
    return Window(start, end)


def parse_windows(texts: Sequence[str]) -> tuple[Window, ...]:
    return tuple(parse_window(text) for text in texts)


def allowed(now_ms: int, windows: Sequence[Window]) -> bool:
    """Whether a reshard may start at `now_ms`."""
    if not windows:
        return True
    minute = (now_ms // MINUTE_MS) % DAY_MINUTES
    return any(window.contains(minute) for window in windows)


def next_opening(now_ms: int, windows: Sequence[Window]) -> int:
    """The earliest time (ms) at or after `now_ms` that `allowed` accepts: `now_ms` itself
    when it is allowed, else the next window start."""
    if allowed(now_ms, windows):
        return now_ms
    day_start = now_ms - now_ms % DAY_MS
    starts = [day_start + days * DAY_MS + w.start * MINUTE_MS
              for days in (0, 1) for w in windows]
    return min(t for t in starts if t > now_ms)
