"""The fake keeps the transport contract: deadlines in trio time, scripted order, a call log."""

import pytest
import trio
import trio.testing

from miroir.transport import (
    FailureKind,
    NodeReset,
    NodeTimeout,
    Outcome,
    Transport,
    UnknownNode,
    classify,
)
from miroir.transport.fake import Answer, Fail, FakeTransport, Hang


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


def test_fake_satisfies_the_protocol():
    assert isinstance(FakeTransport(), Transport)


async def test_script_plays_in_order_and_the_last_behaviour_repeats(autojump_clock):
    fake = FakeTransport()
    fake.script("n1", Fail(FailureKind.RESET), Answer(202, json={"taskUid": 7}))
    with pytest.raises(NodeReset):
        await fake.request("n1", "POST", "/x", body=b"{}", deadline=trio.current_time() + 1)
    for _ in range(2):
        response = await fake.request("n1", "GET", "/x", deadline=trio.current_time() + 1)
        assert response.status == 202 and response.json() == {"taskUid": 7}
    assert [call.outcome for call in fake.calls] == ["reset", "answered", "answered"]


async def test_an_answer_later_than_the_deadline_is_a_timeout_at_the_deadline(autojump_clock):
    fake = FakeTransport()
    fake.script("slow", Answer(200, delay=5.0))
    fake.script("hung", Hang())
    for node in ("slow", "hung"):
        start = trio.current_time()
        with pytest.raises(NodeTimeout):
            await fake.request(node, "GET", "/", deadline=start + 2.0)
        assert trio.current_time() == start + 2.0
    assert [call.ended_at - call.started_at for call in fake.calls] == [2.0, 2.0]


async def test_delay_within_the_deadline_answers_after_the_delay(autojump_clock):
    fake = FakeTransport()
    fake.script("n1", Answer(500, body=b"oops", delay=0.25))
    start = trio.current_time()
    response = await fake.request("n1", "GET", "/", deadline=start + 1)
    assert trio.current_time() == start + 0.25
    assert classify(response) is Outcome.FAILED


async def test_cancelled_calls_are_recorded_as_cancelled(autojump_clock):
    fake = FakeTransport()
    fake.script("n1", Hang())
    with trio.move_on_after(1):
        await fake.request("n1", "GET", "/", deadline=trio.current_time() + 10)
    assert fake.calls[0].outcome == "cancelled" and not fake.in_flight()


async def test_unscripted_node_is_unknown_unless_a_default_is_given(autojump_clock):
    with pytest.raises(UnknownNode) as caught:
        await FakeTransport().request("ghost", "GET", "/", deadline=trio.current_time() + 1)
    assert caught.value.kind is FailureKind.REFUSED
    fake = FakeTransport(default=Answer(204))
    assert (await fake.request("any", "GET", "/", deadline=trio.current_time() + 1)).status == 204


async def test_handler_sees_the_call(autojump_clock):
    fake = FakeTransport()
    fake.handle(
        "n1", lambda call: Answer(200, json=call.json()) if call.method == "POST" else Hang()
    )
    response = await fake.request(
        "n1", "POST", "/e", body=b'{"a":1}', deadline=trio.current_time() + 1
    )
    assert response.json() == {"a": 1}
