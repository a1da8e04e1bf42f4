"""Laws of `miroir.core.node_state.HealthCounter`: thresholds with hysteresis (issue 20).

The model below is the rule as docs/topology.md states it, written independently of the code:
a failure is a DOWN signal, a request's TIMED_OUT, or a probe's TIMED_OUT with no request
served since the previous probe; any success ends the streak; `unhealthy_threshold` failures in
a row make a node failed; only `recovery_threshold` probe successes in a row bring it back.
"""

from __future__ import annotations

from hypothesis import given, note
from hypothesis import strategies as st

from miroir.core.node_state import HealthCounter, NodeState, Signal, next_state

A, T, D = Signal.ANSWERED, Signal.TIMED_OUT, Signal.DOWN
signals = st.lists(st.tuples(st.sampled_from([A, T, D]), st.booleans()), max_size=60)


def feed(counter, state, signal, probe):
    event = counter.record(state, signal, probe=probe)
    return state if event is None else next_state("n", state, event)


@given(st.integers(1, 5), st.integers(1, 5), signals)
def test_states_follow_the_documented_rule(unhealthy, recovery, stream):
    counter = HealthCounter(unhealthy, recovery)
    state = NodeState.HEALTHY
    failures = probe_successes = 0
    served_since_probe = False
    failed = False
    for signal, probe in stream:
        # The model.
        if failed:
            if probe and signal is A:
                probe_successes += 1
                if probe_successes >= recovery:
                    failed, failures, probe_successes = False, 0, 0
            elif probe or signal is not A:
                probe_successes = 0
            served_since_probe = False
        elif signal is A:
            failures = 0
            served_since_probe = not probe
        elif probe and signal is T and served_since_probe:
            served_since_probe = False  # busy, not failing
        else:
            failures += 1
            served_since_probe = False
            failed = failures >= unhealthy
        state = feed(counter, state, signal, probe)
        note(f"{'probe' if probe else 'request'} {signal.value} -> {state.value}")
        expected = (NodeState.FAILED if failed
                    else NodeState.DEGRADED if failures else NodeState.HEALTHY)
        assert state is expected


@given(st.integers(1, 5), st.lists(st.sampled_from([A, T]), min_size=1, max_size=40))
def test_a_slow_probe_while_requests_succeed_never_fails_a_node(unhealthy, probes):
    """A node that serves a request between every two probes is never failed nor degraded,
    however late its probes answer."""
    counter = HealthCounter(unhealthy, 2)
    state = NodeState.HEALTHY
    for probe_signal in probes:
        state = feed(counter, state, A, False)
        state = feed(counter, state, probe_signal, True)
        assert state is NodeState.HEALTHY


@given(st.integers(1, 5), st.lists(st.tuples(st.sampled_from([T, D]), st.booleans()),
                                   min_size=1, max_size=10),
       st.sampled_from([NodeState.ACTIVE, NodeState.HEALTHY, NodeState.DEGRADED]))
def test_threshold_failures_in_a_row_fail_any_in_service_node(unhealthy, kinds, start):
    counter = HealthCounter(unhealthy, 2)
    state = start
    stream = (kinds * unhealthy)[:unhealthy]
    for signal, probe in stream:
        state = feed(counter, state, signal, probe)
    assert state is NodeState.FAILED


@given(st.integers(1, 5), st.integers(0, 30))
def test_served_requests_never_bring_a_failed_node_back(recovery, served):
    counter = HealthCounter(1, recovery)
    state = feed(counter, NodeState.HEALTHY, D, True)
    assert state is NodeState.FAILED
    for _ in range(served):
        state = feed(counter, state, A, False)
    assert state is NodeState.FAILED
    for _ in range(recovery):
        state = feed(counter, state, A, True)
    assert state is NodeState.HEALTHY
