"""Laws of `miroir.proxy.content_encoding.BodyDecoder`: decoding in any chunking gives the body
back, and the limit is on the decoded size, with never more than limit+1 decoded bytes held."""

import gzip
import zlib

import brotli
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.errors import MeiliError
from miroir.proxy.content_encoding import BodyDecoder, encoding_of

ENCODERS = {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress, None: bytes}
bodies = st.one_of(st.binary(max_size=3000), st.text(max_size=200).map(lambda t: t.encode() * 20))


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:], strict=False)]


@given(body=bodies, encoding=st.sampled_from(sorted(ENCODERS, key=str)),
       cuts=st.lists(st.integers(min_value=0), max_size=8))
def test_decoding_in_any_chunking_gives_the_body_back(body, encoding, cuts):
    decoder = BodyDecoder(encoding, limit=len(body))
    sent = ENCODERS[encoding](body)
    out = b"".join(decoder.feed(chunk) for chunk in chunked(sent, cuts)) + decoder.finish()
    assert out == body


@given(body=bodies.filter(bool), encoding=st.sampled_from(sorted(ENCODERS, key=str)),
       cuts=st.lists(st.integers(min_value=0), max_size=8), data=st.data())
def test_a_body_over_the_limit_once_decoded_is_too_large_and_never_held_whole(
    body, encoding, cuts, data
):
    limit = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    decoder = BodyDecoder(encoding, limit)
    held = 0
    chunks = chunked(ENCODERS[encoding](body), cuts)
    # A plain chunk is counted whole (it was received whole); a decoder stops one byte past
    # the limit (brotli's output buffer may overshoot by its growth step).
    slack = {None: max(map(len, chunks)), "br": 1 << 16}.get(encoding, 1)
    try:
        for chunk in chunks:
            held += len(decoder.feed(chunk))
        held += len(decoder.finish())
    except MeiliError as error:
        assert error.code == "payload_too_large"
        assert decoder.size <= limit + slack
    else:
        raise AssertionError(f"{held} decoded bytes passed a limit of {limit}")


@given(st.sampled_from(["gzip", "GZIP", " deflate ", "Br", "br", "identity", "zstd",
                        "gzip, br", "x-gzip", ""]))
def test_one_token_ignoring_case_and_spaces_names_a_decoded_encoding(header):
    expected = header.strip().lower()
    assert encoding_of(header) == (expected if expected in ("gzip", "deflate", "br") else None)
