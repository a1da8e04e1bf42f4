"""Laws of `resharding.allowed_windows` (`miroir.core.reshard_window`): UTC only, wrapping past
midnight, several windows, and the next opening a refusal names."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.reshard_window import (
    DAY_MS,
    MINUTE_MS,
    Window,
    WindowError,
    allowed,
    next_opening,
    parse_window,
    parse_windows,
)

minutes = st.integers(0, 24 * 60 - 1)
windows = st.builds(Window, minutes, minutes).filter(lambda w: w.start != w.end)
window_lists = st.lists(windows, max_size=4)
moments = st.integers(0, 4_000_000_000_000)  # ms since the epoch, to the 2090s


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def test_a_window_reads_as_utc_and_wraps_past_midnight():
    night = parse_windows(["22:00-02:00 UTC"])
    assert allowed(at("2026-12-04T23:59"), night)
    assert allowed(at("2026-12-05T00:30"), night)
    assert not allowed(at("2026-12-05T02:00"), night)  # the end minute is outside
    assert allowed(at("2026-12-05T22:00"), night)  # the start minute is inside
    assert not allowed(at("2026-12-05T12:00"), night)
    assert parse_window("02:00-06:00") == parse_window(" 02:00 - 06:00 UTC ") == Window(120, 360)
    assert str(parse_window("22:00-02:00 UTC")) == "22:00-02:00 UTC"


@pytest.mark.parametrize("text", ["2:00-6:00", "02:00-06:00 CET", "24:00-01:00", "01:60-02:00",
                                  "03:00-03:00 UTC", "", "always"])
def test_an_unreadable_window_is_refused_with_its_text(text):
    with pytest.raises(WindowError) as caught:
        parse_window(text)
    assert f"`{text}`" in str(caught.value)


def test_the_next_opening_is_named_across_midnight():
    windows = parse_windows(["02:00-06:00 UTC", "13:30-14:00 UTC"])
    assert next_opening(at("2026-12-04T07:00"), windows) == at("2026-12-04T13:30")
    assert next_opening(at("2026-12-04T15:00"), windows) == at("2026-12-05T02:00")
    assert next_opening(at("2026-12-04T03:00"), windows) == at("2026-12-04T03:00")


@given(moments)
def test_no_window_allows_any_time(now):
    assert allowed(now, ()) and next_opening(now, ()) == now


@given(moments, window_lists.filter(bool))
def test_several_windows_allow_what_any_one_allows(now, ws):
    assert allowed(now, ws) == any(allowed(now, [w]) for w in ws)


@given(moments, window_lists.filter(bool))
def test_the_next_opening_is_allowed_within_a_day_and_nothing_before_it_is(now, ws):
    opening = next_opening(now, ws)
    assert now <= opening < now + DAY_MS
    assert allowed(opening, ws)
    # Every minute from now up to the opening is refused (checked minute by minute).
    start = now - now % MINUTE_MS
    for t in range(start + MINUTE_MS if start < now else start, opening, MINUTE_MS):
        assert not allowed(t, ws)
    if opening > now:
        assert not allowed(now, ws)


@given(moments, windows)
def test_a_window_and_its_complement_split_the_day(now, w):
    assert allowed(now, [w]) != allowed(now, [Window(w.end, w.start)])


@given(moments, windows)
def test_only_the_utc_minute_of_the_day_matters(now, w):
    assert allowed(now, [w]) == allowed(now + 7 * DAY_MS, [w])
