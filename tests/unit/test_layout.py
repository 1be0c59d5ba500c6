"""The package's shape: data flows one way between subpackages, no import cycle, and
``fcgtainer --help`` stays light."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE = Path(__file__).resolve().parents[2] / "fcgtainer"
LEAVES = {
    "errors",
    "states",
    "proc",
    "paths",
    "private",
    "node",
    "versions",
    "tasktable",
    "__init__",
}

# What each part may import (at module level or inside a function). Leaves import nothing
# of fcgtainer but errors. The CLI sits on top; nothing imports it.
ALLOWED = {
    "config": {"errors", "paths", "versions"},
    "plan": {"config", "errors", "node", "states"},
    "backends": {"config", "plan", "states", "proc", "private", "tasktable", "errors", "__init__"},
    "host": {"config", "node", "proc", "errors"},
    "images": {"config", "host", "paths", "proc", "errors", "versions"},
    "runs": {
        "backends",
        "config",
        "plan",
        "images",
        "host",
        "node",
        "paths",
        "private",
        "proc",
        "states",
        "tasktable",
        "errors",
        "__init__",
    },
    "cli": {
        "backends",
        "config",
        "plan",
        "images",
        "host",
        "runs",
        "node",
        "paths",
        "states",
        "errors",
    },
    "proc": {"errors"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, *, top_level_only: bool) -> set[str]:
    """The fcgtainer modules ``path`` imports."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name.split(".")[0] == "fcgtainer"}


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "_shipped" not in p.parts}


def part(module: str) -> str:
    """The subpackage (or top-level module) a module belongs to."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else "__init__"


def test_subpackages_depend_one_way() -> None:
    wrong = []
    for name, path in modules().items():
        here = part(name)
        if here in ("__main__",):
            continue
        for target in imports(path, top_level_only=False):
            there = part(target)
            if (
                target == "fcgtainer"
                or there == here
                or (there not in {*ALLOWED, *LEAVES} and target not in modules())
            ):
                continue
            allowed = ALLOWED.get(here, {"errors"} if here in LEAVES else set())
            if there != here and there not in allowed:
                wrong.append(f"{name} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle_at_module_level() -> None:
    known = modules()
    graph = {
        name: {t for t in imports(path, top_level_only=True) if t in known and t != name}
        for name, path in known.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt] if nxt in stack else [node, nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize(
    "subpackage", ["config", "plan", "runs", "images", "host", "backends", "node", "cli"]
)
def test_each_subpackage_imports_alone(subpackage: str) -> None:
    """Every module of the subpackage, imported first in a fresh interpreter."""
    names = [n for n in modules() if n.startswith(f"fcgtainer.{subpackage}")]
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    done = subprocess.run(
        [sys.executable, "-c", code, *sorted(names, reverse=True)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_help_imports_no_models_backends_or_payloads() -> None:
    code = (
        "import sys\n"
        "sys.argv = ['fcgtainer', '--help']\n"
        "from fcgtainer import cli\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "heavy = ('pydantic', 'tensorflow', 'htcondor2', 'sqlite3', 'fcgtainer.backends',\n"
        "         'fcgtainer.config.site', 'fcgtainer.runs.journal', 'yaml')\n"
        "print('HEAVY', [m for m in heavy if m in sys.modules])\n"
    )
    env = dict(os.environ, COLUMNS="100")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr


def test_the_wheel_lists_every_subpackage() -> None:
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {
        module_name(p.parent) for p in PACKAGE.rglob("__init__.py") if "_shipped" not in p.parts
    }
    assert set(config["packages"]) == on_disk | {"fcgtainer._shipped"}
