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

from ..lazy import exports

# Imported lazily, so `poslens sweep` can check a Ray address before loading torch.
_EXPORTS = {
    ".cells": ("ANALYSES", "DEFAULT_ANALYSES", "compute_cell"), ".changepoints": ("jumps", "spikes"),
    ".grid": ("Revision", "available", "choose", "revisions"),
    ".run": ("compute", "merge", "plan", "sweep", "write_tables"), ".store": ("Store", "code_version"),
}
__getattr__ = exports(__name__, _EXPORTS)
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
