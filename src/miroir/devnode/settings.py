"""How a settings patch applies to a devnode index, and what the devnode does not support.

The keys, defaults and request-time checks are Meilisearch's contract (`miroir.meili.settings`);
this module owns the task-time part: the normalisation GET shows (sets come back sorted, `*`
swallows the rest of a list), nested settings (typoTolerance, faceting, pagination) patched
field by field, and the errors Meilisearch's indexer raises. Embedders: `userProvided` only
(`miroir.devnode.search.vectors`), other sources refused here at request time. Never touches an index: the engine
applies what `apply_patch` returns.
"""

from __future__ import annotations

import copy
from typing import Any

from miroir.core.errors import MeiliError
from miroir.meili import deserr
from miroir.meili import settings as contract
from miroir.meili.settings import SETTINGS_KEYS, SUBROUTES, default_settings, nested_fields

__all__ = ["SETTINGS_KEYS", "SUBROUTES", "apply_patch", "default_settings", "validate_patch",
           "validate_setting"]


def _supported(key: str, value: Any) -> Any:
    if key == "embedders" and value is not None:
        # userProvided embedders only: the devnode cannot call a model (search.vectors).
        from miroir.devnode.search.vectors import validate_embedders

        return validate_embedders(value, ".embedders", contract.error_code(key))
    return value


def validate_setting(key: str, value: Any, path: str = "") -> Any:
    """One setting's new value (None = reset), checked as Meilisearch checks it."""
    return _supported(key, contract.validate_setting(key, value, path))


def validate_patch(body: Any) -> dict[str, Any]:
    """PATCH /settings body -> {key: value or None}, checked as Meilisearch checks it, with the
    experimental-feature settings refused as a node with the features off refuses them."""
    if isinstance(body, dict):
        deserr.check_fields(body, (*SETTINGS_KEYS, *contract.GATED_DEFAULTS), path="",
                            code="bad_request")
        body = contract.without_gated(body)
    return {key: _supported(key, value) for key, value in contract.validate_patch(body).items()}


# ---------------------------------------------------------------------------------------------
# Application: task time.


def _sorted_unique(values: list[str]) -> list[str]:
    return sorted(set(values))


def _star_swallows(values: list[str]) -> list[str]:
    return ["*"] if "*" in values else values


def _normalise(key: str, value: Any) -> Any:
    """The value as GET shows it (Meilisearch stores these as sets, maps or `*`)."""
    if key in ("displayedAttributes", "searchableAttributes"):
        return _star_swallows(value)
    if key in (
        "sortableAttributes",
        "stopWords",
        "nonSeparatorTokens",
        "separatorTokens",
        "dictionary",
    ):
        return _sorted_unique(value)
    if key == "synonyms":
        return {word: list(value[word]) for word in sorted(value)}
    if key == "typoTolerance":
        value["disableOnWords"] = _sorted_unique(value["disableOnWords"])
        value["disableOnAttributes"] = _sorted_unique(value["disableOnAttributes"])
    if key == "faceting":
        order = {"*": "alpha", **value["sortFacetValuesBy"]}
        value["sortFacetValuesBy"] = {facet: order[facet] for facet in sorted(order)}
    return value


def _merge(current: Any, patch: Any, default: Any, fields: dict[str, Any] | None) -> Any:
    if patch is None:
        return copy.deepcopy(default)
    if fields is None:
        return copy.deepcopy(patch)
    merged = copy.deepcopy(current)
    for name, sub_patch in patch.items():
        sub_fields = getattr(fields[name], "nested_fields", None)
        merged[name] = _merge(current[name], sub_patch, default[name], sub_fields)
    return merged


def apply_patch(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The full settings after `patch`; raises the task-time errors Meilisearch's indexer raises."""
    updated = dict(current)
    defaults = default_settings()
    for key, value in patch.items():
        if key == "embedders":
            from miroir.devnode.search.vectors import apply_embedders_patch

            updated[key] = apply_embedders_patch(current[key], value)
            continue
        merged = _merge(current[key], value, defaults[key], nested_fields(key))
        updated[key] = _normalise(key, merged)
    sizes = updated["typoTolerance"]["minWordSizeForTypos"]
    if sizes["oneTypo"] > sizes["twoTypos"]:
        raise MeiliError(
            "invalid_settings_typo_tolerance",
            "`minWordSizeForTypos` setting is invalid. `oneTypo` and `twoTypos` fields should be "
            "between `0` and `255`, and `twoTypos` should be greater or equals to `oneTypo` but "
            f"found `oneTypo: {sizes['oneTypo']}` and twoTypos: {sizes['twoTypos']}`.",
        )
    return updated

