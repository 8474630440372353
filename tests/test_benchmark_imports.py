"""Every import in benchmarks/ resolves, function-local ones included.

Benchmarks run for minutes to hours and are not run by ``make test``; an import left stale by a
refactor (``from natkit.methods import nat_supernet`` after the per-method packages) only shows when
someone reruns the benchmark. This walks every import statement of every benchmark module (AST,
any depth) that names natkit or benchmarks and checks that the module imports and has the name.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "benchmarks").rglob("*.py"))


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] in ("natkit", "benchmarks"):
            for alias in node.names:
                yield node.lineno, node.module, alias.name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in ("natkit", "benchmarks"):
                    yield node.lineno, alias.name, None


def test_benchmarks_found():
    assert len(FILES) > 20


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_import_resolves(path):
    broken = []
    for line, module, name in _imports(path):
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            broken.append(f"{path.name}:{line}: import {module}: {e}")
            continue
        if name is None or name == "*" or hasattr(mod, name):
            continue
        try:  # a submodule not yet imported by its package
            importlib.import_module(f"{module}.{name}")
        except ImportError:
            broken.append(f"{path.name}:{line}: {module} has no {name!r}")
    assert not broken, "\n".join(broken)
