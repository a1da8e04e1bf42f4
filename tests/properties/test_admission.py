"""Laws of `miroir.core.admission.admit`: FIFO, bounded waits, shedding that only grows with the
queue (issue 20)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from miroir.core.admission import Verdict, admit, ewma

situations = st.fixed_dictionaries({
    "in_flight": st.integers(0, 40),
    "waiting": st.integers(0, 200),
    "max_in_flight": st.integers(0, 32),
    "service_time_s": st.floats(0, 5, allow_nan=False),
    "time_left_s": st.floats(-1, 10, allow_nan=False),
    "queue_timeout_s": st.floats(0, 10, allow_nan=False),
})


@given(situations)
def test_a_call_goes_at_once_only_when_a_slot_is_free_and_nobody_waits(s):
    """FIFO: nobody overtakes a waiter; no limit means always go."""
    verdict = admit(**s).verdict
    free = s["max_in_flight"] <= 0 or (s["in_flight"] < s["max_in_flight"] and s["waiting"] == 0)
    assert (verdict is Verdict.GO) == free


@given(situations)
def test_a_wait_fits_its_deadline_and_the_queue_timeout(s):
    admission = admit(**s)
    if admission.verdict is Verdict.WAIT:
        assert 0 < admission.patience_s <= s["queue_timeout_s"]
        assert admission.patience_s + s["service_time_s"] <= s["time_left_s"] + 1e-9
        assert admission.expected_wait_s <= admission.patience_s
    if admission.verdict is not Verdict.GO:
        assert admission.retry_after_s >= max(1, admission.expected_wait_s)


@given(situations, st.integers(1, 100))
def test_a_longer_queue_never_turns_a_shed_into_a_wait(s, more):
    if admit(**s).verdict is Verdict.SHED:
        assert admit(**{**s, "waiting": s["waiting"] + more}).verdict is Verdict.SHED


@given(situations, st.floats(0, 5, allow_nan=False))
def test_less_time_left_never_turns_a_shed_into_a_wait(s, less):
    if admit(**s).verdict is Verdict.SHED:
        shorter = {**s, "time_left_s": s["time_left_s"] - less}
        assert admit(**shorter).verdict is Verdict.SHED


@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=50))
def test_the_moving_average_stays_within_the_samples(samples):
    average = None
    for sample in samples:
        average = ewma(average, sample)
    assert min(samples) - 1e-9 <= average <= max(samples) + 1e-9
