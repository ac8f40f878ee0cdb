"""How the rows of a positional embedding sit: cosines, isolated rows, fraying, norms, tokens.

:func:`cosine_structure` (cosine between rows, by offset, and its periodic dip and rise),
:func:`outlier_positions` (rows far from every other), :func:`fray` (early positions
leaving the later ones' principal subspace) and :func:`token_position` (where token
embeddings lie relative to W_pos); row norms are :func:`poslens.analyses.norms.norm_stats`.

>>> W = np.r_[np.random.default_rng(0).normal(size=(40, 8)), 50 * np.ones((1, 8))]
>>> [o["position"] for o in outlier_positions(W)["flagged"]]
[40]
"""

from __future__ import annotations

import numpy as np

from ..norms import vector_stats
from .pca import PCAFit


def _unit_rows(M: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(M, axis=1, keepdims=True)
    return M / np.where(n > 0, n, 1.0)


def cosine_structure(W: np.ndarray, positions: np.ndarray, size: int = 64, gram: np.ndarray | None = None) -> dict:
    """Cosine similarity between the rows of ``W [n, d]`` (one row per entry of ``positions``).

    ``by_offset[k]``: the mean cosine between positions k apart (the periodic pattern of
    a helix shows as a dip and a rise); ``adjacent``: cos(P_i, P_i+1) for each i;
    ``matrix``: the full matrix subsampled every ``stride`` positions to at most ``size``
    rows (for the heatmap); ``min_offset``/``min_value``: the first clear dip of
    ``by_offset`` (prominence 0.05); ``period``: the offset of the first clear rise after
    it (None when it never rises again).
    """
    G = np.asarray(W, dtype=np.float64) @ np.asarray(W, dtype=np.float64).T if gram is None else gram
    nrm = np.sqrt(np.clip(np.diagonal(G), 0, None))
    nrm = np.where(nrm > 0, nrm, 1.0)
    C = G / nrm[:, None] / nrm[None, :]
    n = len(C)
    by_offset = np.array([np.diagonal(C, k).mean() for k in range(n)])
    # The first clear dip, then the first clear rise after it; only where enough pairs
    # remain to average (k <= 3n/4).
    from scipy.signal import find_peaks

    lim = max(3, (3 * n) // 4)
    curve = by_offset[:lim]
    dips, _ = find_peaks(-curve, prominence=0.05)
    k_min = int(dips[0]) if len(dips) else int(np.argmin(curve))
    rises, _ = find_peaks(curve, prominence=0.05)
    rises = rises[rises > k_min]
    period = int(rises[0]) if len(dips) and len(rises) else None
    stride = max(1, -(-n // max(1, size)))
    adj = np.diagonal(C, 1)
    mean, std = (float(adj.mean()), float(adj.std())) if len(adj) else (float("nan"), float("nan"))
    return {"by_offset": np.round(by_offset, 6).tolist(), "adjacent": np.round(adj, 6).tolist(),
            "adjacent_mean": mean, "adjacent_std": std, "min_offset": k_min, "min_value": float(by_offset[k_min]),
            "period": period, "stride": stride, "matrix_positions": np.asarray(positions)[::stride].tolist(),
            "matrix": np.round(C[::stride, ::stride], 4).tolist()}


def outlier_positions(W: np.ndarray, threshold: float = 10.0, gram: np.ndarray | None = None) -> dict:
    """Positions whose embedding stands apart from every other one.

    A position's ``isolation`` is its distance to the nearest other row of ``W`` divided by
    the median of that nearest-neighbour distance over all rows; rows above ``threshold``
    are ``flagged`` (in order of isolation). On GPT-2 small, position 0 (the BOS slot) and
    the last position stand out, as the helix post sees. ``gram``: ``W @ W.T`` if already computed.
    """
    X = np.asarray(W, dtype=np.float64)
    G = X @ X.T if gram is None else gram
    sq = np.diagonal(G).copy()
    D2 = sq[:, None] + sq[None, :] - 2 * G
    np.fill_diagonal(D2, np.inf)
    nn = np.sqrt(np.clip(D2.min(1), 0, None))
    med = float(np.median(nn))
    iso = nn / med if med > 0 else np.full_like(nn, np.inf)
    norms = np.sqrt(sq)
    order = np.argsort(-iso)
    flagged = [{"position": int(i), "isolation": float(iso[i]), "nearest_distance": float(nn[i]), "norm": float(norms[i])}
               for i in order if iso[i] > threshold]
    return {"threshold": float(threshold), "median_nearest_distance": med, "flagged": flagged,
            "isolation": np.round(iso, 4).tolist()}


def fray(W: np.ndarray, late: PCAFit, k: int, cut: int, window: int = 11) -> dict:
    """How far the early positions leave the subspace the later ones live in (the helix post's "fraying").

    ``residual[i]``: the share of row i's deviation from the late positions' mean that lies
    outside their top-``k`` principal subspace. ``baseline`` is its median over positions
    >= ``cut``; ``fray_end`` the first position from which the running median (``window``)
    stays below ``threshold`` = max(2 x baseline, 0.02) for the next ``cut`` positions (None
    if never; the floor keeps float32 rounding of an exact planted helix from counting).
    """
    from scipy.ndimage import median_filter

    X = np.asarray(W, dtype=np.float64) - late.mean
    total = (X**2).sum(1)
    inside = ((X @ late.components[:k].T) ** 2).sum(1)
    res = np.where(total > 0, 1 - inside / np.where(total > 0, total, 1), 0.0)
    base = float(np.median(res[cut:])) if cut < len(res) else float("nan")
    smooth = median_filter(res, size=window, mode="nearest")
    threshold = max(2 * base, 0.02) if np.isfinite(base) else 0.02
    ok = smooth <= threshold
    end = next((p for p in range(len(res)) if ok[p:p + cut].all()), None)
    return {"k": k, "cut": cut, "residual": np.round(res, 5).tolist(), "baseline": base, "threshold": threshold,
            "mean_before_cut": float(res[:cut].mean()),
            "mean_after_cut": float(res[cut:].mean()) if cut < len(res) else float("nan"), "fray_end": end}


def token_position(W_E, W_pos: np.ndarray, fit: PCAFit, k: int = 3, sample: int = 1024, seed: int = 0) -> tuple[dict, dict]:
    """How token embeddings sit relative to positional ones (the helix post's comments: the "direct sum" question).

    Returns (W_E's norm statistics, the comparison). The comparison: ``mean_cosine``, the
    mean of cos(e, p) over every token-position pair (exact, from the means of the unit
    rows); ``mean_abs_cosine``, the mean |cos| over ``sample`` random tokens x every
    position; ``subspace_share``, the share of W_E's variance (centred over tokens) inside
    the top-``k`` principal subspace of W_pos; ``subspace_share_uncentred``, the same for
    W_E's squared norms (the "magnitude" the comment asks about); ``chance``, k / d_model,
    what an isotropic W_E would put there. W_E (50k x d for GPT-2) stays float32 and is
    read in a few matrix-vector passes; nothing of its size is copied.
    """
    import torch

    E = torch.as_tensor(W_E).float()
    N, d = E.shape
    P = _unit_rows(np.asarray(W_pos, dtype=np.float64))
    e_norm = torch.linalg.vector_norm(E, dim=1).double().numpy()
    mu = (torch.ones(N) @ E).double() / N  # a BLAS matvec: a dtype-converting mean is ~20x slower
    e_dot_mu = (E @ mu.float()).double().numpy()
    centred = np.sqrt(np.clip(e_norm**2 - 2 * e_dot_mu + float(mu @ mu), 0, None))
    # mean over all pairs of cos(e_i, p_j) = (mean of unit e) . (mean of unit p)
    inv = torch.from_numpy(np.where(e_norm > 0, 1 / np.where(e_norm > 0, e_norm, 1), 0.0)).float()
    mean_unit_e = (E.T @ inv).double().numpy() / N
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(N, size=min(sample, N), replace=False))
    sample_rows = torch.from_numpy(_unit_rows(E[torch.from_numpy(idx)].double().numpy())).float()
    abs_cos = float((sample_rows @ torch.from_numpy(P.T).float()).abs().mean())
    V = fit.components[:k]
    inside_unc = float(((E @ torch.from_numpy(V.T).float()).double().numpy() ** 2).sum())
    mu_proj = mu.numpy() @ V.T
    ss_unc = float((e_norm**2).sum())
    ss_cen = ss_unc - N * float(mu @ mu)
    inside_cen = inside_unc - N * float(mu_proj @ mu_proj)
    norms = {**vector_stats(e_norm), "centred": vector_stats(centred)}
    return norms, {
        "k": k,
        "mean_cosine": float(mean_unit_e @ P.mean(0)),
        "mean_abs_cosine": abs_cos,
        "abs_cosine_tokens": int(len(idx)),
        "subspace_share": inside_cen / ss_cen if ss_cen > 0 else float("nan"),
        "subspace_share_uncentred": inside_unc / ss_unc if ss_unc > 0 else float("nan"),
        "chance": k / d,
    }

