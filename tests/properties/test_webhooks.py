"""Laws of `miroir.core.webhooks`: a PATCH changes exactly the headers it names, a shown webhook
never carries its Authorization secret, retries back off without bound violations, and the
delivery body is the tasks' NDJSON."""

import gzip

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.errors import MeiliError
from miroir.core.webhooks import (
    MAX_HEADERS,
    UNSET,
    Webhook,
    WebhookChange,
    delivery_body,
    patched,
    render_webhook,
    retry_delays,
)

names = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=6)
values = st.text("abcdefghijklmnopqrstuvwxyz0123456789 ", max_size=40)
header_maps = st.dictionaries(names, values, max_size=8)
UUID = "6f1c2b4e-0000-4000-8000-000000000001"


@given(current=header_maps, change=st.dictionaries(names, st.none() | values, max_size=8),
       url=st.sampled_from([UNSET, "https://new.example/h"]))
def test_a_patch_sets_and_removes_exactly_the_headers_it_names(current, change, url):
    before = Webhook(UUID, "https://old.example/h", current)
    after = patched(before, WebhookChange(url, change))
    for name, value in change.items():
        if value is None:
            assert name not in after.headers
        else:
            assert after.headers[name] == value
    for name in set(current) - set(change):
        assert after.headers[name] == current[name]
    assert after.url == (before.url if url is UNSET else url)


@given(current=header_maps)
def test_headers_null_clears_them_and_url_null_is_refused(current):
    before = Webhook(UUID, "https://old.example/h", current)
    assert patched(before, WebhookChange(UNSET, None)).headers == {}
    with pytest.raises(MeiliError) as refused:
        patched(before, WebhookChange(None, UNSET))
    assert refused.value.code == "invalid_webhook_url"


def test_more_than_the_header_limit_is_refused():
    before = Webhook(UUID, "https://old.example/h", {f"x{i}": "v" for i in range(MAX_HEADERS)})
    with pytest.raises(MeiliError) as refused:
        patched(before, WebhookChange(UNSET, {"one-more": "v"}))
    assert refused.value.code == "invalid_webhook_headers"


@given(secret=st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=60),
       bearer=st.booleans(), name=st.sampled_from(["Authorization", "authorization", "AUTHORIZATION"]))
def test_a_shown_webhook_never_carries_its_authorization_secret(secret, bearer, name):
    value = f"Bearer {secret}" if bearer else secret
    shown = render_webhook(Webhook(UUID, "https://x.example/h", {name: value}))["headers"][name]
    prefix = "Bearer " if bearer else ""
    assert shown.startswith(prefix) and shown.endswith("...")
    kept = shown[len(prefix):].rstrip(".").rstrip("X")
    assert len(kept) <= 5 and (len(secret) < 10 or len(kept) < len(secret) // 2 + 1)


@given(attempts=st.integers(0, 20), first=st.floats(0.001, 5), cap=st.floats(1, 60))
def test_retry_delays_grow_and_stay_under_the_cap(attempts, first, cap):
    delays = retry_delays(attempts, first, cap_s=cap)
    assert len(delays) == max(0, attempts - 1)
    assert all(a <= b for a, b in zip(delays, delays[1:], strict=False))
    assert all(0 < d <= max(cap, first) for d in delays)


@given(st.lists(st.fixed_dictionaries({"uid": st.integers(0, 100), "status": values}),
                max_size=5))
def test_the_delivery_body_is_one_task_object_per_line(tasks):
    lines = [line for line in gzip.decompress(delivery_body(tasks)).split(b"\n") if line]
    assert [orjson.loads(line) for line in lines] == tasks
