"""Which code produced a cached result: poslens's version and the source it ran.

Caches (the report's sections, the sweep's cells) are keyed by the source of every poslens
module their code imports, directly or not, found by reading import statements (function-
local imports and the report's ``lazy("module", ...)`` references included), so a change
anywhere below a stage or cell recomputes it and a change elsewhere keeps it.

>>> v = code_version(("poslens.results",))
>>> v["package"] == __import__("poslens").__version__, "poslens/results.py" in v["files"]
(True, True)
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path


_PACKAGE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def module_file(name: str) -> Path | None:
    """The source file of module ``name``, or None (not a module, or not Python source)."""
    if name == "poslens" or name.startswith("poslens."):  # found on disk: find_spec would import the parents
        base = _PACKAGE.joinpath(*name.split(".")[1:])
        for path in (base / "__init__.py", base.with_suffix(".py")):
            if path.is_file():
                return path
        return None
    try:  # `from pkg.module import name` lists names that are not modules: those have no spec
        spec = importlib.util.find_spec(name)
    except (ImportError, AttributeError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def imports_of(name: str, path: Path) -> set[str]:
    """poslens modules that ``name`` (whose source is ``path``) imports anywhere."""
    st = path.stat()  # parsed once per process and version of the file: a report asks for ~60 closures
    return set(_imports_of(name, path, st.st_mtime_ns, st.st_size))


@lru_cache(maxsize=None)
def _imports_of(name: str, path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # `from pkg import module`
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "lazy" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.add(f"poslens.analyses.{node.args[0].value}")
    return frozenset(m for m in found if m == "poslens" or m.startswith("poslens."))


@lru_cache(maxsize=None)
def source_closure(roots: tuple[str, ...]) -> tuple[str, ...]:
    """Every poslens module reachable by imports from ``roots`` (sorted), parent packages included."""
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = module_file(name)
        if path is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        todo += sorted(imports_of(name, path) - seen)
    return tuple(sorted(seen))


@lru_cache(maxsize=None)
def code_version(modules: tuple[str, ...]) -> dict:
    """poslens's version, the files of ``source_closure(modules)`` (poslens's relative to the
    package's parent) and the sha256 of their source."""
    import poslens

    base = Path(poslens.__file__).parent.parent
    paths = {module_file(m) for m in source_closure(tuple(modules))}
    # poslens's files by their path in the package; a root outside it (a test's own stage) by its own path
    named = {(p.relative_to(base).as_posix() if base in p.parents else p.as_posix()): p for p in paths}
    files = sorted(named)
    h = hashlib.sha256()
    for rel in files:
        h.update(rel.encode() + b"\0" + named[rel].read_bytes() + b"\0")
    return {"package": poslens.__version__, "source_sha256": h.hexdigest(), "files": files}
