"""Row-norm statistics as the source studies print them (shared by the helix and sphere analyses,
kept apart from both so neither section's cache key depends on the other's code).

>>> norm_stats(np.eye(3))["mean"]
1.0
>>> NormStats.of(np.eye(3)).argmax
0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class NormStats:
    """Mean, population std, min, max, argmin and argmax of a matrix's row norms."""

    mean: float
    std: float
    min: float
    max: float
    argmin: int
    argmax: int

    @classmethod
    def of(cls, M: np.ndarray) -> NormStats:
        return cls(**norm_stats(M))


def vector_stats(n: np.ndarray) -> dict:
    """Mean, population std, min, max, argmin and argmax of a vector."""
    n = np.asarray(n, dtype=np.float64)
    return {"mean": float(n.mean()), "std": float(n.std()), "min": float(n.min()), "max": float(n.max()),
            "argmin": int(n.argmin()), "argmax": int(n.argmax())}


def norm_stats(M: np.ndarray) -> dict:
    """:func:`vector_stats` of the row norms of ``M`` (as the slides report them)."""
    return vector_stats(np.linalg.norm(np.asarray(M, dtype=np.float64), axis=1))
