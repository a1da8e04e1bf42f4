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
ALLOWED = {
    "core": set(),
    "transport": {"core"},
    "store": {"core"},
    "cluster": {"core", "transport", "store"},
    "devnode": {"core"},
    "proxy": {"core", "transport", "store", "cluster", "config", "devnode", "logs"},
    "sim": {"core", "transport", "store", "cluster", "devnode", "config", "proxy", "logs"},
    "cli": {"core", "transport", "store", "cluster", "devnode", "config", "proxy", "sim", "logs"},
    "config": {"core"},
    "logs": set(),
}


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


def test_the_core_imports_no_io_no_clock_and_no_outer_layer():
    offenders = []
    for path in (SRC / "core").rglob("*.py"):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in FORBIDDEN_IN_CORE:
                offenders.append(f"{path.name} imports {module}")
            if module.startswith("miroir.") and module.split(".")[1] != "core":
                offenders.append(f"{path.name} imports {module}")
    assert offenders == []


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
