"""The app's background work and node credentials, and the `_miroir_shard` settings laws."""

import trio
from hypothesis import example, given
from hypothesis import strategies as st

from miroir.cluster.broadcast import hide_shard_field, protect_settings_patch
from miroir.core.routing import SHARD_FIELD
from tests.proxy.harness import running_proxy


async def test_nodes_are_called_with_the_node_master_key_not_the_clients():
    async with running_proxy(nodes=2, master_key="client-key", node_master_key="node-key") as h:
        headers = {"Authorization": "Bearer client-key"}
        status, body, _ = await h.send("POST", "/indexes/m/documents", [{"id": 1}], headers=headers)
        assert status == 202
        assert (await h.wait_task(body["taskUid"], headers=headers))["status"] == "succeeded"


async def test_the_health_checker_runs_in_the_app_and_marks_a_dead_node_failed():
    async with running_proxy(nodes=2, health_interval_ms=10) as h:
        with trio.fail_after(10):
            while h.cluster.state_of("n0").value != "healthy":
                await trio.sleep(0.01)
        h.transport.down.add("n0")
        with trio.fail_after(10):
            while h.cluster.state_of("n0").value != "failed":
                await trio.sleep(0.01)
        topology = (await h.send("GET", "/_miroir/topology"))[1]
        assert {n["id"]: n["state"] for n in topology["nodes"]} == {"n0": "failed", "n1": "healthy"}


filterable_item = st.one_of(
    st.sampled_from(["genre", "year", SHARD_FIELD, "_miroir_other"]),
    st.builds(
        lambda patterns: {"attributePatterns": patterns},
        st.lists(st.sampled_from(["genre", SHARD_FIELD, "a*"]), min_size=1, max_size=3),
    ),
)


def mentions_shard(items):
    return any(
        item == SHARD_FIELD
        or (isinstance(item, dict) and SHARD_FIELD in item["attributePatterns"])
        for item in items
    )


@given(st.one_of(st.none(), st.lists(filterable_item, max_size=5)))
@example(None)
@example([])
@example([{"attributePatterns": [SHARD_FIELD]}])
def test_what_a_node_receives_always_keeps_the_shard_field_filterable(filterable):
    sent = protect_settings_patch({"filterableAttributes": filterable})["filterableAttributes"]
    assert mentions_shard(sent)
    # Whatever the client sent is still there, in its order.
    assert sent[: len(filterable or [])] == (filterable or [])


@given(st.lists(filterable_item, max_size=5))
@example([SHARD_FIELD, "genre"])
@example([{"attributePatterns": ["genre", SHARD_FIELD]}])
def test_reads_never_show_the_shard_field_and_keep_everything_else(filterable):
    shown = hide_shard_field(filterable)
    assert not mentions_shard(shown)
    without = [
        item for item in filterable if item != SHARD_FIELD
    ]
    # Only the shard field is taken away: every other name survives in order.
    def names(items):
        out = []
        for item in items:
            out.extend([item] if isinstance(item, str) else item["attributePatterns"])
        return [n for n in out if n != SHARD_FIELD]

    assert names(shown) == names(without)


@given(st.lists(st.sampled_from(["genre", "year", "a*"]), max_size=4, unique=True))
def test_a_client_list_round_trips_through_a_node(filterable):
    sent = protect_settings_patch({"filterableAttributes": filterable})["filterableAttributes"]
    assert hide_shard_field(sent) == filterable
