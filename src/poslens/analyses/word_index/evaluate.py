"""Scoring word-index probes: one-hot baseline features, the position-balanced subset, accuracies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

def one_hot(columns: Sequence[np.ndarray], categories: Sequence[np.ndarray]) -> np.ndarray:
    """One-hot of the *joint* value of ``columns`` over the joint values in ``categories`` (unseen -> zeros)."""
    key = np.stack([np.asarray(c) for c in columns], 1)
    cats = np.unique(np.stack([np.asarray(c) for c in categories], 1), axis=0)
    lookup = {tuple(r): i for i, r in enumerate(cats)}
    out = np.zeros((len(key), len(cats)), dtype=np.float32)
    for i, r in enumerate(key):
        j = lookup.get(tuple(r))
        if j is not None:
            out[i, j] = 1.0
    return out


def position_balanced(pos: np.ndarray, y: np.ndarray, min_per_cell: int = 10, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Indices of a subset where, at every kept position, each word index present is equally frequent.

    At each absolute position the indices with at least ``min_per_cell`` points are kept
    (positions with fewer than two such indices are dropped) and each is subsampled to the
    smallest of their counts. Chance for a position-only classifier is ``1/k`` at a
    position with ``k`` indices; ``chance`` is its mean over the subset.

    >>> idx, info = position_balanced(np.array([5, 5, 5, 5]), np.array([0, 1, 0, 1]), min_per_cell=2)
    >>> sorted(idx.tolist()), info["chance"]
    ([0, 1, 2, 3], 0.5)
    """
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    chance: list[float] = []
    positions = []
    for p in np.unique(pos):
        at = np.flatnonzero(pos == p)
        labels, counts = np.unique(y[at], return_counts=True)
        ok = labels[counts >= min_per_cell]
        if len(ok) < 2:
            continue
        m = int(counts[counts >= min_per_cell].min())
        for lab in ok:
            keep.append(rng.choice(at[y[at] == lab], size=m, replace=False))
        chance += [1.0 / len(ok)] * (m * len(ok))
        positions.append(int(p))
    idx = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
    info = {"n_points": int(len(idx)), "positions": positions, "min_per_cell": min_per_cell,
            "chance": float(np.mean(chance)) if chance else float("nan")}
    return idx, info


def evaluate(pred: np.ndarray, y: np.ndarray, pos: np.ndarray, n_units: int, positions: Sequence[int],
             balanced: np.ndarray, confusion: bool = False) -> dict[str, Any]:
    """Accuracy overall, per word index, per absolute position (aligned with ``positions``),
    on the position-balanced subset, and optionally the key plot's counts
    ``confusion[true index][position][predicted index]``."""
    ok = pred == y
    pidx = np.searchsorted(positions, pos)
    out: dict[str, Any] = {
        "accuracy": float(ok.mean()) if len(ok) else float("nan"),
        "per_index": [float(ok[y == u].mean()) if (y == u).any() else float("nan") for u in range(n_units)],
        "per_position": (np.bincount(pidx, weights=ok, minlength=len(positions))
                         / np.maximum(np.bincount(pidx, minlength=len(positions)), 1)).tolist(),
        "balanced_accuracy": float(ok[balanced].mean()) if len(balanced) else float("nan"),
    }
    if confusion:
        c = np.zeros((n_units, len(positions), n_units), dtype=np.int64)
        np.add.at(c, (y, pidx, pred), 1)
        out["confusion"] = c.tolist()
    return out

