"""Compressed request bodies: `Content-Encoding` gzip, deflate and br, decoded as they arrive.

Theory of operation. Meilisearch (actix-web with `compress-gzip` and `compress-brotli`) wraps
every request body in a decoder chosen from the `Content-Encoding` header, and its size limit
counts the *decoded* bytes. Miroir does the same, chunk by chunk: `BodyDecoder.feed` returns
the decoded bytes of one received chunk, never more than the room left under the limit plus
one byte, so a small body that inflates to gigabytes (a "zip bomb") is refused with 413
`payload_too_large` after at most `limit + 1` decoded bytes, and memory never holds more.

The header is read the way actix reads it (`ContentEncoding::from_str`): one token, trimmed,
ASCII case ignored. `gzip`, `deflate` (zlib-wrapped, as actix's `ZlibDecoder`) and `br` are
decoded; anything else -- `identity`, `zstd` (a feature Meilisearch does not build),
`gzip, br` (actix decodes no chains), an unknown name -- leaves the body as it came, so the
route's own parser answers (a JSON route then says `malformed_payload`), exactly as
Meilisearch does. A stream the decoder cannot read is 400 `bad_request` "The provided payload
is incomplete and cannot be parsed" (actix's `PayloadError::Incomplete`, which Meilisearch
renders so). A truncated gzip stream is refused the same way at the end (flate2's gzip writer
checks the trailer); truncated zlib and brotli streams yield what was decoded (their writers do
not check), and the route's parser judges that.

Pure: bytes in, bytes out; no I/O, no framework. `miroir.proxy.bodies` and the search lane
drive it.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import brotli

from miroir.core.errors import MeiliError

DECODED_ENCODINGS = ("gzip", "deflate", "br")


def incomplete_payload() -> MeiliError:
    """Meilisearch's answer to a body its decoder cannot read."""
    return MeiliError("bad_request", "The provided payload is incomplete and cannot be parsed")


def too_large(limit: int) -> MeiliError:
    return MeiliError(
        "payload_too_large",
        f"The provided payload reached the size limit. The maximum accepted payload size is "
        f"{limit} B.",
    )


def encoding_of(header: str | None) -> str | None:
    """The encoding Miroir decodes for a `Content-Encoding` header value, or None (identity)."""
    if header is None:
        return None
    token = header.strip().lower()
    return token if token in DECODED_ENCODINGS else None


def encoding_in(headers: Mapping[str, str]) -> str | None:
    return encoding_of(headers.get("content-encoding"))


class BodyDecoder:
    """Decodes one body of `encoding` (gzip, deflate, br; None passes bytes through) under a
    limit on the decoded size. Feed every chunk, then call `finish`."""

    def __init__(self, encoding: str | None, limit: int) -> None:
        self.encoding = encoding
        self.limit = limit
        self.size = 0
        self._zlib = None
        self._brotli = None
        if encoding == "gzip":
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj(zlib.MAX_WBITS)
        elif encoding == "br":
            self._brotli = brotli.Decompressor()

    def _count(self, piece: bytes) -> bytes:
        self.size += len(piece)
        if self.size > self.limit:
            raise too_large(self.limit)
        return piece

    def feed(self, chunk: bytes) -> bytes:
        """The decoded bytes of `chunk`; MeiliError once the decoded body passes the limit or
        the stream cannot be read."""
        if self._zlib is not None:
            return self._feed_zlib(chunk)
        if self._brotli is not None:
            return self._feed_brotli(chunk)
        return self._count(chunk)

    def _feed_zlib(self, chunk: bytes) -> bytes:
        decoder = self._zlib
        assert decoder is not None
        pieces = []
        data = chunk
        while data and not decoder.eof:
            try:
                # One byte past the room left is enough to know the limit is passed.
                piece = decoder.decompress(data, self.limit - self.size + 1)
            except zlib.error:
                raise incomplete_payload() from None
            pieces.append(self._count(piece))
            data = decoder.unconsumed_tail
        return b"".join(pieces)

    def _feed_brotli(self, chunk: bytes) -> bytes:
        decoder = self._brotli
        assert decoder is not None
        pieces = []
        data = chunk
        try:
            while True:
                piece = decoder.process(data, output_buffer_limit=self.limit - self.size + 1)
                pieces.append(self._count(piece))
                data = b""
                if decoder.is_finished() or decoder.can_accept_more_data():
                    break
        except brotli.error:
            raise incomplete_payload() from None
        return b"".join(pieces)

    def finish(self) -> bytes:
        """What the decoder still holds once the body ended (see the module docstring)."""
        if self._zlib is not None:
            try:
                rest = self._count(self._zlib.flush())
            except zlib.error:
                raise incomplete_payload() from None
            if self.encoding == "gzip" and not self._zlib.eof:
                raise incomplete_payload()
            return rest
        return b""

