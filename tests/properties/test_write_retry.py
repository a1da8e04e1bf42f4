"""Laws of `miroir.core.write_retry`: the order rule, the cache's bounds, the budget, the key."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from miroir.core.write_retry import (
    SETTINGS_SLOT,
    WHOLE_INDEX,
    Failure,
    RetryBudget,
    RetryCache,
    RetryPolicy,
    WriteOrder,
    may_retry,
    write_key,
)

NODES = ("n0", "n1", "n2")
sends = st.lists(st.tuples(st.sampled_from(NODES), st.frozensets(st.integers(0, 5), min_size=1)),
                 min_size=1, max_size=30)


@given(sends)
def test_a_write_is_last_on_a_node_exactly_when_no_later_write_of_its_shards_went_there(plan):
    """`is_last` against the definition, over any order of sends."""
    order = WriteOrder()
    sent = []
    for node, shards in plan:
        seq = order.next_write()
        order.sent("idx", node, shards, seq)
        sent.append((seq, node, shards))
    for seq, node, shards in sent:
        later = any(s > seq and n == node and shards & other for s, n, other in sent)
        assert order.is_last("idx", node, shards, seq) is (not later)
        assert order.is_last("other-index", node, shards, seq)


# A write's shards: some document shards, every shard (a delete by filter or a delete-all), or
# the index's settings.
slots = (st.frozensets(st.integers(0, 5), min_size=1) | st.just(WHOLE_INDEX)
         | st.just(frozenset({SETTINGS_SLOT})))
mixed_sends = st.lists(st.tuples(st.sampled_from(NODES), slots), min_size=1, max_size=30)


def _conflict(a, b) -> bool:
    """Whether a resend of a write carrying `a` could undo a write carrying `b` (definition)."""
    def documents(x):
        return set(range(6)) if x is WHOLE_INDEX else {s for s in x if s != SETTINGS_SLOT}

    def settings(x):
        return x is not WHOLE_INDEX and SETTINGS_SLOT in x

    return bool(documents(a) & documents(b)) or (settings(a) and settings(b))


@given(mixed_sends)
def test_a_whole_index_or_settings_write_is_last_exactly_when_no_conflicting_write_followed(plan):
    """A delete-all conflicts with every document write of the node (both ways); a settings
    write only with settings writes."""
    order = WriteOrder()
    sent = []
    for node, shards in plan:
        seq = order.next_write()
        order.sent("idx", node, shards, seq)
        sent.append((seq, node, shards))
    for seq, node, shards in sent:
        later = any(s > seq and n == node and _conflict(shards, other)
                    for s, n, other in sent)
        assert order.is_last("idx", node, shards, seq) is (not later), (seq, node, shards)


@given(sends)
def test_no_retry_is_allowed_once_a_later_write_reached_the_node(plan):
    order = WriteOrder()
    first = order.next_write()
    order.sent("idx", "n0", {0}, first)
    for node, shards in plan:
        order.sent("idx", node, shards, order.next_write())
    overtaken = any(node == "n0" and 0 in shards for node, shards in plan)
    reason = may_retry(RetryPolicy(), Failure.NOT_APPLIED, 0, 1.0,
                       order.is_last("idx", "n0", {0}, first), False)
    assert (reason == "order") is overtaken


@given(st.lists(st.tuples(st.text(min_size=1, max_size=3), st.floats(0, 1000)), max_size=60),
       st.integers(1, 10), st.floats(1, 100))
def test_the_cache_holds_at_most_max_entries_none_older_than_max_age(puts, size, age):
    cache = RetryCache(max_entries=size, max_age_s=age)
    now = 0.0
    for key, step in puts:
        now += step
        cache.put(key, 1, 1, now)
        assert len(cache) <= size
        got = cache.get(key, now)
        assert got is not None and got.at_s == now  # the newest entry is always there
    for key, _ in puts:
        entry = cache.get(key, now)
        assert entry is None or now - entry.at_s <= age


@given(st.lists(st.booleans(), max_size=200), st.floats(0, 1), st.integers(1, 30))
def test_retries_never_exceed_the_burst_plus_ratio_times_first_attempts(events, ratio, burst):
    budget = RetryBudget(ratio=ratio, burst=burst)
    firsts = retries = 0
    for is_first in events:
        if is_first:
            firsts += 1
            budget.earn()
        elif budget.try_spend():
            retries += 1
    assert retries <= burst + ratio * firsts


@given(st.sampled_from(list(Failure)), st.integers(0, 5), st.floats(-1, 1), st.booleans(),
       st.booleans())
def test_a_final_failure_an_exhausted_write_or_a_passed_deadline_is_never_retried(
        failure, attempts, remaining, is_last, timed_out):
    policy = RetryPolicy(max_retries=2, min_remaining_s=0.01)
    reason = may_retry(policy, failure, attempts, remaining, is_last, timed_out)
    if reason is None:
        assert failure is not Failure.FINAL and attempts < 2 and remaining >= 0.01 and is_last


def test_the_key_separates_nodes_bodies_and_client_keys():
    base = write_key("n0", "idx", "POST /x", b"[1]", "k")
    assert base == write_key("n0", "idx", "POST /x", b"[1]", "k")
    assert len({base, write_key("n1", "idx", "POST /x", b"[1]", "k"),
                write_key("n0", "idx", "POST /x", b"[2]", "k"),
                write_key("n0", "idx", "POST /x", b"[1]", "k2"),
                write_key("n0", "idx2", "POST /x", b"[1]", "k")}) == 5
