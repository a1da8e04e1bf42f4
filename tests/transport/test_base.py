"""The failure taxonomy: one classification rule, one exception per kind."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miroir.transport import (
    FailureKind,
    NodeResponse,
    Outcome,
    TransportError,
    classify,
    error_for_kind,
    failure_kind,
    is_node_failure,
)

RAISED_KINDS = [kind for kind in FailureKind if kind is not FailureKind.NODE_ERROR]


@given(st.integers(100, 599))
def test_only_5xx_statuses_count_as_node_failures(status):
    response = NodeResponse("n", status, (), b"")
    assert is_node_failure(response) == (status >= 500)
    assert (classify(response) is Outcome.OK) == (200 <= status < 300)
    assert (failure_kind(response) is FailureKind.NODE_ERROR) == (status >= 500)


@pytest.mark.parametrize("kind", RAISED_KINDS)
def test_every_raised_kind_has_its_own_exception_and_is_a_node_failure(kind):
    error = error_for_kind(kind, "n1", "boom")
    assert isinstance(error, TransportError) and error.kind is kind and error.node_id == "n1"
    assert classify(error) is Outcome.FAILED and failure_kind(error) is kind
    assert len({type(error_for_kind(k, "n", "")) for k in RAISED_KINDS}) == len(RAISED_KINDS)


def test_node_error_is_never_raised():
    with pytest.raises(ValueError):
        error_for_kind(FailureKind.NODE_ERROR, "n1", "")


def test_json_is_parsed_lazily_once_and_headers_are_case_insensitive():
    response = NodeResponse("n", 200, [("content-type", "application/json")], b'{"a": [1]}')
    assert response.json() is response.json() and response.json() == {"a": [1]}
    assert response.header("Content-Type") == "application/json"
    assert response.header("x-missing", "d") == "d"
