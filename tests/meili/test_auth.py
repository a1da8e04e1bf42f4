"""The master-key rule (`miroir.meili.auth.check_bearer`) the proxy, devnode and simulator share."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.errors import MeiliError
from miroir.meili.auth import check_bearer

keys = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12)


@given(keys, keys)
def test_only_the_master_key_as_a_bearer_token_passes(key, given_key):
    header = f"Bearer {given_key}"
    if given_key == key:
        check_bearer(header, key.encode())
        check_bearer(header.encode(), key.encode())  # the devnode hands over raw header bytes
    else:
        with pytest.raises(MeiliError) as raised:
            check_bearer(header, key.encode())
        assert (raised.value.code, raised.value.status) == ("invalid_api_key", 403)
        assert raised.value.message == "The provided API key is invalid."  # no key echoed


@pytest.mark.parametrize("header", [None, "", "Basic abc", "bearer abc", "abc"])
def test_no_bearer_header_is_a_missing_authorization(header):
    with pytest.raises(MeiliError) as raised:
        check_bearer(header, b"abc")
    assert (raised.value.code, raised.value.status) == ("missing_authorization_header", 401)


@given(keys)
def test_bearer_token_gives_the_token_that_check_bearer_compares(token):
    from miroir.meili.auth import bearer_token

    assert bearer_token(f"Bearer {token}") == token
    assert bearer_token(f"Bearer {token}".encode()) == token
    check_bearer(f"Bearer {token}", bearer_token(f"Bearer {token}").encode())


@pytest.mark.parametrize(("header", "code"), [
    (None, "missing_authorization_header"), ("", "missing_authorization_header"),
    ("Basic abc", "missing_authorization_header"), ("bearer abc", "missing_authorization_header"),
    ("Bearer", "invalid_api_key"),
])
def test_bearer_token_refuses_as_meilisearch_does(header, code):
    from miroir.meili.auth import bearer_token

    with pytest.raises(MeiliError) as raised:
        bearer_token(header)
    assert raised.value.code == code
