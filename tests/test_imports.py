"""The packages stand on one another without a cycle: ``search`` imports ``prune``, never the
reverse, and what both ask (the accuracy budget, ``slimkit.measure.Budget``; the bisection,
``slimkit._bisect``) lies below both. Module-level imports only: an import inside a function
is how a package reaches an optional dependency or one above it, on purpose."""

from __future__ import annotations

import ast
from pathlib import Path

import slimkit

ROOT = Path(slimkit.__file__).parent


def _package(parts: list[str]) -> str | None:
    """The subpackage a module path (relative to ``slimkit``) lies in; None for the top."""
    return parts[0] if parts and (ROOT / parts[0]).is_dir() else None


def _targets(node: ast.ImportFrom, here: list[str]) -> list[list[str]]:
    base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
    if node.module:
        return [base + node.module.split(".")]
    return [[*base, alias.name] for alias in node.names]


def package_imports() -> dict[str, set[str]]:
    """Which subpackages each subpackage imports at module level (relative imports)."""
    edges: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        source = _package(parts)
        if source is None:
            continue
        here = parts[:-1]  # the package a module's relative imports start from
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue  # absolute imports are third-party; `if TYPE_CHECKING:` is skipped
            for target in _targets(node, here):
                package = _package(target)
                if package is not None and package != source:
                    edges.setdefault(source, set()).add(package)
    return edges


def _reachable(edges: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in edges.get(todo.pop(), set()) - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_no_two_packages_import_each_other() -> None:
    edges = package_imports()
    cycles = sorted(p for p in edges if p in _reachable(edges, p))
    assert cycles == [], {p: sorted(edges[p]) for p in cycles}


def test_the_budget_and_the_bisection_lie_below_prune_and_search() -> None:
    edges = package_imports()
    assert "prune" in edges["search"] and "search" not in _reachable(edges, "prune")
    assert "measure" in edges["prune"] and "measure" in edges["search"]
    assert not {"prune", "search"} & _reachable(edges, "measure")
