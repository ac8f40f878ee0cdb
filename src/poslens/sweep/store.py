"""The sweep's content-addressed store: one verified JSON file per cell.

A cell's key is the sha256 of its *material*: model, revision, analysis, options and the
code version (poslens's version and a hash of every poslens source file the analysis
imports, found by reading their import statements). The entry holds the material and a
checksum of its body, and is written atomically. Reading verifies both: an entry that is
damaged, edited, or written for other material (another poslens version, other code) is
reported as absent and recomputed, never trusted.

>>> s = Store(tmp_path)                                       # doctest: +SKIP
>>> material = {"model": "tiny", "analysis": "helix"}         # doctest: +SKIP
>>> k = s.key(material)                                       # doctest: +SKIP
>>> s.put(k, material, {"status": "ok", "metrics": {}}); s.get(k, material)   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..code_version import code_version  # noqa: F401  (part of this module's API: the cells' code version)
from ..io import atomic_write_text
from ..results import canonical

FORMAT = "poslens-sweep-cell/1"


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


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
