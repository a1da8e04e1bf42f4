"""Index settings as Meilisearch takes them: the keys, their defaults, sub-routes and checks.

Owns the 20 settings keys of a fresh index (in GET order, reference/meilisearch-api.md §7), the
URL slug and write method of each sub-route, the `invalid_settings_*` code of each key, and the
shape every value must have (`validate_setting`, `validate_patch`: request time, deserr's
words). A patch maps a key to a value or to None (reset to default); nested settings
(typoTolerance, faceting, pagination) are validated field by field, and `nested_fields` says
which fields a nested setting has, for whoever applies a patch. Never applies anything: how a
patch changes an index is the node's business (`miroir.devnode.settings` for the devnode).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from miroir.core.errors import MeiliError
from miroir.meili import deserr

DEFAULT_RANKING_RULES = [
    "words",
    "typo",
    "proximity",
    "attributeRank",
    "sort",
    "wordPosition",
    "exactness",
]
BUILTIN_RANKING_RULES = frozenset(DEFAULT_RANKING_RULES) | {"attribute"}

_DEFAULTS: dict[str, Any] = {
    "displayedAttributes": ["*"],
    "searchableAttributes": ["*"],
    "filterableAttributes": [],
    "sortableAttributes": [],
    "rankingRules": DEFAULT_RANKING_RULES,
    "stopWords": [],
    "nonSeparatorTokens": [],
    "separatorTokens": [],
    "dictionary": [],
    "synonyms": {},
    "distinctAttribute": None,
    "proximityPrecision": "byWord",
    "typoTolerance": {
        "enabled": True,
        "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9},
        "disableOnWords": [],
        "disableOnAttributes": [],
        "disableOnNumbers": False,
    },
    "faceting": {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}},
    "pagination": {"maxTotalHits": 1000},
    "embedders": {},
    "searchCutoffMs": None,
    "localizedAttributes": None,
    "facetSearch": True,
    "prefixSearch": "indexingTime",
}
SETTINGS_KEYS: tuple[str, ...] = tuple(_DEFAULTS)

# The URL slug of every settings sub-route, its key, and the method that writes it.
SUBROUTES: dict[str, tuple[str, str]] = {
    "displayed-attributes": ("displayedAttributes", "PUT"),
    "searchable-attributes": ("searchableAttributes", "PUT"),
    "filterable-attributes": ("filterableAttributes", "PUT"),
    "sortable-attributes": ("sortableAttributes", "PUT"),
    "ranking-rules": ("rankingRules", "PUT"),
    "stop-words": ("stopWords", "PUT"),
    "non-separator-tokens": ("nonSeparatorTokens", "PUT"),
    "separator-tokens": ("separatorTokens", "PUT"),
    "dictionary": ("dictionary", "PUT"),
    "synonyms": ("synonyms", "PUT"),
    "distinct-attribute": ("distinctAttribute", "PUT"),
    "proximity-precision": ("proximityPrecision", "PUT"),
    "typo-tolerance": ("typoTolerance", "PATCH"),
    "faceting": ("faceting", "PATCH"),
    "pagination": ("pagination", "PATCH"),
    "embedders": ("embedders", "PATCH"),
    "search-cutoff-ms": ("searchCutoffMs", "PUT"),
    "localized-attributes": ("localizedAttributes", "PUT"),
    "facet-search": ("facetSearch", "PUT"),
    "prefix-search": ("prefixSearch", "PUT"),
}


# Settings behind an experimental feature (`foreignKeys`, `chat`): Meilisearch leaves them out
# of GET /settings while the feature is off, shows their value (or default) on their sub-route,
# and refuses a value with `feature_not_enabled` (routes/indexes/settings.rs). The proxy passes
# them to the nodes, which judge; the devnode keeps both features off, as a fresh Meilisearch.
_CHAT_TEMPLATE = (
    "{% for field in fields %}{% if field.is_searchable and field.value != nil %}"
    "{{ field.name }}: {{ field.value }}\n{% endif %}{% endfor %}"
)
GATED_SUBROUTES: dict[str, tuple[str, str]] = {
    "foreign-keys": ("foreignKeys", "PUT"),
    "chat": ("chat", "PATCH"),
}
GATED_DEFAULTS: dict[str, Any] = {
    "foreignKeys": [],
    "chat": {"description": "", "documentTemplate": _CHAT_TEMPLATE,
             "documentTemplateMaxBytes": 400, "searchParameters": {}},
}
_GATES = {
    "foreignKeys": ("foreign_keys", "https://github.com/orgs/meilisearch/discussions/873"),
    "chat": ("chat completions", "https://github.com/orgs/meilisearch/discussions/835"),
}


def feature_not_enabled(key: str) -> MeiliError:
    feature, link = _GATES[key]
    return MeiliError(
        "feature_not_enabled",
        f"setting `{key}` in the index settings requires enabling the `{feature}` experimental "
        f"feature. See {link}",
    )


def without_gated(body: dict[str, Any]) -> dict[str, Any]:
    """A settings patch as a node with the features off takes it: a value is refused, a reset
    is dropped (a no-op)."""
    for key in GATED_DEFAULTS:
        if body.get(key) is not None:
            raise feature_not_enabled(key)
    return {key: value for key, value in body.items() if key not in GATED_DEFAULTS}


def error_code(key: str) -> str:
    """`typoTolerance` -> `invalid_settings_typo_tolerance`."""
    snake = "".join("_" + c.lower() if c.isupper() else c for c in key)
    return "invalid_settings_" + snake


def default_settings() -> dict[str, Any]:
    """A fresh index's settings, exactly as GET /indexes/{uid}/settings shows them."""
    return copy.deepcopy(_DEFAULTS)


# ---------------------------------------------------------------------------------------------
# Validation: request time. Each validator returns the normalised value (None = reset).

Validator = Callable[[Any, str, str], Any]


def _string_list(value: Any, path: str, code: str) -> list[str]:
    return deserr.body_string_list(code, path, value)


def _optional_string(value: Any, path: str, code: str) -> str:
    return deserr.body_string(code, path, value)


def _usize(value: Any, path: str, code: str) -> int:
    return deserr.body_usize(code, path, value)


def _u8(value: Any, path: str, code: str) -> int:
    number = deserr.body_usize(code, path, value)
    if number > 255:
        raise deserr.invalid_value(
            code,
            path,
            f"value: `{number}` is too large to be deserialized, maximum value authorized is `255`",
        )
    return number


def _bool(value: Any, path: str, code: str) -> bool:
    return deserr.body_bool(code, path, value)


def _enum(*allowed: str) -> Validator:
    def validate(value: Any, path: str, code: str) -> str:
        text = deserr.body_string(code, path, value)
        if text not in allowed:
            raise deserr.unknown_value(code, path, text, allowed)
        return text

    return validate


def _ranking_rules(value: Any, path: str, code: str) -> list[str]:
    rules = deserr.body_string_list(code, path, value)
    for position, rule in enumerate(rules):
        name, _, direction = rule.rpartition(":")
        if rule in BUILTIN_RANKING_RULES or (name and direction in ("asc", "desc")):
            continue
        raise deserr.invalid_value(
            code,
            f"{path}[{position}]",
            f"`{rule}` ranking rule is invalid. Valid ranking rules are words, typo, sort, "
            "proximity, attribute, exactness and custom ranking rules.",
        )
    return rules


def _synonyms(value: Any, path: str, code: str) -> dict[str, list[str]]:
    mapping = deserr.body_object(code, path, value)
    for word, alternatives in mapping.items():
        deserr.body_string_list(code, f"{path}.{word}", alternatives)
    return dict(mapping)


_FILTER_FEATURE_FIELDS = ("equality", "comparison")
_FEATURE_FIELDS = ("facetSearch", "filter")
_RULE_FIELDS = ("attributePatterns", "features")


def _filterable(value: Any, path: str, code: str) -> list[Any]:
    """Strings, or `{attributePatterns, features?}` rules (features filled with defaults)."""
    if not isinstance(value, list):
        raise deserr.type_error(code, path, "an array", value)
    rules: list[Any] = []
    for position, item in enumerate(value):
        item_path = f"{path}[{position}]"
        if isinstance(item, str):
            rules.append(item)
            continue
        rule = deserr.body_object(code, item_path, item)
        deserr.check_fields(rule, _RULE_FIELDS, path=item_path, code=code)
        if "attributePatterns" not in rule:
            raise deserr.missing_field(code, item_path, "attributePatterns")
        patterns = deserr.body_string_list(
            code, f"{item_path}.attributePatterns", rule["attributePatterns"]
        )
        features_in = deserr.body_object(code, f"{item_path}.features", rule.get("features", {}))
        deserr.check_fields(features_in, _FEATURE_FIELDS, path=f"{item_path}.features", code=code)
        filter_in = deserr.body_object(
            code, f"{item_path}.features.filter", features_in.get("filter", {})
        )
        deserr.check_fields(
            filter_in, _FILTER_FEATURE_FIELDS, path=f"{item_path}.features.filter", code=code
        )
        features = {
            "facetSearch": deserr.body_bool(
                code, f"{item_path}.features.facetSearch", features_in.get("facetSearch", False)
            ),
            "filter": {
                name: deserr.body_bool(
                    code,
                    f"{item_path}.features.filter.{name}",
                    filter_in.get(name, name == "equality"),
                )
                for name in _FILTER_FEATURE_FIELDS
            },
        }
        rules.append({"attributePatterns": patterns, "features": features})
    return rules


def _sort_facet_values_by(value: Any, path: str, code: str) -> dict[str, str]:
    mapping = deserr.body_object(code, path, value)
    for facet, order in mapping.items():
        _enum("alpha", "count")(order, f"{path}.{facet}", code)
    return dict(mapping)


def _embedders(value: Any, path: str, code: str) -> dict[str, Any]:
    return deserr.body_object(code, path, value)  # each embedder's shape is the node's to judge


def _localized(value: Any, path: str, code: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise deserr.type_error(code, path, "an array", value)
    rules = []
    for position, item in enumerate(value):
        item_path = f"{path}[{position}]"
        rule = deserr.body_object(code, item_path, item)
        deserr.check_fields(rule, ("attributePatterns", "locales"), path=item_path, code=code)
        for required in ("attributePatterns", "locales"):
            if required not in rule:
                raise deserr.missing_field(code, item_path, required)
        rules.append(
            {
                "attributePatterns": deserr.body_string_list(
                    code, f"{item_path}.attributePatterns", rule["attributePatterns"]
                ),
                "locales": deserr.body_string_list(code, f"{item_path}.locales", rule["locales"]),
            }
        )
    return rules


def _nested(fields: dict[str, Validator]) -> Validator:
    """A nested settings object: each field optional, null resets that field."""

    def validate(value: Any, path: str, code: str) -> dict[str, Any]:
        obj = deserr.body_object(code, path, value)
        deserr.check_fields(obj, fields, path=path, code=code)
        return {
            name: None if item is None else fields[name](item, f"{path}.{name}", code)
            for name, item in obj.items()
        }

    validate.nested_fields = fields  # type: ignore[attr-defined]
    return validate


def nested_fields(key: str) -> dict[str, Validator] | None:
    """The fields of a nested setting (typoTolerance, ...), None for a plain one."""
    return getattr(_VALIDATORS[key], "nested_fields", None)


_VALIDATORS: dict[str, Validator] = {
    "displayedAttributes": _string_list,
    "searchableAttributes": _string_list,
    "filterableAttributes": _filterable,
    "sortableAttributes": _string_list,
    "rankingRules": _ranking_rules,
    "stopWords": _string_list,
    "nonSeparatorTokens": _string_list,
    "separatorTokens": _string_list,
    "dictionary": _string_list,
    "synonyms": _synonyms,
    "distinctAttribute": _optional_string,
    "proximityPrecision": _enum("byWord", "byAttribute"),
    "typoTolerance": _nested(
        {
            "enabled": _bool,
            "minWordSizeForTypos": _nested({"oneTypo": _u8, "twoTypos": _u8}),
            "disableOnWords": _string_list,
            "disableOnAttributes": _string_list,
            "disableOnNumbers": _bool,
        }
    ),
    "faceting": _nested({"maxValuesPerFacet": _usize, "sortFacetValuesBy": _sort_facet_values_by}),
    "pagination": _nested({"maxTotalHits": _usize}),
    "embedders": _embedders,
    "searchCutoffMs": _usize,
    "localizedAttributes": _localized,
    "facetSearch": _bool,
    "prefixSearch": _enum("indexingTime", "disabled"),
}


def validate_setting(key: str, value: Any, path: str = "") -> Any:
    """One setting's new value (None = reset), or the field's `invalid_settings_*` error."""
    if value is None:
        return None
    return _VALIDATORS[key](value, path, error_code(key))


def validate_patch(body: Any) -> dict[str, Any]:
    """PATCH /settings body -> {key: value or None}. Unknown keys are `bad_request`."""
    if not isinstance(body, dict):
        raise deserr.type_error("bad_request", "", "an object", body)
    deserr.check_fields(body, SETTINGS_KEYS, path="", code="bad_request")
    return {key: validate_setting(key, value, f".{key}") for key, value in body.items()}

