"""Miroir's configuration: the YAML schema, its defaults, validation and environment overrides.

One place for every default. Validation errors name the field and the reason. A config
round-trips YAML -> MiroirConfig -> YAML unchanged (`to_dict` writes every field).
Secrets (master keys, admin key) are never part of `repr` so they cannot leak into logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import attrs
import yaml

from miroir.core.reshard_window import WindowError, parse_window
from miroir.core.topology import Node, Topology


class ConfigError(ValueError):
    """An invalid configuration: `field` is the dotted path, `reason` says what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@attrs.frozen
class NodeConfig:
    id: str
    address: str
    replica_group: int = 0


@attrs.frozen
class HealthConfig:
    interval_ms: int = 1000
    timeout_ms: int = 500
    unhealthy_threshold: int = 3
    recovery_threshold: int = 2


@attrs.frozen
class ScatterConfig:
    node_timeout_ms: int = 5000
    retry_on_timeout: bool = True
    # Reads: at most this many calls of one proxy process run on one node at once; more wait in
    # order, and a read that would wait past its deadline or queue_timeout_ms is answered 503
    # miroir_overloaded with Retry-After at once. 0 turns the limit off.
    max_in_flight_per_node: int = 16
    queue_timeout_ms: int = 2000
    # Reads with RF > 1: each shard's replica by latency and load (adaptive replica selection);
    # a shard later than its node's recent p95 is asked of another replica too (hedging),
    # within hedge_budget_percent of the node calls (at most 10 % extra). Both on by default
    # since the simulator's sweeps pass with them on (docs/search.md).
    adaptive_replica_selection: bool = True
    hedging: bool = True
    hedge_budget_percent: int = 10
    unavailable_shard_policy: str = "partial"  # partial | error
    # Document writes: a node write that failed or timed out is looked up (a lost answer's task
    # is adopted) or sent again, at most write_retries times per node, within
    # write_retry_budget_percent extra attempts and the write's deadline, write_deadline_ms
    # (0: twice node_timeout_ms); retry_on_timeout covers writes too. docs/operations.md.
    write_retries: int = 2
    write_retry_budget_percent: int = 20
    write_deadline_ms: int = 0


@attrs.frozen
class ServerConfig:
    bind: str = "127.0.0.1"
    port: int = 7700
    max_body_bytes: int = 100 * 1024 * 1024
    workers: int = 1


@attrs.frozen
class TaskStoreConfig:
    backend: str = "sqlite"  # sqlite | redis | memory (tests and simulation only: not durable)
    path: str = "miroir-tasks.sqlite3"
    url: str | None = None
    key_prefix: str = "miroir:"
    ttl_seconds: int = 7 * 24 * 3600
    timeout_seconds: int = 5  # SQLite busy timeout; Redis connect and socket timeout
    threads: int = 4  # worker threads (and connections) per store
    sqlite_synchronous: str = "full"  # full | normal (faster; a power cut may lose recent tasks)


@attrs.frozen
class IdempotencyConfig:
    """`Idempotency-Key` on writes: how long a key is remembered, and how many keys at most."""

    ttl_seconds: int = 24 * 3600
    max_cached_keys: int = 100_000


@attrs.frozen
class ReconcileConfig:
    """The anti-entropy reconciler: whether it runs, how often a pass starts, its pace."""

    enabled: bool = True
    interval_seconds: int = 60
    shard_pause_ms: int = 50


@attrs.frozen
class AdminConfig:
    enabled: bool = True
    api_key: str | None = attrs.field(default=None, repr=False)


@attrs.frozen
class MetricsConfig:
    enabled: bool = True
    port: int = 9090


@attrs.frozen
class RebalanceConfig:
    # The migration engine (miroir.cluster.rebalance); off, membership changes answer 501.
    enabled: bool = True
    max_docs_per_second: int = 2000  # the copy's rate limit, cluster-wide
    grace_ms: int = 5000  # after cutover, how long old owners keep their copies


@attrs.frozen
class ReshardingConfig:
    # Daily UTC windows a reshard may start in (`"HH:MM-HH:MM UTC"`; empty: any time); outside
    # them `POST /_miroir/indexes/{uid}/reshard` is refused unless `force: true`.
    allowed_windows: tuple[str, ...] = ()
    # After the flip, how long writes are mirrored back to the old index (rollback possible)
    # before it is deleted.
    grace_seconds: int = 300


@attrs.frozen
class MiroirConfig:
    master_key: str | None = attrs.field(default=None, repr=False)
    node_master_key: str | None = attrs.field(default=None, repr=False)
    shards: int = 64
    replication_factor: int = 1
    replica_groups: int = 1
    nodes: tuple[NodeConfig, ...] = ()
    health: HealthConfig = HealthConfig()
    scatter: ScatterConfig = ScatterConfig()
    server: ServerConfig = ServerConfig()
    task_store: TaskStoreConfig = TaskStoreConfig()
    idempotency: IdempotencyConfig = IdempotencyConfig()
    reconcile: ReconcileConfig = ReconcileConfig()
    admin: AdminConfig = AdminConfig()
    metrics: MetricsConfig = MetricsConfig()
    rebalance: RebalanceConfig = RebalanceConfig()
    resharding: ReshardingConfig = ReshardingConfig()

    def topology(self) -> Topology:
        return Topology(
            shards=self.shards,
            replication_factor=self.replication_factor,
            replica_groups=self.replica_groups,
            nodes=tuple(Node(n.id, n.address, n.replica_group) for n in self.nodes),
        )

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_SECTIONS: dict[str, type] = {
    "health": HealthConfig,
    "scatter": ScatterConfig,
    "server": ServerConfig,
    "task_store": TaskStoreConfig,
    "idempotency": IdempotencyConfig,
    "reconcile": ReconcileConfig,
    "admin": AdminConfig,
    "metrics": MetricsConfig,
    "rebalance": RebalanceConfig,
    "resharding": ReshardingConfig,
}
_ENV_OVERRIDES = {
    "MIROIR_MASTER_KEY": ("master_key",),
    "MIROIR_NODE_MASTER_KEY": ("node_master_key",),
    "MIROIR_ADMIN_API_KEY": ("admin", "api_key"),
}


def _expect_type(field: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    # bool is an int in Python; a YAML `true` where a number belongs is a mistake, not 1.
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(field, f"expected {_kind_name(kind)}, got a boolean")
    if not isinstance(value, kind):
        raise ConfigError(field, f"expected {_kind_name(kind)}, got {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    if isinstance(kind, tuple):
        return " or ".join(k.__name__ for k in kind)
    return {int: "an integer", str: "a string", bool: "a boolean", list: "a list"}.get(
        kind, kind.__name__)


def _build_section(name: str, cls: type, raw: Any) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, Mapping):
        raise ConfigError(name, "expected a mapping")
    fields = {f.name: f for f in attrs.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ConfigError(f"{name}.{unknown[0]}", "unknown key")
    values = {}
    for key, value in raw.items():
        field = fields[key]
        kind = _field_kind(field)
        if value is None and _optional(field):
            values[key] = None
            continue
        if kind is tuple:  # a list of strings
            items = _expect_type(f"{name}.{key}", value, list)
            values[key] = tuple(_expect_type(f"{name}.{key}[{i}]", item, str)
                                for i, item in enumerate(items))
            continue
        values[key] = _expect_type(f"{name}.{key}", value, kind)
    return cls(**values)


def _field_kind(field: attrs.Attribute) -> type:
    text = str(field.type)
    for candidate, kind in (("int", int), ("bool", bool), ("str", str), ("tuple", tuple)):
        if text.startswith(candidate):
            return kind
    raise TypeError(f"no scalar kind for {field.name}: {text}")


def _optional(field: attrs.Attribute) -> bool:
    return "None" in str(field.type)


def config_from_dict(raw: Mapping[str, Any] | None, env: Mapping[str, str] | None = None) -> MiroirConfig:
    """Validate a parsed YAML mapping (plus environment overrides) into a MiroirConfig."""
    raw = dict(raw or {})
    env = os.environ if env is None else env
    for var, path in _ENV_OVERRIDES.items():
        if env.get(var):
            section = raw
            for part in path[:-1]:
                existing = section.get(part)
                if existing is not None and not isinstance(existing, Mapping):
                    raise ConfigError(part, "expected a mapping")
                section[part] = section = dict(existing or {})
            section[path[-1]] = env[var]

    top_fields = {f.name for f in attrs.fields(MiroirConfig)}
    unknown = sorted(set(raw) - top_fields)
    if unknown:
        raise ConfigError(unknown[0], "unknown key")

    values: dict[str, Any] = {}
    for key in ("master_key", "node_master_key"):
        if raw.get(key) is not None:
            values[key] = _expect_type(key, raw[key], str)
    for key in ("shards", "replication_factor", "replica_groups"):
        if key in raw:
            values[key] = _expect_type(key, raw[key], int)
            if values[key] < 1:
                raise ConfigError(key, "must be at least 1")
    for name, cls in _SECTIONS.items():
        values[name] = _build_section(name, cls, raw.get(name))
    values["nodes"] = _build_nodes(raw.get("nodes"))
    config = MiroirConfig(**values)
    _check_semantics(config)
    _check_reconcile(config)
    return config


def _build_nodes(raw: Any) -> tuple[NodeConfig, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("nodes", "expected a list")
    nodes = []
    for i, item in enumerate(raw):
        field = f"nodes[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(field, "expected a mapping with id, address, replica_group")
        unknown = sorted(set(item) - {"id", "address", "replica_group"})
        if unknown:
            raise ConfigError(f"{field}.{unknown[0]}", "unknown key")
        for required in ("id", "address"):
            if required not in item:
                raise ConfigError(f"{field}.{required}", "is required")
        node_id = _expect_type(f"{field}.id", item["id"], str)
        if not node_id:
            raise ConfigError(f"{field}.id", "must not be empty")
        address = _expect_type(f"{field}.address", item["address"], str)
        parsed = urlparse(address)
        # The node transport speaks plain HTTP/1.1 (nodes sit on a private network); refusing
        # https here says so at validation instead of failing at startup.
        if parsed.scheme != "http" or not parsed.hostname:
            raise ConfigError(f"{field}.address", f"{address!r} is not an http:// URL (TLS to nodes is not supported)")
        try:
            parsed.port  # noqa: B018 - raises on a malformed port
        except ValueError:
            raise ConfigError(f"{field}.address", f"{address!r} has an invalid port") from None
        group = _expect_type(f"{field}.replica_group", item.get("replica_group", 0), int)
        nodes.append(NodeConfig(node_id, address.rstrip("/"), group))
    return tuple(nodes)


def _check_overload_settings(scatter: ScatterConfig) -> None:
    """The read path's concurrency limit, queue and hedging budget (issue 20)."""
    for field, value in (
        ("scatter.max_in_flight_per_node", scatter.max_in_flight_per_node),
        ("scatter.queue_timeout_ms", scatter.queue_timeout_ms),
    ):
        if value < 0:
            raise ConfigError(field, "must be at least 0")
    if not 0 <= scatter.hedge_budget_percent <= 100:
        raise ConfigError("scatter.hedge_budget_percent", "must be between 0 and 100")
    if not 0 <= scatter.write_retry_budget_percent <= 100:
        raise ConfigError("scatter.write_retry_budget_percent", "must be between 0 and 100")
    for field, value in (("scatter.write_retries", scatter.write_retries),
                         ("scatter.write_deadline_ms", scatter.write_deadline_ms)):
        if value < 0:
            raise ConfigError(field, "must be at least 0")
    if 0 < scatter.write_deadline_ms < scatter.node_timeout_ms:
        raise ConfigError("scatter.write_deadline_ms",
                          "must be 0 or at least scatter.node_timeout_ms")


def _check_reconcile(config: MiroirConfig) -> None:
    if config.reconcile.shard_pause_ms < 0:
        raise ConfigError("reconcile.shard_pause_ms", "must not be negative")


def _check_semantics(config: MiroirConfig) -> None:
    seen: dict[str, int] = {}
    for i, node in enumerate(config.nodes):
        if node.id in seen:
            raise ConfigError(f"nodes[{i}].id", f"duplicate node id {node.id!r} (also nodes[{seen[node.id]}])")
        seen[node.id] = i
        if not 0 <= node.replica_group < config.replica_groups:
            raise ConfigError(
                f"nodes[{i}].replica_group",
                f"{node.replica_group} is outside 0..{config.replica_groups - 1}",
            )
    if config.nodes:
        for group in range(config.replica_groups):
            members = sum(1 for n in config.nodes if n.replica_group == group)
            if members < config.replication_factor:
                raise ConfigError(
                    "nodes",
                    f"replica group {group} has {members} nodes, fewer than "
                    f"replication_factor {config.replication_factor}",
                )
    if config.scatter.unavailable_shard_policy not in ("partial", "error"):
        raise ConfigError("scatter.unavailable_shard_policy", "must be 'partial' or 'error'")
    if config.task_store.backend not in ("sqlite", "redis", "memory"):
        raise ConfigError("task_store.backend", "must be 'sqlite', 'redis' or 'memory'")
    if config.task_store.sqlite_synchronous not in ("full", "normal"):
        raise ConfigError("task_store.sqlite_synchronous", "must be 'full' or 'normal'")
    if config.task_store.backend == "redis" and not config.task_store.url:
        raise ConfigError("task_store.url", "is required when backend is 'redis'")
    for field, value in (
        ("health.interval_ms", config.health.interval_ms),
        ("health.timeout_ms", config.health.timeout_ms),
        ("health.unhealthy_threshold", config.health.unhealthy_threshold),
        ("health.recovery_threshold", config.health.recovery_threshold),
        ("scatter.node_timeout_ms", config.scatter.node_timeout_ms),
        ("server.max_body_bytes", config.server.max_body_bytes),
        ("server.workers", config.server.workers),
        ("task_store.ttl_seconds", config.task_store.ttl_seconds),
        ("task_store.timeout_seconds", config.task_store.timeout_seconds),
        ("task_store.threads", config.task_store.threads),
        ("idempotency.ttl_seconds", config.idempotency.ttl_seconds),
        ("idempotency.max_cached_keys", config.idempotency.max_cached_keys),
        ("reconcile.interval_seconds", config.reconcile.interval_seconds),
        ("rebalance.max_docs_per_second", config.rebalance.max_docs_per_second),
        ("rebalance.grace_ms", config.rebalance.grace_ms),
        ("resharding.grace_seconds", config.resharding.grace_seconds),
    ):
        if value < 1:
            raise ConfigError(field, "must be at least 1")
    _check_overload_settings(config.scatter)
    _check_windows(config.resharding)
    for field, port in (("server.port", config.server.port), ("metrics.port", config.metrics.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(field, "must be a TCP port (0-65535)")


def _check_windows(resharding: ReshardingConfig) -> None:
    for position, window in enumerate(resharding.allowed_windows):
        try:
            parse_window(window)
        except WindowError as error:
            raise ConfigError(f"resharding.allowed_windows[{position}]", str(error)) from None


def load_config(path: str | None = None, env: Mapping[str, str] | None = None) -> MiroirConfig:
    """Read the YAML file at `path` (or $MIROIR_CONFIG) and validate it."""
    env = os.environ if env is None else env
    path = path or env.get("MIROIR_CONFIG")
    if not path:
        return config_from_dict({}, env)
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except OSError as exc:
        raise ConfigError("MIROIR_CONFIG", f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("MIROIR_CONFIG", f"{path} is not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError("(top level)", "expected a mapping")
    return config_from_dict(raw, env)
