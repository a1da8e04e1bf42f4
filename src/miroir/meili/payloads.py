"""Request bodies: the JSON body of a JSON route, and JSON, NDJSON and CSV document payloads.

Owns the content types a route accepts and how each body is read, with Meilisearch's
`malformed_payload` / `missing_payload` / content-type errors. Parsing happens at request time
(Meilisearch rejects a malformed payload with a 400 before enqueuing anything); ids and primary
keys are the task's business, not this module's.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson

from miroir.core.errors import MeiliError

JSON = "application/json"
NDJSON = "application/x-ndjson"
CSV = "text/csv"
DOCUMENT_CONTENT_TYPES = (JSON, NDJSON, CSV)
_FORMAT_NAMES = {JSON: "json", NDJSON: "ndjson", CSV: "csv"}


def media_type(content_type: str | None) -> str | None:
    """`application/json; charset=utf-8` -> `application/json`."""
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower()


def accepted_list(accepted: tuple[str, ...]) -> str:
    return ", ".join(f"`{name}`" for name in accepted)


def check_content_type(content_type: str | None, accepted: tuple[str, ...]) -> str:
    """The media type, if it is one of `accepted`; otherwise the 415 Meilisearch answers."""
    kind = media_type(content_type)
    if kind is None or kind == "":
        raise MeiliError(
            "missing_content_type",
            "A Content-Type header is missing. Accepted values for the Content-Type header are: "
            + accepted_list(accepted),
        )
    if kind not in accepted:
        raise MeiliError(
            "invalid_content_type",
            f"The Content-Type `{content_type}` is invalid. Accepted values for the Content-Type "
            "header are: " + accepted_list(accepted),
        )
    return kind


def malformed(format_name: str, detail: str) -> MeiliError:
    return MeiliError(
        "malformed_payload", f"The `{format_name}` payload provided is malformed. `{detail}`."
    )


def parse_json(body: bytes) -> Any:
    """The JSON body of a JSON-only route (its content type already checked). Its malformed
    message is not a document payload's: no backticks around `json` (Meilisearch's
    `PayloadError::Json`)."""
    if not body.strip():
        raise MeiliError("missing_payload", "A json payload is missing.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise MeiliError(
            "malformed_payload", f"The json payload provided is malformed. `{error}`."
        ) from None


def parse_documents(body: bytes, kind: str, csv_delimiter: str = ",") -> list[dict[str, Any]]:
    """The documents in a body of media type `kind` (one of DOCUMENT_CONTENT_TYPES)."""
    if not body.strip():
        raise MeiliError("missing_payload", f"A {_FORMAT_NAMES[kind]} payload is missing.")
    if kind == JSON:
        return _parse_json(body)
    if kind == NDJSON:
        return _parse_ndjson(body)
    return _parse_csv(body, csv_delimiter)


def _parse_json(body: bytes) -> list[dict[str, Any]]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise malformed("json", str(error)) from None
    if isinstance(value, dict):
        return [value]
    if not isinstance(value, list):
        raise malformed("json", "expected a document or an array of documents")
    for position, document in enumerate(value):
        if not isinstance(document, dict):
            raise malformed(
                "json",
                f"Couldn't serialize document value: the item at index {position} is not an object",
            )
    return value


def _parse_ndjson(body: bytes) -> list[dict[str, Any]]:
    documents = []
    for line_number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            document = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise malformed("ndjson", f"line {line_number}: {error}") from None
        if not isinstance(document, dict):
            raise malformed("ndjson", f"line {line_number}: expected an object")
        documents.append(document)
    return documents


_CSV_TYPES = ("string", "number", "boolean")


def _csv_header(raw: str) -> tuple[str, str]:
    """`price:number` -> ("price", "number"); an unknown suffix keeps the whole header."""
    name, sep, suffix = raw.rpartition(":")
    if sep and suffix in _CSV_TYPES:
        return name, suffix
    return raw, "string"


def _csv_cell(text: str, kind: str, row: int, column: str) -> Any:
    if text == "":
        return None
    if kind == "string":
        return text
    if kind == "boolean":
        if text.strip() in ("true", "false"):
            return text.strip() == "true"
        raise malformed("csv", f"Error parsing boolean `{text}` at line {row}: column `{column}`")
    stripped = text.strip()
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        number = float(stripped)
    except ValueError:
        raise malformed(
            "csv", f"Error parsing number `{text}` at line {row}: column `{column}`"
        ) from None
    if number != number or number in (float("inf"), float("-inf")):
        raise malformed("csv", f"Error parsing number `{text}` at line {row}: column `{column}`")
    return number


def _parse_csv(body: bytes, delimiter: str) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise malformed("csv", str(error)) from None
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        rows = list(reader)
    except csv.Error as error:
        raise malformed("csv", str(error)) from None
    if not rows:
        raise MeiliError("missing_payload", "A csv payload is missing.")
    headers = [_csv_header(raw) for raw in rows[0]]
    documents = []
    for row_number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(headers):
            raise malformed(
                "csv",
                f"CSV error: record {row_number - 1} (line {row_number}) has {len(row)} "
                f"fields, but the header has {len(headers)} fields",
            )
        documents.append(
            {
                name: _csv_cell(cell, kind, row_number, name)
                for (name, kind), cell in zip(headers, row, strict=True)
            }
        )
    return documents


def csv_delimiter_from_query(text: str) -> str:
    if len(text) == 1 and text.isascii():
        return text
    raise MeiliError(
        "invalid_document_csv_delimiter",
        f"Invalid value in parameter `csvDelimiter`: expected a string of one character, but found the following string of {len(text)} characters: `{text}`",
    )
