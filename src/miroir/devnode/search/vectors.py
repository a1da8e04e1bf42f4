"""The devnode's `userProvided` embedders: settings, `_vectors` in documents, exact similarity.

Owns: validation of the `embedders` setting (only `userProvided` sources: the devnode cannot
call a model, so every other source is refused with an error naming that limit), how a patch
of it applies, reading and checking a document's `_vectors` (Meilisearch's accepted shapes: one
embedding, several, `{embeddings, regenerate}`, null), the per-embedder store of embeddings by
internal id, the similarity of a query vector to a document (exact cosine, mapped to [0, 1] as
Meilisearch's vector store does: (1 + cos) / 2, rounded to f32, then the embedder's
`distribution` shift), and `_vectors` as documents and hits show it (hidden unless
`retrieveVectors`; then each embedder's `{embeddings, regenerate: false}`).

Must never: rank documents (search.execute does), or let one document's similarity depend on
another's (what makes the proxy's merge by `_rankingScore` exact).
"""

from __future__ import annotations

import copy
import math
import struct
from collections.abc import Mapping
from typing import Any

from miroir.core.errors import MeiliError
from miroir.meili import deserr

VECTORS_FIELD = "_vectors"
CODE = "invalid_settings_embedders"
SOURCES = ("openAi", "huggingFace", "ollama", "userProvided", "rest", "composite")
EMBEDDER_FIELDS = (
    "source",
    "model",
    "revision",
    "pooling",
    "apiKey",
    "dimensions",
    "binaryQuantized",
    "documentTemplate",
    "documentTemplateMaxBytes",
    "url",
    "indexingFragments",
    "searchFragments",
    "request",
    "response",
    "headers",
    "searchEmbedder",
    "indexingEmbedder",
    "distribution",
)
USER_PROVIDED_FIELDS = ("source", "dimensions", "distribution", "binaryQuantized")


# ----------------------------------------------------------------------------- settings


def validate_embedders(value: Any, path: str, code: str = CODE) -> dict[str, Any]:
    """PATCH value of `embedders`: name -> settings patch (None removes the embedder)."""
    mapping = deserr.body_object(code, path, value)
    out: dict[str, Any] = {}
    for name, entry in mapping.items():
        if entry is None:
            out[name] = None
            continue
        entry_path = f"{path}.{name}"
        entry = deserr.body_object(code, entry_path, entry)
        deserr.check_fields(entry, EMBEDDER_FIELDS, path=entry_path, code=code)
        source = entry.get("source")
        if source is not None:
            source = deserr.body_string(code, f"{entry_path}.source", source)
            if source not in SOURCES:
                raise deserr.unknown_value(code, f"{entry_path}.source", source, SOURCES)
            if source != "userProvided":
                raise _only_user_provided(name, source)
        for field in entry:
            if field not in USER_PROVIDED_FIELDS and entry[field] is not None:
                raise MeiliError(
                    code,
                    f"`.embedders.{name}`: Field `{field}` unavailable for source `userProvided`."
                    "\n  - note: available fields for source `userProvided`: "
                    + ", ".join(f"`{f}`" for f in USER_PROVIDED_FIELDS),
                )
        checked: dict[str, Any] = {}
        if "source" in entry:
            checked["source"] = source
        if "dimensions" in entry and entry["dimensions"] is not None:
            dimensions = deserr.body_usize(code, f"{entry_path}.dimensions", entry["dimensions"])
            if dimensions == 0:
                raise MeiliError(
                    code, f"`.embedders.{name}.dimensions`: `dimensions` cannot be zero"
                )
            checked["dimensions"] = dimensions
        elif "dimensions" in entry:
            checked["dimensions"] = None
        if entry.get("binaryQuantized") is not None:
            if deserr.body_bool(code, f"{entry_path}.binaryQuantized", entry["binaryQuantized"]):
                raise MeiliError(
                    code,
                    f"`.embedders.{name}.binaryQuantized`: the devnode does not quantize "
                    "embeddings (exact similarity only); use real Meilisearch nodes for "
                    "`binaryQuantized: true`.",
                )
            checked["binaryQuantized"] = False
        if "distribution" in entry:
            checked["distribution"] = _distribution(entry["distribution"], f"{entry_path}.distribution", code)
        out[name] = checked
    return out


def _only_user_provided(name: str, source: str) -> MeiliError:
    return MeiliError(
        CODE,
        f"`.embedders.{name}.source`: the devnode supports only `userProvided` embedders, not "
        f"`{source}`: it cannot call an embedding model. Miroir passes `{source}` embedders to "
        "real Meilisearch nodes; run those behind Miroir to use them.",
    )


def _distribution(value: Any, path: str, code: str) -> dict[str, float] | None:
    if value is None:
        return None
    obj = deserr.body_object(code, path, value)
    deserr.check_fields(obj, ("mean", "sigma"), path=path, code=code)
    for required in ("mean", "sigma"):
        if required not in obj:
            raise deserr.missing_field(code, path, required)
        if isinstance(obj[required], bool) or not isinstance(obj[required], int | float):
            raise deserr.type_error(code, f"{path}.{required}", "a number", obj[required])
    mean, sigma = float(obj["mean"]), float(obj["sigma"])
    if not 0.0 <= mean <= 1.0:
        raise deserr.invalid_value(
            code, path, f"the distribution mean must be in the range [0, 1], got {obj['mean']}"
        )
    if not 0.0 < sigma <= 1.0:
        raise deserr.invalid_value(
            code, path, f"the distribution sigma must be in the range ]0, 1], got {obj['sigma']}"
        )
    return {"mean": obj["mean"], "sigma": obj["sigma"]}


def apply_embedders_patch(current: dict[str, Any], patch: dict[str, Any] | None) -> dict[str, Any]:
    """The embedders after a patch: per name, None removes; fields patch the existing
    embedder; a new embedder needs `dimensions` (its source defaults to openAi, refused)."""
    if patch is None:
        return {}
    updated = copy.deepcopy(current)
    for name, entry in patch.items():
        if entry is None:
            updated.pop(name, None)
            continue
        merged = dict(updated.get(name) or {})
        for field, value in entry.items():
            if value is None:
                merged.pop(field, None)
            else:
                merged[field] = value
        merged.setdefault("source", "openAi")  # Meilisearch's default source
        if merged["source"] != "userProvided":
            raise _only_user_provided(name, merged["source"])
        if "dimensions" not in merged:
            raise MeiliError(
                CODE,
                f"`.embedders.{name}`: Missing field `dimensions` (note: this field is "
                "mandatory for source `userProvided`)",
            )
        updated[name] = {k: merged[k] for k in USER_PROVIDED_FIELDS if k in merged}
    return {name: updated[name] for name in sorted(updated)}


# ----------------------------------------------------------------------------- documents


def document_embeddings(
    document: Mapping[str, Any], doc_id: str, embedders: Mapping[str, Any]
) -> dict[str, list[list[float]]]:
    """name -> embeddings of a document, for the configured embedders; raises on bad shapes."""
    vectors = document.get(VECTORS_FIELD)
    if vectors is None:
        return {}
    if not isinstance(vectors, Mapping):
        raise MeiliError(
            "invalid_vectors_type",
            f"Invalid type for `_vectors` in document `{doc_id}`: expected an object, or null.",
        )
    out: dict[str, list[list[float]]] = {}
    for name, settings in embedders.items():
        if name not in vectors:
            continue
        embeddings = _embeddings(vectors[name], doc_id, name)
        for position, embedding in enumerate(embeddings):
            if len(embedding) != settings["dimensions"]:
                raise MeiliError(
                    "invalid_vector_dimensions",
                    f"Invalid vector dimensions in document with id `{doc_id}` in "
                    f"`._vectors.{name}`.\n  - note: embedding #{position} has dimensions "
                    f"{len(embedding)}\n  - note: embedder `{name}` requires "
                    f"{settings['dimensions']}",
                )
        if embeddings:
            out[name] = embeddings
    return out


def _embeddings(value: Any, doc_id: str, name: str) -> list[list[float]]:
    if isinstance(value, Mapping):
        value = value.get("embeddings")
    if value is None:
        return []
    if isinstance(value, list) and value and all(_is_number(v) for v in value):
        return [[float(v) for v in value]]
    if isinstance(value, list) and all(
        isinstance(e, list) and all(_is_number(v) for v in e) for e in value
    ):
        return [[float(v) for v in e] for e in value]
    raise MeiliError(
        "invalid_vectors_type",
        f"Invalid type for `_vectors.{name}` in document `{doc_id}`: expected an array of "
        "floats, an array of arrays of floats, or an object with field `embeddings`.",
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def present_vectors(
    document: dict[str, Any],
    embeddings: Mapping[str, list[list[float]]],
    embedders: Mapping[str, Any],
    retrieve: bool,
) -> dict[str, Any]:
    """`document` as shown: without `_vectors`, or with them as Meilisearch shows them."""
    raw = document.pop(VECTORS_FIELD, None)
    if not retrieve:
        return document
    shown: dict[str, Any] = {}
    if isinstance(raw, Mapping):
        shown.update({k: v for k, v in raw.items() if k not in embedders})
    for name in embedders:
        shown[name] = {"embeddings": embeddings.get(name, []), "regenerate": False}
    document[VECTORS_FIELD] = shown
    return document


# ----------------------------------------------------------------------------- similarity


def _f32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def similarity(
    query: list[float], embeddings: list[list[float]], distribution: Mapping[str, Any] | None
) -> float:
    """The best similarity of a document's embeddings to the query, in [0, 1]."""
    query_norm = math.sqrt(sum(v * v for v in query))
    best = -math.inf
    for embedding in embeddings:
        norm = math.sqrt(sum(v * v for v in embedding))
        if norm == 0 or query_norm == 0:
            distance = 0.0  # as the vector store does for a zero vector
        else:
            cos = sum(a * b for a, b in zip(query, embedding, strict=True)) / (query_norm * norm)
            distance = _f32((1.0 - cos) / 2.0)
        best = max(best, _f32(1.0 - distance))
    if distribution is not None:
        best = shift(best, float(distribution["mean"]), float(distribution["sigma"]))
    return best


def shift(score: float, mean: float, sigma: float) -> float:
    """Meilisearch's DistributionShift: maps (mean, sigma) onto (0.5, 0.4), clamped to (0, 1]."""
    factor = _f32(0.4 / sigma)
    offset = _f32(0.5 - factor * mean)
    shifted = _f32(factor * score + offset)
    if shifted <= 0.0:
        shifted = 1.1920928955078125e-07  # f32::EPSILON
    return min(shifted, 1.0)
