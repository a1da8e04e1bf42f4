"""Devnode handlers for indexes, settings, tasks, stats, health, version and search wiring.

Owns request-shape validation for these routes (unknown fields and parameters, wrong types)
and which engine call each route makes; reads of a missing index answer 404 at once, writes
enqueue a task and answer 202. Search itself lives in `search_routes` (the search engineer's);
this module only forwards to it. It never applies tasks and never checks auth.
"""

from __future__ import annotations

from typing import Any

from miroir.core.errors import MeiliError
from miroir.core.json_values import render_json
from miroir.devnode import settings as settings_mod
from miroir.devnode.router import PKG_VERSION, Request, Response, Router, accepted, ok
from miroir.devnode.tasks import parse_task_query
from miroir.meili import deserr
from miroir.meili import settings as contract_settings
from miroir.meili.params import search_body_from_query
from miroir.meili.uids import check_index_uid

# ------------------------------------------------------------------------------------ indexes


def list_indexes(router: Router, request: Request) -> Response:
    params = request.params(("offset", "limit"))
    offset = deserr.parse_query_usize("invalid_index_offset", "offset", params.get("offset", "0"))
    limit = deserr.parse_query_usize("invalid_index_limit", "limit", params.get("limit", "20"))
    return ok(router.engine.list_indexes(offset, limit))


def _uid_field(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise deserr.type_error("invalid_index_uid", path, "a string", value)
    return check_index_uid(value)


def _primary_key_field(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise deserr.type_error("invalid_index_primary_key", ".primaryKey", "a string", value)


def create_index(router: Router, request: Request) -> Response:
    body = deserr.body_object("bad_request", "", request.json())
    deserr.check_fields(body, ("uid", "primaryKey"), path="", code="bad_request")
    if "uid" not in body:
        raise MeiliError("missing_index_uid", "Missing field `uid`")
    uid = _uid_field(body["uid"], ".uid")
    primary_key = _primary_key_field(body.get("primaryKey"))
    return accepted(router.engine.create_index(uid, primary_key))


def get_index(router: Router, request: Request, uid: str) -> Response:
    request.params(())
    return ok(router.engine.get_index(uid).view())


def update_index(router: Router, request: Request, uid: str) -> Response:
    check_index_uid(uid)
    body = deserr.body_object("bad_request", "", request.json())
    for immutable, code in (
        ("createdAt", "immutable_index_created_at"),
        ("updatedAt", "immutable_index_updated_at"),
    ):
        if immutable in body:
            raise MeiliError(
                code, f"Immutable field `{immutable}`: expected one of `primaryKey`, `uid`"
            )
    deserr.check_fields(body, ("primaryKey", "uid"), path="", code="bad_request")
    kwargs: dict[str, Any] = {}
    if "primaryKey" in body:
        kwargs["primary_key"] = _primary_key_field(body["primaryKey"])
    if body.get("uid") is not None:
        kwargs["new_uid"] = _uid_field(body["uid"], ".uid")
    return accepted(router.engine.update_index(uid, **kwargs))


def delete_index(router: Router, request: Request, uid: str) -> Response:
    return accepted(router.engine.delete_index(uid))


def compact_index(router: Router, request: Request, uid: str) -> Response:
    return accepted(router.engine.compact_index(uid))


def index_stats(router: Router, request: Request, uid: str) -> Response:
    stats = router.engine.index_stats(uid)
    if dict(request.query).get("showInternalDatabaseSizes") == "true":
        # One "database" in memory: the documents, by their JSON size. Shown before the
        # embedding counts, where Meilisearch shows the map.
        shown = {}
        for key, value in stats.items():
            if key == "numberOfEmbeddings":
                shown["internalDatabaseSizes"] = {"documents": stats["rawDocumentDbSize"]}
            shown[key] = value
        stats = shown
    return ok(stats)


def swap_indexes(router: Router, request: Request) -> Response:
    body = request.json()
    if not isinstance(body, list):
        raise deserr.type_error("bad_request", "", "an array", body)
    swaps = []
    for position, item in enumerate(body):
        path = f"[{position}]"
        entry = deserr.body_object("bad_request", path, item)
        deserr.check_fields(entry, ("indexes", "rename"), path=path, code="bad_request")
        if "indexes" not in entry:
            raise deserr.missing_field("missing_swap_indexes", path, "indexes")
        pair = deserr.body_string_list("invalid_swap_indexes", f"{path}.indexes", entry["indexes"])
        if len(pair) != 2:
            raise MeiliError(
                "invalid_swap_indexes",
                f"Two indexes must be given for each swap. The list `{render_json(pair)}` "
                f"contains {len(pair)} indexes.",
            )
        rename = deserr.body_bool(
            "invalid_swap_rename", f"{path}.rename", entry.get("rename", False)
        )
        swaps.append((pair[0], pair[1], rename))
    return accepted(router.engine.swap_indexes(swaps))


# ----------------------------------------------------------------------------------- settings


def get_settings(router: Router, request: Request, uid: str) -> Response:
    return ok(router.engine.get_index(uid).settings)


def patch_settings(router: Router, request: Request, uid: str) -> Response:
    check_index_uid(uid)
    patch = settings_mod.validate_patch(request.json())
    return accepted(router.engine.update_settings(uid, patch))


def reset_settings(router: Router, request: Request, uid: str) -> Response:
    return accepted(router.engine.reset_settings(uid))


def _subroute(slug: str) -> tuple[str, str]:
    found = settings_mod.SUBROUTES.get(slug)
    if found is None:
        raise MeiliError("not_found", "Not found.")
    return found


def get_setting(router: Router, request: Request, uid: str, slug: str) -> Response:
    if slug in contract_settings.GATED_SUBROUTES:
        key, _ = contract_settings.GATED_SUBROUTES[slug]
        router.engine.get_index(uid)
        return ok(contract_settings.GATED_DEFAULTS[key])
    key, _ = _subroute(slug)
    return ok(router.engine.get_index(uid).settings[key])


def _write_setting(method: str):
    def write(router: Router, request: Request, uid: str, slug: str) -> Response:
        if slug in contract_settings.GATED_SUBROUTES:
            key, write_method = contract_settings.GATED_SUBROUTES[slug]
            if write_method != method:
                raise MeiliError("method_not_allowed", "Method not allowed.")
            check_index_uid(uid)
            value = request.json()
            if value is not None:
                raise contract_settings.feature_not_enabled(key)
            return accepted(router.engine.reset_settings(uid, ()))
        key, write_method = _subroute(slug)
        if write_method != method:
            raise MeiliError("method_not_allowed", "Method not allowed.")
        check_index_uid(uid)
        value = settings_mod.validate_setting(key, request.json())
        return accepted(router.engine.update_settings(uid, {key: value}))

    return write


def reset_setting(router: Router, request: Request, uid: str, slug: str) -> Response:
    if slug in contract_settings.GATED_SUBROUTES:
        return accepted(router.engine.reset_settings(uid, ()))
    key, _ = _subroute(slug)
    return accepted(router.engine.reset_settings(uid, (key,)))


# -------------------------------------------------------------------------------------- tasks


def list_tasks(router: Router, request: Request) -> Response:
    return ok(router.engine.list_tasks(parse_task_query(request.query, paging=True)))


def get_task(router: Router, request: Request, task_uid: str) -> Response:
    if not (task_uid.isascii() and task_uid.isdigit()):
        raise MeiliError(
            "invalid_task_uids",
            f"Task uid `{task_uid}` is invalid. It should only contain numeric characters.",
        )
    uid = int(task_uid)
    return ok(router.engine.get_task(uid).view())


def _filtered_task_write(action: str, enqueue_name: str):
    def write(router: Router, request: Request) -> Response:
        query = parse_task_query(request.query, paging=False, operation=action)
        task = getattr(router.engine, enqueue_name)(query.filter, "?" + request.query_string)
        return accepted(task, 200)  # Meilisearch answers these two writes with 200

    return write


# --------------------------------------------------------------------------------------- misc


def health(router: Router, request: Request) -> Response:
    return ok({"status": "available"})


def root(router: Router, request: Request) -> Response:
    return ok({"status": "Meilisearch is running"})


def version(router: Router, request: Request) -> Response:
    return ok({"commitSha": "miroir-devnode", "commitDate": "unknown", "pkgVersion": PKG_VERSION})


def global_stats(router: Router, request: Request) -> Response:
    return ok(router.engine.stats())


_FEATURES = (
    "metrics",
    "logsRoute",
    "editDocumentsByFunction",
    "containsFilter",
    "network",
    "getTaskDocumentsRoute",
    "compositeEmbedders",
    "chatCompletions",
    "multimodal",
)


def get_features(router: Router, request: Request) -> Response:
    return ok({name: router.experimental_features.get(name, False) for name in _FEATURES})


def patch_features(router: Router, request: Request) -> Response:
    body = deserr.body_object("bad_request", "", request.json())
    deserr.check_fields(body, _FEATURES, path="", code="bad_request")
    for name, value in body.items():
        if value is not None:
            router.experimental_features[name] = deserr.body_bool("bad_request", f".{name}", value)
    return get_features(router, request)


# ------------------------------------------------------------------------------------- search


def _search_module():
    try:
        from miroir.devnode import search_routes
    except ImportError:
        raise MeiliError(
            "not_found", "Search needs miroir.devnode.search_routes, which is not installed."
        ) from None
    return search_routes


def search_post(router: Router, request: Request, uid: str) -> Response:
    module = _search_module()
    check_index_uid(uid)
    return ok(module.search(router.engine, uid, request.json()))


def search_get(router: Router, request: Request, uid: str) -> Response:
    module = _search_module()
    check_index_uid(uid)
    return ok(module.search(router.engine, uid, search_body_from_query(request.query)))


def multi_search(router: Router, request: Request) -> Response:
    return ok(_search_module().multi_search(router.engine, request.json()))


def facet_search(router: Router, request: Request, uid: str) -> Response:
    module = _search_module()
    check_index_uid(uid)
    return ok(module.facet_search(router.engine, uid, request.json()))


def similar_post(router: Router, request: Request, uid: str) -> Response:
    module = _search_module()
    check_index_uid(uid)
    return ok(module.similar(router.engine, uid, request.json()))


def similar_get(router: Router, request: Request, uid: str) -> Response:
    module = _search_module()
    check_index_uid(uid)
    return ok(module.similar(router.engine, uid, module.similar_params_from_query(request.query)))


ROUTES = (
    ("GET", "/", root),
    ("GET", "/health", health),
    ("GET", "/version", version),
    ("GET", "/stats", global_stats),
    ("GET", "/experimental-features", get_features),
    ("PATCH", "/experimental-features", patch_features),
    ("GET", "/indexes", list_indexes),
    ("POST", "/indexes", create_index),
    ("GET", "/indexes/{}", get_index),
    ("PATCH", "/indexes/{}", update_index),
    ("DELETE", "/indexes/{}", delete_index),
    ("GET", "/indexes/{}/stats", index_stats),
    ("POST", "/indexes/{}/compact", compact_index),
    ("POST", "/swap-indexes", swap_indexes),
    ("GET", "/indexes/{}/settings", get_settings),
    ("PATCH", "/indexes/{}/settings", patch_settings),
    ("DELETE", "/indexes/{}/settings", reset_settings),
    ("GET", "/indexes/{}/settings/{}", get_setting),
    ("PUT", "/indexes/{}/settings/{}", _write_setting("PUT")),
    ("PATCH", "/indexes/{}/settings/{}", _write_setting("PATCH")),
    ("DELETE", "/indexes/{}/settings/{}", reset_setting),
    ("GET", "/tasks", list_tasks),
    ("GET", "/tasks/{}", get_task),
    ("POST", "/tasks/cancel", _filtered_task_write("cancel", "cancel_tasks")),
    ("DELETE", "/tasks", _filtered_task_write("delete", "delete_tasks")),
    ("POST", "/indexes/{}/search", search_post),
    ("GET", "/indexes/{}/search", search_get),
    ("POST", "/multi-search", multi_search),
    ("POST", "/indexes/{}/facet-search", facet_search),
    ("POST", "/indexes/{}/similar", similar_post),
    ("GET", "/indexes/{}/similar", similar_get),
)
