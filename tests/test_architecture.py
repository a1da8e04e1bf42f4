"""The layer rules of docs/architecture.md, enforced by reading every module's imports."""

import ast
import pathlib

import pytest

SRC = pathlib.Path(__file__).resolve().parent.parent / "src" / "miroir"

# I/O, clocks and concurrency that the pure core must never touch.
FORBIDDEN_IN_CORE = {
    "trio", "asyncio", "socket", "time", "sqlite3", "redis", "httpx", "h11",
    "quart", "quart_trio", "hypercorn", "threading", "os", "random", "select", "ssl",
}
# Which outer layers each layer may import (inner layers only; arrows point inward).
# `meili` is Meilisearch's request contract, pure like the core; the proxy reads requests with
# it and never loads the devnode (a node's engine has no business in production).
ALLOWED = {
    "core": set(),
    "meili": {"core"},
    "transport": {"core"},
    "store": {"core"},
    "cluster": {"core", "transport", "store"},
    "devnode": {"core", "meili"},
    "proxy": {"core", "meili", "transport", "store", "cluster", "config", "logs"},
    "sim": {"core", "meili", "transport", "store", "cluster", "devnode", "config", "proxy",
            "logs"},
    "cli": {"core", "meili", "transport", "store", "cluster", "devnode", "config", "proxy",
            "sim", "logs"},
    "config": {"core"},
    "logs": set(),
}
PURE = ("core", "meili")


def imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def layer_of(path: pathlib.Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def python_files():
    return sorted(p for p in SRC.rglob("*.py"))


@pytest.mark.parametrize("package", PURE)
def test_the_pure_packages_import_no_io_no_clock_and_no_outer_layer(package):
    offenders = []
    for path in (SRC / package).rglob("*.py"):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in FORBIDDEN_IN_CORE:
                offenders.append(f"{path.name} imports {module}")
            if module.startswith("miroir.") and module.split(".")[1] not in ALLOWED[package] | {
                package
            }:
                offenders.append(f"{path.name} imports {module}")
    assert offenders == []


def test_the_proxy_never_loads_the_devnode():
    """Not only no direct import: nothing the proxy imports pulls the devnode in either."""
    import subprocess
    import sys

    probe = ("import sys, miroir.proxy, miroir.proxy.app; "
             "print(sorted(m for m in sys.modules if m.startswith('miroir.devnode')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "[]"


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_inward(path):
    layer = layer_of(path)
    if layer not in ALLOWED:
        return  # package root files (__init__.py) belong to no layer
    for module in imported_modules(path):
        parts = module.split(".")
        if parts[0] != "miroir" or len(parts) < 2:
            continue
        target = parts[1]
        if target in (layer, "__init__"):
            continue
        assert target in ALLOWED[layer], f"{layer} must not import miroir.{target} ({path.name})"


def test_the_checker_sees_a_violation(tmp_path):
    # The rule above is only worth something if it can fail.
    bad = tmp_path / "bad.py"
    bad.write_text("import trio\nfrom miroir.proxy import app\n")
    assert {"trio", "miroir.proxy"} <= imported_modules(bad)


def test_ctl_is_only_an_http_client_of_miroir():
    """`miroir ctl` talks to a running Miroir over the admin API: it imports nothing of Miroir's
    but its own package, so it cannot reach a node or the store behind Miroir's back."""
    offenders = [f"{path.name} imports {module}"
                 for path in (SRC / "cli" / "ctl").rglob("*.py")
                 for module in imported_modules(path)
                 if module.startswith("miroir.") and not module.startswith("miroir.cli.ctl")]
    assert offenders == []
    assert list((SRC / "cli" / "ctl").rglob("*.py"))  # the rule looked at something
