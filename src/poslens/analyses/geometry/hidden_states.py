"""Measurements on hidden states, one ``[N, D]`` array per probing point: covariance spectra,
the signal subspace's size (Marchenko-Pastur edge, spectral gap), principal angles between
points, the union rank, and a 2-D map by Grassmann distance (classical MDS refined by
scikit-learn's SMACOF where that lowers Kruskal's stress-1). Pure, so planted data test it
directly; :mod:`.subspaces` runs it on a model's prompts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...errors import InvalidInputError
from .mds import classical_mds, kruskal_stress, mds_map  # noqa: F401 (re-exported)
from .options import SPACES, SUBSPACES, check_options, check_threshold  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class MPRank:
    """``k`` eigenvalues above the Marchenko-Pastur ``edge`` of noise variance ``noise_var``
    (``noise``: how that variance was had: "iterative", "total" or "given")."""

    k: int
    noise_var: float
    edge: float
    noise: str


@dataclass(frozen=True)
class GapRank:
    """``k`` eigenvalues before the largest gap ratio ``Q`` (None: too few eigenvalues for a ratio)."""

    k: int
    Q: float | None = None


@dataclass(frozen=True)
class PointPair:
    """Two consecutive points' subspaces: their principal angles (degrees), the angles' sum and
    mean, and the overlap (share of angles with cos above the threshold); None without angles."""

    pair: list[str]
    angles_deg: list[float]
    sum_deg: float | None
    mean_deg: float | None
    overlap: float | None


@dataclass(frozen=True)
class HiddenGeometry:
    """One prompt's hidden-state geometry, a list entry per probing point (``points``) where
    the field is per point; matrices are ``[points, points]`` (NaN where a point has no subspace).

    ``dims``: the signal subspace's size (by ``mp`` or ``gap``, as asked); ``eigenvalues``:
    the covariance spectrum (None when not kept); ``union_rank`` of ``ambient_dim`` (share
    ``union_share``); ``mds``: a 2-D map of ``mds_points`` by Grassmann distance.
    """

    n_tokens: int
    d_model: int
    points: list[str]
    mp: list[MPRank]
    gap: list[GapRank]
    dims: list[int]
    participation_ratio: list[float]
    effective_rank: list[float]
    signal_variance_share: list[float]
    eigenvalues: list[list[float]] | None
    consecutive: list[PointPair]
    pairwise_sum_deg: np.ndarray
    overlap_matrix: np.ndarray
    grassmann: np.ndarray
    mean_pairwise_sum_deg: float | None
    max_pairwise_sum_deg: float | None
    min_pairwise_sum_deg: float | None
    dispersion: float | None
    mean_overlap: float | None
    union_rank: int
    union_share: float
    ambient_dim: int
    mds_points: list[str]
    mds: np.ndarray
    mds_stress: float | None
    notes: list[str] = field(default_factory=list)
    text: str | None = None  # the prompt, where a tokenizer decoded it



# ----------------------------------------------------------------------------- spectra


def centred_svd(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``U, s, Vt`` of the token-centred hidden states ``X [N, D]`` (float64, thin SVD).

    The Gram matrix ``G = Xc Xc^T`` has eigenvectors ``U`` and eigenvalues ``s**2``.

    >>> U, s, Vt = centred_svd(np.random.default_rng(0).normal(size=(5, 3)))
    >>> U.shape, s.shape, Vt.shape
    ((5, 3), (3,), (3, 3))
    """
    X = np.asarray(X, dtype=np.float64)
    Xc = X - X.mean(0, keepdims=True)
    return np.linalg.svd(Xc, full_matrices=False)


def _centred_gram(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``Xc``, its singular values ``s`` (descending) and the eigenvectors ``E`` of its smaller
    Gram matrix (``U`` when N <= D, else ``V``): 3x faster than an SVD at 500 x 768, and as
    exact for what :func:`hidden_geometry` reads (eigenvalues far above rounding, the top
    singular directions; :func:`signal_basis` makes the other side's)."""
    Xc = np.asarray(X, dtype=np.float64)
    Xc = Xc - Xc.mean(0, keepdims=True)
    G = Xc @ Xc.T if Xc.shape[0] <= Xc.shape[1] else Xc.T @ Xc
    ev, E = np.linalg.eigh(G)
    ev, E = ev[::-1], E[:, ::-1]
    return Xc, np.sqrt(np.clip(ev, 0.0, None)), E


def signal_basis(Xc: np.ndarray, s: np.ndarray, E: np.ndarray, k: int, space: str) -> np.ndarray:
    """The top-``k`` singular directions of ``Xc`` in feature space (``[D, k]``) or token space
    (``[N, k]``), from :func:`_centred_gram`'s output."""
    tokens_side = Xc.shape[0] <= Xc.shape[1]  # E holds U
    if (space == "features") != tokens_side:
        return E[:, :k]
    V = (Xc.T @ E[:, :k]) if tokens_side else (Xc @ E[:, :k])
    return V / s[:k]


def mp_edge(noise_var: float, n_samples: int, n_features: int) -> float:
    """The Marchenko-Pastur upper edge ``sigma^2 (1 + sqrt(1/M))^2``, ``M = n_samples / n_features``.

    >>> mp_edge(1.0, 400, 100)
    2.25
    """
    return float(noise_var) * (1.0 + math.sqrt(n_features / n_samples)) ** 2


def mp_rank(lam: np.ndarray, n_samples: int, n_features: int, noise: str | float = "iterative",
            max_iter: int = 100) -> MPRank:
    """How many covariance eigenvalues ``lam`` (descending) exceed the Marchenko-Pastur edge.

    ``noise``: ``"iterative"`` (sigma^2 from the eigenvalues left after removing the k
    signal ones, taken as an (n - k) x (D - k) noise block whose trace is
    sigma^2 (n - k)(D - k) / n; repeated until k is stable), ``"total"`` (sigma^2 = sum(lam) / n_features: everything counted as noise, which
    overestimates sigma^2 when the signal is strong), or a number (a known sigma^2).

    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(400, 50)); X[:, :3] += 6 * rng.normal(size=(400, 3))
    >>> s = centred_svd(X)[1]; mp_rank(s**2 / 399, 399, 50).k
    3
    """
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    n, D = int(n_samples), int(n_features)
    r = min(n, D, lam.size)
    lam = lam[:r]
    if isinstance(noise, (int, float)) and not isinstance(noise, bool):
        if not noise > 0:
            raise InvalidInputError(f"noise variance must be positive; got {noise}")
        sigma2, method = float(noise), "given"
    elif noise == "total":
        sigma2, method = float(lam.sum()) / D, "total"
    elif noise == "iterative":
        method = "iterative"

        def estimate(k: int) -> float:
            return float(lam[k:].sum()) * n / ((n - k) * (D - k))

        k, sigma2 = 0, estimate(0)
        for _ in range(max_iter):
            k_new = min(int((lam > mp_edge(sigma2, n, D)).sum()), r - 1)
            if k_new == k:
                break
            k = k_new
            sigma2 = estimate(k)
    else:
        raise InvalidInputError(f"noise must be 'iterative', 'total' or a positive number; got {noise!r}")
    edge = mp_edge(sigma2, n, D)
    return MPRank(int((lam > edge).sum()), sigma2, edge, method)


def gap_rank(lam: np.ndarray, rel_tol: float = 1e-10) -> GapRank:
    """The number of eigenvalues before the largest spectral-gap ratio
    ``Q_i = (l_i - l_{i+1}) / (l_{i+1} - l_{i+2})`` (1-based i; eigenvalues at rounding
    level, ``< rel_tol * l_1``, are left out so the centred rank deficit is no gap).

    >>> gap_rank(np.array([100.0, 90.0, 2.0, 1.9, 1.8, 1.7])).k
    2
    """
    lam = np.sort(np.asarray(lam, dtype=np.float64))[::-1]
    if lam.size == 0 or lam[0] <= 0:
        return GapRank(0)
    lam = lam[lam > rel_tol * lam[0]]
    if lam.size < 3:
        return GapRank(int(lam.size))
    num = lam[:-2] - lam[1:-1]
    den = lam[1:-1] - lam[2:]
    with np.errstate(divide="ignore", invalid="ignore"):
        Q = np.where(den > 0, num / np.where(den > 0, den, 1), np.inf)
    i = int(np.argmax(Q))
    return GapRank(i + 1, float(Q[i]))


def participation_ratio(lam: np.ndarray) -> float:
    """``(sum lam)^2 / sum lam^2``: 1 for one direction, n for n equal ones.

    >>> participation_ratio(np.ones(4))
    4.0
    """
    lam = np.asarray(lam, dtype=np.float64)
    s2 = float((lam**2).sum())
    return float(lam.sum() ** 2 / s2) if s2 > 0 else 0.0


def effective_rank(values: np.ndarray) -> float:
    """Roy & Vetterli: ``exp`` of the entropy of ``values / sum(values)``.

    >>> round(effective_rank(np.array([1.0, 1.0, 0.0])), 6)
    2.0
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[v > 0]
    if v.size == 0:
        return 0.0
    p = v / v.sum()
    return float(math.exp(-(p * np.log(p)).sum()))


# ----------------------------------------------------------------------------- subspaces


def principal_angles(A: np.ndarray, B: np.ndarray, orthonormal: bool = False) -> np.ndarray:
    """Principal angles (radians, ascending) between the column spaces of ``A`` and ``B``.

    Björck and Golub's cosines with Knyazev and Argentati's sines for the small angles, as
    ``scipy.linalg.subspace_angles`` computes them, which arccos alone would blur to ~1e-8.
    ``orthonormal=True`` says the columns already are (singular vectors), which skips the
    two orthonormalising SVDs; the sines come from the R of a QR of the D x k residual
    (the same singular values, a fraction of the cost of its SVD). A layer-by-layer run on
    a 768-wide model is one k x k product and two small decompositions per pair.

    >>> e = np.eye(3)
    >>> np.degrees(principal_angles(e[:, :2], e[:, 1:])).round(6).tolist()
    [0.0, 90.0]
    """
    if A.shape[1] == 0 or B.shape[1] == 0:
        return np.zeros(0)
    if not orthonormal:
        from scipy.linalg import orth

        A, B = orth(A), orth(B)
    if A.shape[1] < B.shape[1]:
        A, B = B, A
    M = A.T @ B
    cos = np.clip(np.linalg.svd(M, compute_uv=False), -1.0, 1.0)  # descending: smallest angle first
    theta = np.arccos(cos)
    small = cos**2 >= 0.5
    if small.any():
        R = np.linalg.qr(B - A @ M, mode="r")
        sin = np.clip(np.linalg.svd(R, compute_uv=False)[::-1], -1.0, 1.0)  # ascending: pairs with the cosines
        theta = np.where(small, np.arcsin(sin), theta)
    return np.sort(theta)


def union_rank(bases: Sequence[np.ndarray], threshold: float) -> int:
    """Dimension of the union of subspaces, counting a direction as new only when it is
    not shared with the span so far (``cos`` of its principal angle ``<= threshold``, the
    overlap criterion).

    >>> e = np.eye(4)
    >>> union_rank([e[:, :2], e[:, 1:3], e[:, :2]], 0.9)
    3
    """
    Q = np.zeros((bases[0].shape[0] if bases else 0, 0))
    for B in bases:
        if B.shape[1] == 0:
            continue
        B, _ = np.linalg.qr(B)
        if Q.shape[1] == 0:
            Q = B
            continue
        Y, cos, Zt = np.linalg.svd(Q.T @ B, full_matrices=True)
        cos = np.concatenate([cos, np.zeros(B.shape[1] - cos.size)])
        new = B @ Zt.T[:, cos <= threshold]  # principal vectors of B far from span(Q)
        new = new - Q @ (Q.T @ new)
        if new.shape[1]:
            new, _ = np.linalg.qr(new)
            Q = np.concatenate([Q, new], 1)
    return int(Q.shape[1])


def hidden_geometry(
    states: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    *,
    subspace: str = "mp",
    space: str = "features",
    threshold: float = 0.9,
    noise: str | float = "iterative",
    seed: int = 0,
    keep_eigenvalues: bool = True,
) -> HiddenGeometry:
    """Gram spectra, signal subspaces and their relations for hidden states ``[N, D]`` per point.

    Pure: works on any list of arrays (one per layer), so planted data test it directly.

    >>> rng = np.random.default_rng(0)
    >>> S = rng.normal(size=(200, 4)) * 5 @ rng.normal(size=(4, 64))
    >>> g = hidden_geometry([S + rng.normal(size=S.shape) for _ in range(3)])
    >>> g.dims
    [4, 4, 4]
    """
    check_options(subspace, space, threshold)
    if not states:
        raise InvalidInputError("no hidden states given")
    labels = list(labels) if labels is not None else [str(i) for i in range(len(states))]
    N, D = states[0].shape
    if N < 3:
        raise InvalidInputError(f"a prompt of {N} token(s) has no subspace to measure; give at least 3 tokens")
    n = N - 1  # centring removes one degree of freedom
    mps, gaps, dims, pr, er, share, eig, bases = [], [], [], [], [], [], [], []
    for X in states:
        Xc, s, E = _centred_gram(X)
        lam = s**2 / n
        mp, gp = mp_rank(lam, n, D, noise), gap_rank(lam)
        k = mp.k if subspace == "mp" else gp.k
        mps.append(mp)
        gaps.append(gp)
        dims.append(int(k))
        pr.append(participation_ratio(lam))
        er.append(effective_rank(lam))
        share.append(float(lam[:k].sum() / lam.sum()) if lam.sum() > 0 else 0.0)
        eig.append([float(f"{x:.7g}") for x in lam[: min(n, D)]])
        bases.append(signal_basis(Xc, s, E, k, space))

    P = len(states)
    sums, overl, grass = (np.full((P, P), np.nan) for _ in range(3))
    angles: dict[tuple[int, int], np.ndarray] = {}
    for i in range(P):
        for j in range(i, P):
            th = principal_angles(bases[i], bases[j], orthonormal=True)
            angles[(i, j)] = th
            if th.size:
                sums[i, j] = sums[j, i] = float(np.degrees(th).sum())
                overl[i, j] = overl[j, i] = float((np.cos(th) > threshold).mean())
                grass[i, j] = grass[j, i] = float(np.sqrt((th**2).sum()))
    consecutive = []
    for i in range(P - 1):
        th = angles[(i, i + 1)]
        deg = np.degrees(th)
        consecutive.append(PointPair(
            [labels[i], labels[i + 1]], [float(f"{a:.6g}") for a in deg], float(deg.sum()) if th.size else None,
            float(deg.mean()) if th.size else None, float((np.cos(th) > threshold).mean()) if th.size else None))
    iu = np.triu_indices(P, 1)
    pair_sums = sums[iu]
    pair_means = np.array([np.degrees(angles[(i, j)]).mean() if angles[(i, j)].size else np.nan for i, j in zip(*iu)])
    ok = np.isfinite(pair_sums)
    amb = D if space == "features" else N
    ur = union_rank(bases, threshold)
    keep = [i for i in range(P) if bases[i].shape[1] > 0]
    Y, stress = mds_map(grass[np.ix_(keep, keep)], seed)  # no map (zeros, no stress) below 3 points
    notes = []
    empty = [labels[i] for i in range(P) if bases[i].shape[1] == 0]
    if empty:
        notes.append(f"no eigenvalue above the {'Marchenko-Pastur edge' if subspace == 'mp' else 'gap'} at "
                     f"{', '.join(empty)}: those points have no signal subspace and are left out of angles and MDS")
    return HiddenGeometry(
        n_tokens=int(N), d_model=int(D), points=labels, mp=mps, gap=gaps, dims=dims, participation_ratio=pr,
        effective_rank=er, signal_variance_share=share, eigenvalues=eig if keep_eigenvalues else None,
        consecutive=consecutive, pairwise_sum_deg=sums, overlap_matrix=overl, grassmann=grass,
        mean_pairwise_sum_deg=float(pair_sums[ok].mean()) if ok.any() else None,
        max_pairwise_sum_deg=float(pair_sums[ok].max()) if ok.any() else None,
        min_pairwise_sum_deg=float(pair_sums[ok].min()) if ok.any() else None,
        dispersion=float((pair_means[ok] / 90.0).mean()) if ok.any() else None,
        mean_overlap=float(overl[iu][ok].mean()) if ok.any() else None,
        union_rank=ur, union_share=ur / amb, ambient_dim=int(amb), mds_points=[labels[i] for i in keep], mds=Y,
        mds_stress=stress, notes=notes)
