"""Laws of the devnode's text formats: dates, durations, CSV and NDJSON payloads."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from miroir.core.errors import MeiliError
from miroir.core.task_params import parse_filter_date
from miroir.devnode.timefmt import iso_duration, rfc3339
from miroir.meili.payloads import CSV, JSON, NDJSON, check_content_type, parse_documents

instants = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(instants)
@example(datetime(2024, 8, 8, 17, 5, 55, 500000, tzinfo=UTC))
@example(datetime(2024, 8, 8, 17, 5, 55, tzinfo=UTC))
def test_rfc3339_round_trips_with_a_fixed_fraction(instant):
    text = rfc3339(instant)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text)
    assert datetime.fromisoformat(text) == instant
    assert parse_filter_date(text, after=True) == _nanos(instant)


def _nanos(instant: datetime) -> int:
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


_DURATION = re.compile(r"P(?:(\d+)D)?(?:T(\d+)(?:\.(\d{3}|\d{6}))?S)?")


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))
@example(timedelta(0))
@example(timedelta(days=1))
@example(timedelta(seconds=90))
@example(timedelta(microseconds=9330))
def test_duration_reads_back_as_the_same_span(span):
    text = iso_duration(span)
    match = _DURATION.fullmatch(text)
    assert match and text != "P", text
    days, seconds, fraction = match.groups()
    parsed = timedelta(days=int(days or 0), seconds=int(seconds or 0))
    if fraction:
        parsed += timedelta(microseconds=int(fraction.ljust(6, "0")))
    assert parsed == span
    assert int(seconds or 0) < 86400  # seconds are counted within the day, never H or M


def test_duration_examples_from_the_reference():
    assert iso_duration(timedelta(milliseconds=11)) == "PT0.011S"
    assert iso_duration(timedelta(microseconds=9330)) == "PT0.009330S"
    assert iso_duration(timedelta(days=1)) == "P1D"
    assert iso_duration(timedelta(0)) == "PT0S"
    assert iso_duration(timedelta(seconds=-1)) is None


def test_bare_filter_dates():
    day = datetime(2024, 1, 1, tzinfo=UTC)
    assert parse_filter_date("2024-01-01", after=False) == _nanos(day)
    assert parse_filter_date("2024-01-01", after=True) == _nanos(day + timedelta(days=1))
    for bad in ("2024-13-01", "yesterday", "2024-01-01T00:00:00", ""):
        assert parse_filter_date(bad, after=False) is None


cells = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), min_size=1),
    st.integers(-(2**53), 2**53),
    st.booleans(),
    st.none(),
)


@given(st.lists(st.tuples(cells, cells, cells), min_size=1, max_size=5))
@example([("", 0, False)])
def test_csv_typed_headers_read_back_the_values(rows):
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["s:string", "n:number", "b:boolean"])
    expected = []
    for text, number, flag in rows:
        text = text if isinstance(text, str) else None
        number = number if isinstance(number, int) and not isinstance(number, bool) else None
        flag = flag if isinstance(flag, bool) else None
        writer.writerow(
            [
                "" if text is None else text,
                "" if number is None else number,
                "" if flag is None else str(flag).lower(),
            ]
        )
        expected.append({"s": text or None, "n": number, "b": flag})
    assert parse_documents(buffer.getvalue().encode(), CSV) == expected


def test_csv_header_suffixes_and_delimiter():
    body = b"id;price:number;tag:unknown\n1;2.5;x\n"
    assert parse_documents(body, CSV, ";") == [{"id": "1", "price": 2.5, "tag:unknown": "x"}]


@given(
    st.lists(
        st.dictionaries(
            st.text(max_size=5), st.integers(-(2**63), 2**64 - 1) | st.text(), max_size=3
        ),
        max_size=5,
    )
)
def test_ndjson_and_json_agree(documents):
    if not documents:
        return
    as_json = orjson.dumps(documents)
    as_ndjson = b"\n".join(orjson.dumps(d) for d in documents)
    assert parse_documents(as_json, JSON) == parse_documents(as_ndjson, NDJSON) == documents


@pytest.mark.parametrize(
    ("body", "kind", "code"),
    [
        (b"", JSON, "missing_payload"),
        (b"[1]", JSON, "malformed_payload"),
        (b"{", JSON, "malformed_payload"),
        (b'"text"', JSON, "malformed_payload"),
        (b'{"a":1}\n[2]', NDJSON, "malformed_payload"),
        (b"a:number\nx\n", CSV, "malformed_payload"),
        (b"a:boolean\nyes\n", CSV, "malformed_payload"),
        (b"a,b\n1\n", CSV, "malformed_payload"),
    ],
)
def test_malformed_payloads(body, kind, code):
    with pytest.raises(MeiliError) as caught:
        parse_documents(body, kind)
    assert caught.value.code == code


def test_content_types():
    assert check_content_type("application/json; charset=utf-8", (JSON,)) == JSON
    for header, code in ((None, "missing_content_type"), ("text/plain", "invalid_content_type")):
        with pytest.raises(MeiliError) as caught:
            check_content_type(header, (JSON, NDJSON, CSV))
        assert (caught.value.code, caught.value.status) == (code, 415)
