"""Training dynamics at scale: a grid of models × revisions × analyses.

Each cell (one checkpoint, one analysis) is computed once into a content-addressed store
(:mod:`~poslens.sweep.store`), on this process, a local pool or a Ray cluster
(:mod:`~poslens.sweep.executors`); the cells are merged into one table per metric, with
the checkpoints where a metric jumps (:mod:`~poslens.sweep.changepoints`) and revisions
whose tensors are bit-identical to another's flagged, and drawn on one page.

>>> from poslens.sweep import sweep
>>> res = sweep(["alias"], log=12, analyses=["helix"], out="sweep-alias")   # doctest: +SKIP
>>> res["metrics"]["wpos_top_k_share"]["jumps"]                            # doctest: +SKIP
"""

import importlib

# Imported lazily, so `poslens sweep` can check a Ray address before loading torch.
_EXPORTS = {
    "ANALYSES": "cells", "DEFAULT_ANALYSES": "cells", "compute_cell": "cells",
    "jumps": "changepoints", "spikes": "changepoints",
    "Revision": "grid", "available": "grid", "choose": "grid", "revisions": "grid",
    "compute": "run", "merge": "run", "plan": "run", "sweep": "run", "write_tables": "run",
    "Store": "store", "code_version": "store",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
