"""Laws of miroir.core.keys: key values as Meilisearch derives them, index patterns, action
expansion, the authorisation decision, the /keys payload rules, and tenant search rules."""

from __future__ import annotations

import hashlib
import hmac
import string
import uuid

from hypothesis import assume, given
from hypothesis import strategies as st

from miroir.core.errors import MeiliError
from miroir.core.filters import matches
from miroir.core.filters_parser import parse_filter_json
from miroir.core.keys import (
    ACTIONS,
    DENY_INDEX_SCOPE,
    READ_ACTIONS,
    ROUTE_ACTIONS,
    ApiKey,
    SearchRules,
    apply_patch,
    derive_key,
    expand_actions,
    fuse_filters,
    parse_create,
    parse_patch,
    pattern_matches,
    route_need,
    valid_pattern,
)

T0 = 1_764_000_000_000
index_uids = st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=12)
patterns = st.one_of(st.just("*"), index_uids, index_uids.map(lambda uid: uid + "*"))
actions = st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=5, unique=True)
uids = st.uuids(version=4).map(str)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8,
)


def key_with(actions_, indexes, expires_at=None) -> ApiKey:
    return ApiKey(uid=str(uuid.uuid4()), name=None, description=None, actions=tuple(actions_),
                  indexes=tuple(indexes), expires_at=expires_at, created_at=T0, updated_at=T0)


# ---- key values


def test_key_values_match_meilisearchs_own_test_vector():
    # crates/meilisearch/tests/auth/api_keys.rs, master key "MASTER_KEY".
    assert derive_key("4bc0887a-0e41-4f3b-935d-0c451dcee9c8", "MASTER_KEY") == (
        "d9e776b8412f1db6974c9a5556b961c3559440b6588216f4ea5d9ed49f7c8f3c")


@given(st.uuids(), st.text(min_size=1, max_size=40))
def test_a_key_value_is_the_hmac_of_the_lowercase_hyphenated_uid(uid, master):
    expected = hmac.new(master.encode(), str(uid).encode(), hashlib.sha256).hexdigest()
    assert derive_key(str(uid), master) == expected
    assert derive_key(str(uid).upper(), master) == expected
    assert derive_key(uid.hex, master) == expected


@given(st.uuids(), st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_another_master_key_gives_another_value(uid, first, second):
    assume(first != second)
    assert derive_key(str(uid), first) != derive_key(str(uid), second)


# ---- index patterns


@given(index_uids, index_uids)
def test_a_prefix_pattern_matches_exactly_the_uids_that_start_with_it(prefix, uid):
    assert pattern_matches(prefix + "*", uid) == uid.startswith(prefix)
    assert pattern_matches(prefix, uid) == (prefix == uid)
    assert pattern_matches("*", uid)


@given(patterns)
def test_generated_patterns_are_valid(pattern):
    assert valid_pattern(pattern)


@given(st.text(max_size=10))
def test_a_pattern_with_a_character_outside_the_uid_alphabet_is_invalid(text):
    assume(any(c not in string.ascii_letters + string.digits + "_-*" for c in text))
    assert not valid_pattern(text)


# ---- actions


@given(actions, actions)
def test_expansion_is_monotone(first, second):
    assert expand_actions(first) <= expand_actions(first + second)


def test_star_grants_every_concrete_action_and_star_get_only_reads():
    everything = expand_actions(["*"])
    assert set(ACTIONS) - {"*.get"} <= everything
    assert expand_actions(["*.get"]) == READ_ACTIONS
    assert "keys.get" not in READ_ACTIONS  # privilege escalation, as in Meilisearch
    assert expand_actions(["documents.*"]) == {"documents.add", "documents.get",
                                               "documents.delete"}


@given(actions, st.lists(patterns, min_size=1, max_size=3), index_uids,
       st.sampled_from(ACTIONS), st.integers(-10, 10))
def test_a_key_allows_an_action_on_an_index_iff_it_holds_both_and_has_not_expired(
        held, indexes, uid, action, expiry_offset):
    key = key_with(held, indexes, expires_at=T0 + expiry_offset)
    allowed = key.allows(action, uid, T0)
    expected = (action in expand_actions(held)
                and any(pattern_matches(p, uid) for p in indexes)
                and T0 < T0 + expiry_offset)
    assert allowed == expected


# ---- /keys payloads


@given(actions, st.lists(patterns, min_size=1, max_size=3), uids,
       st.none() | st.text(max_size=10), st.none() | st.text(max_size=10))
def test_a_valid_create_body_gives_that_key(held, indexes, uid, name, description):
    body = {"actions": held, "indexes": indexes, "expiresAt": None, "uid": uid, "name": name,
            "description": description}
    scoped = "*" not in indexes
    if scoped and any(action in DENY_INDEX_SCOPE for action in held):
        try:
            parse_create(body, now_ms=T0, new_uid=str(uuid.uuid4()))
        except MeiliError as error:
            assert error.code == "index_scoped_api_key_with_global_action"
        else:
            raise AssertionError("an index-scoped key with a global action was accepted")
        return
    key = parse_create(body, now_ms=T0, new_uid=str(uuid.uuid4()))
    assert (key.uid, key.actions, key.indexes, key.name, key.description) == (
        uid, tuple(held), tuple(indexes), name, description)
    assert ApiKey.from_record(key.to_record()) == key
    assert key.view("v")["key"] == "v"


@given(json_values)
def test_any_create_body_is_a_key_or_a_meilisearch_error(body):
    try:
        parse_create(body, now_ms=T0, new_uid=str(uuid.uuid4()))
    except MeiliError as error:
        assert error.code == "bad_request" or "api_key" in error.code


@given(st.dictionaries(st.sampled_from(["name", "description", "uid", "actions", "x"]),
                       json_values, max_size=3))
def test_a_patch_changes_only_name_and_description(body):
    key = key_with(["search"], ["*"])
    try:
        changes = parse_patch(body)
    except MeiliError as error:
        assert set(body) - {"name", "description"} or any(
            not (value is None or isinstance(value, str)) for value in body.values())
        assert error.status == 400
        return
    patched = apply_patch(key, changes, T0 + 1)
    assert (patched.uid, patched.actions, patched.indexes, patched.expires_at,
            patched.created_at) == (key.uid, key.actions, key.indexes, key.expires_at,
                                    key.created_at)
    assert patched.updated_at == T0 + 1


# ---- tenant search rules

FILTERS = ["tenant = a", "year > 1991", "genre = drama OR year = 1990", "NOT genre = action"]
docs = st.fixed_dictionaries({
    "genre": st.sampled_from(["action", "drama"]), "year": st.integers(1990, 1993),
    "tenant": st.sampled_from(["a", "b"]),
})
filter_values = st.one_of(st.none(), st.sampled_from(FILTERS),
                          st.lists(st.sampled_from(FILTERS), min_size=1, max_size=2))


@given(filter_values, filter_values, docs)
def test_fused_filters_match_exactly_the_documents_both_filters_match(query, rule, doc):
    fused = fuse_filters(query, rule)

    def holds(value) -> bool:
        return value is None or matches(parse_filter_json(value), doc)

    assert holds(fused) == (holds(query) and holds(rule))


@given(index_uids, index_uids)
def test_the_most_specific_rule_applies(prefix, rest):
    uid = prefix + rest
    rules = SearchRules((("*", "any"), (prefix + "*", "prefix"), (uid, "exact")))
    assert rules.filter_for(uid) == "exact"
    assert SearchRules((("*", "any"), (prefix + "*", "prefix"))).filter_for(uid) == "prefix"
    assert SearchRules((("*", "any"),)).filter_for(uid) == "any"


# ---- routes


@given(index_uids)
def test_every_route_names_its_action_and_index(uid):
    for (method, template), action in ROUTE_ACTIONS.items():
        path = (template.replace("{uid}", uid).replace("{doc}", "d").replace("{setting}", "s")
                .replace("{task}", "1").replace("{batch}", "1").replace("{key}", "k"))
        need = route_need(method, path)
        assert need.action == action, (method, path)
        assert need.index_uid == (uid if "{uid}" in template else None)
