"""The package's layers point one way: cli → report/sweep/train → viz/claims → analyses → data → models.

Read from the import statements of every module (function-local ones included, since a lazy
import is still a dependency), so a shortcut that works at run time still fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import poslens

ROOT = Path(poslens.__file__).resolve().parent
# shared helpers every layer may use: errors, atomic writes, lazy exports, progress bars, results, options
BASE = {"errors", "io", "lazy", "progress", "results", "options", "code_version", "poslens"}
# what each package may import besides itself and BASE
ALLOWED = {
    "models": set(),
    "data": {"models"},
    "harvest": {"models", "data"},
    "analyses": {"models", "data", "harvest"},
    "claims": {"models", "data", "analyses"},
    "viz": {"models", "data", "analyses"},
    "testing": {"models", "data"},
    "train": {"models", "data", "analyses"},
    "report": {"models", "data", "harvest", "analyses", "claims", "viz"},
    "sweep": {"models", "data", "harvest", "analyses", "claims", "viz", "report", "train"},
    "cli": {"models", "data", "harvest", "analyses", "claims", "viz", "report", "sweep", "train"},
}
ENTRY_POINTS = {"train/__main__.py"}  # `python -m poslens.train` hands over to the CLI


def _imports(path: Path):
    rel = path.relative_to(ROOT)
    pkg = ["poslens", *rel.parent.parts] if rel.parts else ["poslens"]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg[: len(pkg) - (node.level - 1)]
                yield ".".join(base + ([node.module] if node.module else [])), node.lineno
            elif node.module:
                yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, node.lineno


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1].removesuffix(".py") if len(parts) > 1 else "poslens"


def test_layers_import_only_downwards():
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if str(rel) in ENTRY_POINTS or len(rel.parts) == 1:  # top-level helpers are checked by BASE's users
            continue
        own = rel.parts[0]
        assert own in ALLOWED, f"{own}/ is a package the layering does not place; add it to ALLOWED"
        for target, line in _imports(path):
            if not target.startswith("poslens"):
                continue
            layer = _layer(target)
            if layer not in (own, *BASE, *ALLOWED[own]):
                bad.append(f"{rel}:{line} imports {target} ({own} -> {layer})")
    assert not bad, "\n".join(bad)


def test_nothing_but_tests_imports_the_planted_model_builders():
    users = [f"{p.relative_to(ROOT)}" for p in ROOT.rglob("*.py") if p.relative_to(ROOT).parts[0] != "testing"
             and any(t.startswith("poslens.testing") for t, _ in _imports(p))]
    assert not users, users


def _module_name(path: Path) -> str:
    parts = ("poslens", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_no_import_cycle_among_modules():
    """Module-level imports only: a function-local import (the families registry's lazy lookup) runs after
    both modules exist, so it cannot deadlock an import."""
    from graphlib import CycleError, TopologicalSorter

    files = {_module_name(p): p for p in ROOT.rglob("*.py")}

    def known(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for name, path in files.items():
        pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom):
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)] if node.level else []
                mod = ".".join(base + ([node.module] if node.module else [])) if node.level else (node.module or "")
                targets = [f"{mod}.{a.name}" for a in node.names] + [mod]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                dep = known(t) if t.startswith("poslens") else None
                if dep and dep != name and not name.startswith(dep + "."):  # a package's __init__ runs before its modules
                    deps.add(dep)
        graph[name] = deps
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


def test_analysis_modules_stay_small():
    big = {str(p.relative_to(ROOT)): n for p in (ROOT / "analyses").rglob("*.py")
           if (n := len(p.read_text().splitlines())) > 400}
    assert not big, f"split these analysis modules (at most 400 lines each): {big}"


# Fields that echo parameters as given (an analysis's options, a metric's parameters) stay mappings.
PARAMETER_ECHOES = {"options", "info"}


def _untyped(t) -> bool:
    """A bare container or Any anywhere in an annotation: a figure would read it by string key."""
    import types
    import typing

    if t in (dict, list, tuple, set, object, typing.Any):
        return True
    return any(_untyped(a) for a in typing.get_args(t) if a is not type(None) and a is not Ellipsis) \
        if typing.get_origin(t) in (dict, list, tuple, set, typing.Union, types.UnionType) else False


def test_analysis_results_are_typed():
    """Every dataclass an analysis returns names the type of each field, so a renamed field breaks
    a test (or a type check), never a figure at run time."""
    import dataclasses
    import importlib
    import pkgutil
    import typing

    import poslens.analyses

    bad, seen = [], 0
    for m in pkgutil.walk_packages(poslens.analyses.__path__, "poslens.analyses."):
        mod = importlib.import_module(m.name)
        for name, cls in vars(mod).items():
            if not (dataclasses.is_dataclass(cls) and isinstance(cls, type) and cls.__module__ == m.name):
                continue
            hints = typing.get_type_hints(cls)  # raises where an annotation names nothing importable
            for f in dataclasses.fields(cls):
                seen += 1
                if f.name not in PARAMETER_ECHOES and not f.name.startswith("_") and _untyped(hints[f.name]):
                    bad.append(f"{m.name}.{name}.{f.name}: {hints[f.name]}")
    assert seen > 500 and not bad, "\n".join(bad)
