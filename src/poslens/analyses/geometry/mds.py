"""Two-dimensional maps of a distance matrix: classical MDS, refined by SMACOF, with Kruskal's stress.

>>> d = np.array([[0.0, 1.0], [1.0, 0.0]])
>>> np.round(np.abs(classical_mds(d)[:, 0]), 6).tolist()
[0.5, 0.5]
"""

from __future__ import annotations

import numpy as np


def classical_mds(dist: np.ndarray, k: int = 2) -> np.ndarray:
    """Torgerson-Gower classical MDS of a distance matrix, defined for any symmetric input.

    A non-Euclidean matrix (Grassmann distances are one) gives the double-centred Gram matrix
    negative eigenvalues; as in Cox & Cox, *Multidimensional Scaling*, only the positive part
    of the spectrum is embedded (negative eigenvalues are set to zero), so the map is always
    finite. Signs are fixed (largest |coordinate| positive) so the result is deterministic.

    >>> d = np.array([[0, 1, 2], [1, 0, 1], [2, 1, 0.0]])
    >>> np.round(np.abs(classical_mds(d)[:, 0]), 6).tolist()
    [1.0, 0.0, 1.0]
    """
    n = dist.shape[0]
    d2 = np.square((dist + dist.T) / 2)
    J = np.eye(n) - 1.0 / n
    B = -0.5 * J @ d2 @ J
    vals, vecs = np.linalg.eigh((B + B.T) / 2)
    order = np.argsort(vals)[::-1][:k]
    vals, vecs = np.clip(vals[order], 0.0, None), vecs[:, order]
    Y = vecs * np.sqrt(vals)
    flip = np.sign(Y[np.argmax(np.abs(Y), axis=0), np.arange(Y.shape[1])])
    Y = Y * np.where(flip == 0, 1.0, flip)
    return np.pad(Y, ((0, 0), (0, k - Y.shape[1])))  # fewer than k points: the missing axes are zeros


def kruskal_stress(dist: np.ndarray, Y: np.ndarray) -> float:
    """Kruskal's stress-1 of an embedding: sqrt(sum (d - |yi - yj|)^2 / sum d^2)."""
    fitted = np.linalg.norm(Y[:, None] - Y[None], axis=-1)
    iu = np.triu_indices(dist.shape[0], 1)
    den = float(np.sum(dist[iu] ** 2))
    return float(np.sqrt(np.sum((dist[iu] - fitted[iu]) ** 2) / den)) if den > 0 else 0.0


def mds_map(dist: np.ndarray, seed: int) -> tuple[np.ndarray, float | None]:
    """2-D metric MDS of a precomputed distance matrix, with its Kruskal stress-1.

    Classical MDS gives the start; scikit-learn's SMACOF refines it from there (one run,
    so the map is deterministic and independent of scikit-learn's changing defaults). The
    refinement is kept only where it lowers the stress and stays finite."""
    from sklearn.manifold import smacof

    n = dist.shape[0]
    if n < 3 or not np.isfinite(dist).all():
        return np.zeros((n, 2)), None
    dist = (dist + dist.T) / 2
    np.fill_diagonal(dist, 0.0)
    Y = classical_mds(dist)
    stress = kruskal_stress(dist, Y)
    if stress > 0:
        refined = smacof(dist, metric=True, n_components=2, init=Y.copy(), n_init=1, random_state=seed)[0]
        if np.isfinite(refined).all() and kruskal_stress(dist, refined) < stress:
            Y, stress = refined, kruskal_stress(dist, refined)
    return Y, stress
