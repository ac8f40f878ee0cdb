"""Names a package re-exports, imported from their modules on first use.

A package's ``__init__`` that imports its heavy modules eagerly makes every import of a
light sibling (an analysis's ``options``, which the command line reads to build its
flags) pay for torch and scipy; ``poslens --help`` would wait seconds for nothing.

>>> __getattr__ = exports(__name__, {".analysis": ("duplicate_heads",)})   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import sys
import types


class _Package(types.ModuleType):
    """A package whose re-exported names win over same-named submodules (``helix.pca`` the
    function, not the module), as they did when ``__init__`` imported them eagerly."""

    def __setattr__(self, name: str, value) -> None:
        if isinstance(value, types.ModuleType) and name in self.__dict__.get("_exports", ()):
            return  # the import system binding the submodule: the name keeps meaning the export
        super().__setattr__(name, value)


def exports(package: str, table: dict[str, tuple[str, ...]]):
    """A module ``__getattr__`` serving each name of ``table`` (relative module -> names) from its module."""
    where = {name: mod for mod, names in table.items() for name in names}
    module = sys.modules[package]
    module.__class__ = _Package
    module._exports = frozenset(where)

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
