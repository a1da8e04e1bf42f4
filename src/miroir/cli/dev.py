"""`miroir dev`: a whole local cluster in one command — devnodes on free ports plus the proxy.

Owns the local-cluster recipe and the process plumbing it needs (also used by the acceptance
tests and the ingest benchmark): spawning node processes on free loopback ports, waiting for
their /health, building the MiroirConfig that lists them, and stopping every child on the way
out. It must never leave a child behind: children run in their own process group (so stopping
one stops its whole tree), are asked to die with their parent (Linux `PR_SET_PDEATHSIG`, for
the case where this process is killed outright), and are stopped in `finally` blocks.

Why nodes are separate processes and not in-process ASGI apps: a node then costs CPU the way a
real Meilisearch node does (the ingest benchmark compares like with like on a 2-core machine),
a node survives a crash of the proxy, a test can kill exactly one node, and the same code path
starts a real Meilisearch binary when $MIROIR_MEILISEARCH_BIN is set.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from miroir.config import ConfigError, MiroirConfig, config_from_dict

LOOPBACK = "127.0.0.1"
NODE_READY_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0
SPAWN_ATTEMPTS = 3  # a free port can be taken between choosing it and the node binding it
MEILISEARCH_BIN_ENV = "MIROIR_MEILISEARCH_BIN"

# `python -c` rather than `python -m miroir.cli`: works whether or not the package has a
# __main__ module, and with whichever interpreter runs us (the venv's).
_MIROIR_MAIN = "import sys; from miroir.cli import main; sys.exit(main())"


def miroir_command(*args: str) -> list[str]:
    """argv that runs `miroir <args>` with this interpreter."""
    return [sys.executable, "-c", _MIROIR_MAIN, *args]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="run a local cluster: devnodes plus the proxy",
        description=(
            "Start --nodes devnodes (spread evenly over --groups replica groups) on free "
            "loopback ports and the Miroir proxy in front of them. Ctrl-C stops everything."
        ),
    )
    parser.add_argument("--port", type=int, default=7700, help="proxy port (default 7700)")
    parser.add_argument("--bind", default=LOOPBACK, help="proxy address (default 127.0.0.1)")
    parser.add_argument("--master-key", help="client master key (default: none, API open)")
    parser.add_argument("--admin-key", help="key for /_miroir/* (default: generated, printed)")
    parser.add_argument("--nodes", type=int, default=3, help="devnodes in total (default 3)")
    parser.add_argument("--groups", type=int, default=1, help="replica groups (default 1)")
    parser.add_argument("--rf", type=int, default=1, help="replication factor (default 1)")
    parser.add_argument("--shards", type=int, default=16, help="logical shards (default 16)")
    parser.add_argument(
        "--task-store", help="SQLite file for Miroir's tasks (default: in a temp dir)"
    )
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="Prometheus port (default: any free port)"
    )
    parser.set_defaults(func=run_dev)


# ---- the plan -------------------------------------------------------------------------------


class DevError(Exception):
    """The local cluster cannot be started as asked (bad flags, a node that would not start)."""


def plan_nodes(nodes: int, groups: int, rf: int) -> list[tuple[str, int]]:
    """(node id, replica group) for every node, spread round-robin so group sizes differ by <= 1."""
    if groups < 1 or rf < 1 or nodes < 1:
        raise DevError("--nodes, --groups and --rf must be at least 1")
    if nodes < groups * rf:
        raise DevError(
            f"--nodes {nodes} is too few: {groups} group(s) of at least --rf {rf} nodes "
            f"need {groups * rf}"
        )
    return [(f"node-{i + 1}", i % groups) for i in range(nodes)]


def build_config(
    nodes: Iterable[NodeProcess],
    *,
    shards: int,
    rf: int,
    groups: int,
    node_master_key: str,
    master_key: str | None = None,
    admin_key: str | None = None,
    bind: str = LOOPBACK,
    port: int = 7700,
    task_store_path: str,
    metrics_port: int = 0,
    sections: Mapping[str, Mapping[str, Any]] | None = None,
) -> MiroirConfig:
    """The proxy's config for these nodes, validated like a YAML file (env overrides ignored).

    `sections` adds or replaces keys inside config sections, e.g. {"health": {"interval_ms": 200}}.
    """
    raw = {
        "master_key": master_key,
        "node_master_key": node_master_key,
        "shards": shards,
        "replication_factor": rf,
        "replica_groups": groups,
        "nodes": [
            {"id": n.node_id, "address": n.address, "replica_group": n.replica_group}
            for n in nodes
        ],
        "server": {"bind": bind, "port": port},
        "task_store": {"backend": "sqlite", "path": task_store_path},
        "admin": {"enabled": True, "api_key": admin_key},
        "metrics": {"enabled": True, "port": metrics_port},
    }
    for section, values in (sections or {}).items():
        raw[section] = {**raw.get(section, {}), **values}
    try:
        return config_from_dict(raw, env={})
    except ConfigError as error:
        raise DevError(f"invalid cluster: {error}") from None


def write_config(config: MiroirConfig, path: Path) -> Path:
    """Write the config (it holds keys) readable by this user only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(config.to_yaml())
    return path


# ---- processes ------------------------------------------------------------------------------


def free_port(host: str = LOOPBACK) -> int:
    """A port nothing listens on right now (the caller must cope with losing a race for it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start argv in its own process group, output to log_path, dying with this process."""
    log = open(log_path, "ab")  # the child owns it; closed below after fork
    try:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            env=env,
        )
    finally:
        log.close()


def stop_process(process: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the child's process group, wait up to `timeout`, then SIGKILL it. Idempotent."""
    if process.poll() is not None:
        return
    _signal_group(process, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        _signal_group(process, signal.SIGKILL)
        process.wait()


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


@attrs.define
class NodeProcess:
    """One node process (a devnode, or Meilisearch when $MIROIR_MEILISEARCH_BIN is set)."""

    node_id: str
    replica_group: int
    host: str
    port: int
    process: subprocess.Popen
    log_path: Path
    argv: list[str]

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        stop_process(self.process, timeout)

    def kill(self) -> None:
        """Die at once, as a crashed node would (no graceful shutdown)."""
        _signal_group(self.process, signal.SIGKILL)
        self.process.wait()

    def restart(self) -> None:
        """Start the node again, same address and data directory (after stop or kill)."""
        self.stop()
        self.process = spawn(self.argv, self.log_path)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def node_command(
    host: str, port: int, master_key: str, data_dir: Path, meilisearch_bin: str | None = None
) -> list[str]:
    """argv of one node: Meilisearch if a binary is given, else `miroir devnode`."""
    if meilisearch_bin:
        return [
            # `--opt=value`: a generated key may start with "-", which would read as an option.
            meilisearch_bin, "--http-addr", f"{host}:{port}", f"--master-key={master_key}",
            "--db-path", str(data_dir), "--no-analytics",
        ]
    return miroir_command(
        "devnode", "--host", host, "--port", str(port), f"--master-key={master_key}"
    )


def start_nodes(
    plan: Sequence[tuple[str, int]],
    *,
    master_key: str,
    workdir: Path,
    host: str = LOOPBACK,
    meilisearch_bin: str | None = None,
    timeout: float = NODE_READY_TIMEOUT,
) -> list[NodeProcess]:
    """Start one node per (id, group) on free ports and wait until every /health answers 200.

    A node that exits during startup (typically: its port was taken meanwhile) is started again
    on another port, up to SPAWN_ATTEMPTS times. On any failure every started node is stopped.
    """
    if meilisearch_bin is None:
        meilisearch_bin = os.environ.get(MEILISEARCH_BIN_ENV) or None
    started: dict[str, NodeProcess] = {}

    def launch(node_id: str, group: int) -> NodeProcess:
        port = free_port(host)
        data_dir = workdir / f"{node_id}.data"
        data_dir.mkdir(parents=True, exist_ok=True)
        log_path = workdir / f"{node_id}.log"
        argv = node_command(host, port, master_key, data_dir, meilisearch_bin)
        return NodeProcess(node_id, group, host, port, spawn(argv, log_path), log_path, argv)

    try:
        for node_id, group in plan:
            started[node_id] = launch(node_id, group)
        attempts = dict.fromkeys(started, 1)
        waiting = set(started)
        give_up_at = time.monotonic() + timeout
        while waiting:
            for node_id in sorted(waiting):
                node = started[node_id]
                if not node.alive():
                    if attempts[node_id] >= SPAWN_ATTEMPTS:
                        raise DevError(
                            f"{node_id} exited with status {node.process.returncode} while "
                            f"starting; its log ends with:\n{node.log_tail()}"
                        )
                    attempts[node_id] += 1
                    started[node_id] = launch(node_id, node.replica_group)
                elif health_ok(node.address):
                    waiting.discard(node_id)
            if waiting and time.monotonic() > give_up_at:
                raise DevError(f"nodes not healthy after {timeout:.0f}s: {sorted(waiting)}")
            if waiting:
                time.sleep(0.05)
    except BaseException:
        stop_all(started.values())
        raise
    return [started[node_id] for node_id, _ in plan]


def stop_all(nodes: Iterable[NodeProcess], timeout: float = STOP_TIMEOUT) -> None:
    """Stop every node: signal them all first, then wait, so stopping N costs one timeout."""
    nodes = list(nodes)
    for node in nodes:
        if node.alive():
            _signal_group(node.process, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for node in nodes:
        try:
            node.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            node.kill()


def health_ok(base_url: str, timeout: float = 1.0) -> bool:
    """True when GET {base_url}/health answers 2xx."""
    try:
        with urllib.request.urlopen(base_url + "/health", timeout=timeout) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_for_health(base_url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Poll GET /health until it answers; DevError on timeout or if `process` exits first."""
    give_up_at = time.monotonic() + timeout
    while not health_ok(base_url):
        if process is not None and process.poll() is not None:
            raise DevError(f"{base_url}: the process exited with status {process.returncode}")
        if time.monotonic() > give_up_at:
            raise DevError(f"{base_url}/health did not answer within {timeout:.0f}s")
        time.sleep(0.05)


# ---- a whole cluster as child processes (acceptance tests, benchmarks) -------------------------


PROXY_READY_TIMEOUT = 30.0


@attrs.define
class LocalCluster:
    """Nodes plus a `miroir serve` process in front of them, all children of this process."""

    url: str
    config: MiroirConfig
    config_path: Path
    nodes: list[NodeProcess]
    proxy: subprocess.Popen
    proxy_log: Path

    def node(self, node_id: str) -> NodeProcess:
        return next(n for n in self.nodes if n.node_id == node_id)

    def stop(self) -> None:
        stop_process(self.proxy)
        stop_all(self.nodes)


@contextlib.contextmanager
def local_cluster(
    workdir: Path,
    *,
    nodes: int = 3,
    groups: int = 1,
    rf: int = 1,
    shards: int = 16,
    master_key: str | None = None,
    admin_key: str | None = None,
    sections: Mapping[str, Mapping[str, Any]] | None = None,
) -> Iterator[LocalCluster]:
    """Start nodes and `miroir serve` on free loopback ports; stop them all on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    node_master_key = secrets.token_urlsafe(24)
    started: list[NodeProcess] = []
    proxy: subprocess.Popen | None = None
    try:
        started = start_nodes(
            plan_nodes(nodes, groups, rf), master_key=node_master_key, workdir=workdir
        )
        port = free_port()
        config = build_config(
            started, shards=shards, rf=rf, groups=groups, node_master_key=node_master_key,
            master_key=master_key, admin_key=admin_key, port=port,
            task_store_path=str(workdir / "miroir-tasks.sqlite3"), sections=sections,
        )
        config_path = write_config(config, workdir / "miroir.yaml")
        proxy_log = workdir / "miroir-serve.log"
        proxy = spawn(miroir_command("serve", "--config", str(config_path)), proxy_log)
        url = f"http://{LOOPBACK}:{port}"
        try:
            wait_for_health(url, PROXY_READY_TIMEOUT, proxy)
        except DevError as error:
            tail = "\n".join(proxy_log.read_text(errors="replace").splitlines()[-30:])
            raise DevError(f"miroir serve did not start: {error}; its log ends with:\n{tail}") from None
        yield LocalCluster(url, config, config_path, started, proxy, proxy_log)
    finally:
        if proxy is not None:
            stop_process(proxy)
        stop_all(started)


# ---- the command ------------------------------------------------------------------------------


def run_dev(args: argparse.Namespace) -> int:
    from miroir.cli.serve import serve_in_process

    def terminate(_signum, _frame):  # during the synchronous start-up: unwind through `finally`
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    nodes: list[NodeProcess] = []
    with tempfile.TemporaryDirectory(prefix="miroir-dev-", ignore_cleanup_errors=True) as tmp:
        workdir = Path(tmp)
        try:
            try:
                plan = plan_nodes(args.nodes, args.groups, args.rf)
                if args.shards < 1:
                    raise DevError("--shards must be at least 1")
                node_master_key = secrets.token_urlsafe(24)
                admin_key = args.admin_key or secrets.token_urlsafe(18)
                nodes = start_nodes(plan, master_key=node_master_key, workdir=workdir)
                config = build_config(
                    nodes, shards=args.shards, rf=args.rf, groups=args.groups,
                    node_master_key=node_master_key, master_key=args.master_key,
                    admin_key=admin_key, bind=args.bind, port=args.port,
                    task_store_path=args.task_store or str(workdir / "miroir-tasks.sqlite3"),
                    metrics_port=args.metrics_port,
                )
            except DevError as error:
                print(f"miroir dev: {error}", file=sys.stderr)
                return 2
            config_path = write_config(config, workdir / "miroir.yaml")

            def announce(binds: list[str], metrics_url: str | None) -> None:
                kind = "Meilisearch nodes" if os.environ.get(MEILISEARCH_BIN_ENV) else "devnodes"
                print(describe(config, binds, metrics_url, config_path, kind), flush=True)

            signal.signal(signal.SIGTERM, previous)  # trio handles signals from here on
            try:
                serve_in_process(config, on_ready=announce)
            except OSError as error:  # typically: the proxy port is in use
                print(f"miroir dev: cannot serve: {error}", file=sys.stderr)
                return 1
            print("miroir dev: stopped", flush=True)
            return 0
        except KeyboardInterrupt:
            return 130
        finally:
            stop_all(nodes)
            signal.signal(signal.SIGTERM, previous)


def describe(
    config: MiroirConfig,
    binds: list[str],
    metrics_url: str | None,
    config_path: Path,
    node_kind: str = "devnodes",
) -> str:
    """What `miroir dev` prints once the proxy accepts connections (the first line is parsed by
    tests: keep its shape)."""
    endpoint = binds[0] if binds else f"http://{config.server.bind}:{config.server.port}"
    lines = [
        f"Miroir is running at {endpoint}",
        f"  master key: {config.master_key or '(none: the API is open)'}",
        f"  admin key:  {config.admin.api_key}",
        f"  cluster:    {len(config.nodes)} {node_kind}, {config.replica_groups} replica group(s), "
        f"RF {config.replication_factor}, {config.shards} shards",
    ]
    lines += [f"  {n.id}: {n.address} (group {n.replica_group})" for n in config.nodes]
    if metrics_url:
        lines.append(f"  metrics:    {metrics_url}")
    lines.append(f"  config:     {config_path}")
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)
