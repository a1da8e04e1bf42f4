"""`LightHistogram` exposes exactly what prometheus_client's `Histogram` exposes for the same
observations (but the `_created` samples, which it does not keep)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from miroir.proxy.metrics import LightHistogram

BUCKETS = (0.001, 0.0025, 0.01, 0.1, 1, 10)
AMOUNTS = st.one_of(st.sampled_from(BUCKETS), st.floats(0, 20, allow_nan=False))


def exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines()
            if "_created" not in line]


@given(st.lists(st.tuples(st.sampled_from(["n1", "n2", "a b\"c"]), AMOUNTS), max_size=40))
def test_the_exposition_equals_prometheus_clients(observations):
    theirs_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
    theirs = Histogram("t_seconds", "Time.", ("node",), buckets=BUCKETS,
                       registry=theirs_registry)
    ours = LightHistogram("t_seconds", "Time.", ("node",), buckets=BUCKETS,
                          registry=ours_registry)
    for node, amount in observations:
        theirs.labels(node).observe(amount)
        ours.labels(node).observe(amount)
    assert sorted(exposition(ours_registry)) == sorted(exposition(theirs_registry))
