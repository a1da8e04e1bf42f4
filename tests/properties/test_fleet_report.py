"""Laws of the operator reports (`miroir.core.fleet_report`): balance, settings differences and a
shard's verdict, for any counts, digests and settings."""

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from miroir.core.fleet_report import group_balance, settings_differences, shard_verdict

counts = st.integers(0, 10_000)
node_ids = st.lists(st.text("abcdef0123", min_size=1, max_size=4), min_size=1, max_size=8,
                    unique=True).map(sorted)


@st.composite
def fleets(draw):
    """id -> {replicaGroup, numberOfDocuments}, every group with at least one node."""
    names = draw(node_ids)
    groups = draw(st.integers(1, len(names)))
    return {name: {"replicaGroup": i % groups, "numberOfDocuments": draw(counts)}
            for i, name in enumerate(names)}, groups


@given(fleets())
def test_skew_is_the_fullest_node_over_the_mean_never_below_one(fleet):
    nodes, groups = fleet
    for row in group_balance(nodes, groups):
        held = [n["numberOfDocuments"] for n in nodes.values() if n["replicaGroup"] == row["group"]]
        assert row["numberOfDocuments"] == sum(held)
        assert row["maxNodeDocuments"] == max(held)
        if sum(held) == 0:
            assert row["skew"] is None
        else:
            assert row["skew"] >= 1.0
            assert abs(row["skew"] - max(held) / (sum(held) / len(held))) <= 0.0005  # 3 places
            if len(set(held)) == 1:
                assert row["skew"] == 1.0


@given(fleets(), st.data())
def test_a_silent_node_leaves_its_group_total_unknown_but_not_the_skew(fleet, data):
    nodes, groups = fleet
    silent = data.draw(st.sampled_from(sorted(nodes)))
    nodes = {**nodes, silent: {**nodes[silent], "numberOfDocuments": None}}
    row = group_balance(nodes, groups)[nodes[silent]["replicaGroup"]]
    assert row["numberOfDocuments"] is None
    known = [n["numberOfDocuments"] for n in nodes.values()
             if n["replicaGroup"] == row["group"] and n["numberOfDocuments"] is not None]
    assert row["maxNodeDocuments"] == (max(known) if known else None)


settings_values = st.sampled_from([["*"], ["title"], ["title", "year"], None, 5, {"a": 1}])
settings = st.dictionaries(st.sampled_from(["searchableAttributes", "rankingRules", "stopWords",
                                            "distinctAttribute"]), settings_values, min_size=1)


@st.composite
def settings_views(draw):
    names = draw(node_ids)
    nodes = []
    for name in names:
        answered = draw(st.booleans()) or name == names[0]
        held = draw(settings) if answered else None
        nodes.append({"id": name, "answered": answered, "settings": held,
                      "digest": repr(sorted(held.items())) if answered else None})
    committed = None
    if draw(st.booleans()):
        chosen = draw(settings)
        committed = {"digest": repr(sorted(chosen.items())), "settings": chosen}
    return nodes, committed


@given(settings_views())
def test_a_node_differs_exactly_when_its_settings_are_not_the_reference(view):
    nodes, committed = view
    found = settings_differences(nodes, committed)
    listed = {d["node"]: d for d in found["differing"]}
    answered = [n for n in nodes if n["answered"]]
    if committed is not None:
        assert found["reference"] == "committed"
        reference = committed["settings"]
    else:
        assert found["reference"] == "majority"
        tally = Counter(n["digest"] for n in answered)
        holders = [n for n in answered if n["id"] not in listed]
        # the reference is held by at least as many nodes as any other version
        assert holders and len(holders) == max(tally.values())
        reference = holders[0]["settings"]
    for node in nodes:
        if not node["answered"]:
            assert listed[node["id"]] == {"node": node["id"], "keys": [], "answered": False}
        elif node["settings"] == reference:
            assert node["id"] not in listed
        else:
            keys = listed[node["id"]]["keys"]
            absent = object()
            assert keys and {k for k in set(reference) | set(node["settings"])
                             if reference.get(k, absent) != node["settings"].get(k, absent)
                             } == set(keys)


owners = st.lists(st.text("nxyz", min_size=1, max_size=3), min_size=1, max_size=5, unique=True)
documents = st.dictionaries(st.text("0123456789", min_size=1, max_size=3),
                            st.integers(0, 3), max_size=12)


@given(owners, documents)
def test_owners_holding_the_same_documents_agree(names, held):
    verdict = shard_verdict({n: len(held) for n in names}, {n: dict(held) for n in names},
                            sorted(held))
    assert verdict == (True, [])


@given(owners.filter(lambda n: len(n) > 1), documents.filter(bool), st.data())
def test_one_changed_or_missing_document_on_one_owner_is_named(names, held, data):
    victim = data.draw(st.sampled_from(names))
    doc = data.draw(st.sampled_from(sorted(held)))
    missing = data.draw(st.booleans())
    changed = {k: v for k, v in held.items() if not (missing and k == doc)}
    if not missing:
        changed[doc] = held[doc] + 1
    digests = {n: (changed if n == victim else dict(held)) for n in names}
    counts = {n: len(digests[n]) for n in names}
    agree, differing = shard_verdict(counts, digests, sorted(held))
    assert differing == [doc]
    assert agree is not missing


@given(owners, st.lists(st.one_of(st.none(), counts), min_size=1, max_size=5))
def test_counts_agree_when_every_answered_count_is_equal(names, seen):
    given_counts = dict(zip(names, seen, strict=False))
    agree, _ = shard_verdict(given_counts, {}, [])
    assert agree == (len({c for c in given_counts.values() if c is not None}) <= 1)
