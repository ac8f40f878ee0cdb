"""The sweep's content-addressed store: one verified JSON file per cell.

A cell's key is the sha256 of its *material*: model, revision, analysis, options and the
code version (poslens's version and a hash of every poslens source file the analysis
imports, found by reading their import statements). The entry holds the material and a
checksum of its body, and is written atomically. Reading verifies both: an entry that is
damaged, edited, or written for other material (another poslens version, other code) is
reported as absent and recomputed, never trusted.

>>> s = Store(tmp_path)                                       # doctest: +SKIP
>>> k = s.key({"model": "tiny", "analysis": "helix"})         # doctest: +SKIP
>>> s.put(k, material, {"status": "ok", "metrics": {}}); s.get(k, material)   # doctest: +SKIP
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import lru_cache
from pathlib import Path

from ..io import atomic_write_text
from ..results import to_jsonable

FORMAT = "poslens-sweep-cell/1"


def canonical(obj) -> str:
    """The one JSON spelling of ``obj`` that keys and checksums are computed from."""
    return json.dumps(to_jsonable(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _module_file(name: str) -> Path | None:
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec is not None and spec.origin and spec.origin.endswith(".py") else None


def _imports(path: Path, module: str) -> set[str]:
    """poslens modules ``path`` (the source of ``module``) imports, relative imports resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                root = ".".join(base + ([node.module] if node.module else []))
            else:
                root = node.module or ""
            out.add(root)
            out.update(f"{root}.{a.name}" for a in node.names)  # `from pkg import module`
    return {m for m in out if m == "poslens" or m.startswith("poslens.")}


@lru_cache(maxsize=None)
def code_version(modules: tuple[str, ...]) -> dict:
    """poslens's version and the sha256 of the source of ``modules`` and every poslens module
    they import, transitively (the files a cell's code runs).

    >>> v = code_version(("poslens.sweep.store",))
    >>> v["package"] == __import__("poslens").__version__, "poslens/results.py" in v["files"]
    (True, True)
    """
    import poslens

    root = Path(poslens.__file__).parent
    seen: dict[str, Path] = {}
    todo = list(modules)
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        f = _module_file(m)
        if f is None:
            continue
        seen[m] = f
        todo.extend(_imports(f, m) - set(seen))
    h = hashlib.sha256()
    files = sorted({f.relative_to(root.parent).as_posix() for f in seen.values() if root in f.parents})
    for rel in files:
        h.update(rel.encode() + b"\0" + (root.parent / rel).read_bytes() + b"\0")
    return {"package": poslens.__version__, "source_sha256": h.hexdigest(), "files": files}


class Store:
    """Cells under ``root/KK/KEY.json``; :meth:`get` returns a verified body or None."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @staticmethod
    def key(material: dict) -> str:
        return sha256(canonical(material))

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str, material: dict) -> dict | None:
        """The stored body for ``key``, or None when absent, damaged, or made from other material."""
        p = self.path(key)
        try:
            entry = json.loads(p.read_text(encoding="utf-8"))
            body = entry["body"]
            ok = (entry.get("format") == FORMAT and entry.get("key") == key
                  and canonical(entry.get("material")) == canonical(material)
                  and entry.get("sha256") == sha256(canonical(body)))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
            return None
        return body if ok else None

    def put(self, key: str, material: dict, body: dict) -> None:
        body = json.loads(canonical(body))
        entry = {"format": FORMAT, "key": key, "material": json.loads(canonical(material)),
                 "sha256": sha256(canonical(body)), "body": body}
        atomic_write_text(self.path(key), json.dumps(entry, sort_keys=True, indent=1) + "\n")
