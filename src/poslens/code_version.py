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

import hashlib
import importlib.util
import re
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


# Import statements (multi-line parenthesised names included) and the report's lazy("module")
# references, read with a regex: parsing every file with ast cost ~1.8 s of each report. A
# docstring line that reads like an import only adds a module to the closure (a cache key
# that is too careful), never drops one.
_IMPORT = re.compile(
    r"^[ \t]*(?:from[ \t]+(\.*)([\w.]*)[ \t]+import[ \t]*(\([^)]*\)|[^\n]*)|import[ \t]+([^\n]*))", re.M)
_LAZY = re.compile(r"\blazy\(\s*[\"']([\w.]+)[\"']\s*,\s*[\"']\w+[\"'](?:\s*,\s*[\"'](\w+)[\"'])?")


def _names(text: str) -> list[str]:
    """The first word of each comma-separated item, comments and line continuations removed."""
    text = "\n".join(line.split("#")[0] for line in text.strip("()").splitlines()).replace("\\", " ")
    return [w.split()[0] for w in text.split(";")[0].split(",") if w.split()]


@lru_cache(maxsize=None)
def _imports_of(name: str, path: Path, mtime_ns: int, size: int) -> frozenset[str]:
    text = path.read_text(encoding="utf-8")
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for dots, module, names, plain in _IMPORT.findall(text):
        if not names and plain:
            found.update(_names(plain))
            continue
        base = module
        if dots:
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - len(dots) + 1] + ([module] if module else []))
        found.add(base)
        found.update(f"{base}.{n}" for n in _names(names))  # `from pkg import module`
    found.update(f"poslens.{package or 'analyses'}.{m}" for m, package in _LAZY.findall(text))
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
