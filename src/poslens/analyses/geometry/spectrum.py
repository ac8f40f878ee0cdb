"""One matrix's spectrum: the slides' anisotropy metrics, QK distances and batched singular values.

>>> spectrum_metrics(np.array([2.0, 2.0, 0.0]), (3, 3)).effective_rank
2.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

_F32_EPS = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class Spectrum:
    """One matrix's anisotropy metrics (the slides'), from its singular values; see
    :attr:`SpectraResult.conventions` for each definition."""

    shape: tuple[int, ...]
    sigma_max: float
    sigma_min: float
    condition: float  # sigma_max / sigma_min (inf when singular, nan for a zero matrix)
    log_volume: float  # sum of log sigma
    entropy: float  # of sigma / sum(sigma), nats
    effective_rank: float  # exp(entropy)
    numerical_rank: int
    frobenius: float
    singular_values: list[float] | None = None  # with keep_spectra


@dataclass(frozen=True)
class QKDistance:
    """``M = W_Q^h W_K^hT`` against its transpose and the identity (the slides' distance, in [0, 1])."""

    norm: float  # |M|_F
    trace: float
    symmetry: float  # d(M, M^T)
    identity: float  # d(M, I)
    identity_scaled: float  # d(M scaled to |I|, I)
    cos_identity: float  # tr(M) / (|M| |I|)


def spectrum_metrics(sv: np.ndarray, shape: tuple[int, ...]) -> Spectrum:
    """The slides' anisotropy metrics of one matrix from its singular values.

    A matrix of zeros (an attention-only model's MLP) has rank 0 and no condition number.

    >>> m = spectrum_metrics(np.array([2.0, 2.0, 0.0]), (3, 3))
    >>> m.effective_rank, m.numerical_rank, m.condition
    (2.0, 2, inf)
    >>> m = spectrum_metrics(np.zeros(3), (3, 3))
    >>> m.effective_rank, m.numerical_rank, m.condition
    (0.0, 0, nan)
    """
    sv = np.sort(np.asarray(sv, dtype=np.float64))[::-1]
    smax = float(sv[0]) if sv.size else 0.0
    smin = float(sv[-1]) if sv.size else 0.0
    total = float(sv.sum())
    p = sv / total if total > 0 else sv
    nz = p[p > 0]
    H = float(-(nz * np.log(nz)).sum())
    with np.errstate(divide="ignore"):
        logs = np.log(sv)
    zero = smax == 0.0
    return Spectrum(
        shape=tuple(shape), sigma_max=smax, sigma_min=smin,
        condition=math.nan if zero else smax / smin if smin > 0 else math.inf,
        log_volume=float(logs.sum()), entropy=H, effective_rank=0.0 if zero else math.exp(H),
        numerical_rank=0 if zero else int((sv > smax * max(shape) * _F32_EPS).sum()),
        frobenius=float(np.sqrt((sv**2).sum())),
    )


def frobenius_distance(A: torch.Tensor, B: torch.Tensor) -> float:
    """The slides' metric ``|A-B| / (|A| + |B| + |A-B|)`` (Frobenius norms), in [0, 1].

    >>> frobenius_distance(torch.eye(3), torch.eye(3))
    0.0
    """
    a, b, ab = (float(torch.linalg.matrix_norm(x.double())) for x in (A, B, A - B))
    den = a + b + ab
    return ab / den if den > 0 else 0.0


def qk_distances(W_Q: torch.Tensor, W_K: torch.Tensor) -> QKDistance:
    """Distances of ``M = W_Q W_K^T`` ([d_model, d_head] each) to M^T and to the identity.

    Uses ``|M|^2 = tr(Wk'Wk Wq'Wq)``, ``tr(MM) = tr((Wk'Wq)^2)``, ``tr(M) = tr(Wk'Wq)``, all
    d_head x d_head. ``identity_scaled`` compares M rescaled to the identity's norm, so it
    measures shape only (``1 - cos`` between M and I enters it, not M's size).

    >>> q = torch.randn(8, 8); qk_distances(q, q).symmetry < 1e-12
    True
    """
    q, k = W_Q.double(), W_K.double()
    d = q.shape[0]
    kq = k.T @ q  # [dh, dh]
    m2 = float(torch.trace((k.T @ k) @ (q.T @ q)))
    m = math.sqrt(max(m2, 0.0))
    trmm = float(torch.trace(kq @ kq))
    tr = float(torch.trace(kq))

    def dist(a: float, b: float, ab2: float) -> float:
        ab = math.sqrt(max(ab2, 0.0))
        den = a + b + ab
        return ab / den if den > 0 else 0.0

    sym = dist(m, m, 2 * m2 - 2 * trmm)
    ident = dist(m, math.sqrt(d), m2 - 2 * tr + d)
    s = math.sqrt(d) / m if m > 0 else 0.0  # rescale M to |I|
    scaled = dist(math.sqrt(d), math.sqrt(d), s * s * m2 - 2 * s * tr + d)
    return QKDistance(norm=m, trace=tr, symmetry=sym, identity=ident, identity_scaled=scaled,
                      cos_identity=tr / (m * math.sqrt(d)) if m > 0 else 0.0)


# Below this sigma_min / sigma_max the Gram route loses digits of sigma_min; use a full SVD.
_GRAM_MIN_RATIO = 1e-4


def svdvals(batch: torch.Tensor, device: str | torch.device) -> np.ndarray:
    """Singular values of ``[batch, m, n]`` in float64, descending.

    Small matrices (per-head blocks) go through one batched call: elongated ones (768 x 64)
    through the eigenvalues of their small Gram matrices (5x faster than a batched SVD), with
    the same guard as below, square ones through ``torch.linalg.svdvals``.
    On the CPU, large near-square ones go straight to LAPACK's SVD (trained GPT-2 Q/K/V/O have
    sigma_min / sigma_max ~ 1e-5, which the Gram route below would redo anyway); large
    rectangular ones (768 x 3072) through the eigenvalues of the smaller Gram matrix
    (``A A^T``, 2-4x faster than an SVD), whose relative error on sigma_i is about ``eps * n *
    (sigma_max / sigma_i)^2``: whenever ``sigma_min / sigma_max < _GRAM_MIN_RATIO`` the matrix
    is redone with LAPACK's SVD, keeping every singular value to better than 1e-5 relative.
    One matrix per core, through ``numpy.linalg``: its LAPACK calls release the GIL, where
    ``scipy.linalg``'s wrappers of the same routines hold it and left the second core idle.
    """
    if torch.device(device).type == "cpu" and min(batch.shape[-2:]) > 256:
        from concurrent.futures import ThreadPoolExecutor

        from threadpoolctl import threadpool_limits

        def one(a: np.ndarray) -> np.ndarray:
            b = a if a.shape[0] <= a.shape[1] else a.T
            sv = np.sqrt(np.clip(np.linalg.eigvalsh(b @ b.T)[::-1], 0.0, None)) if b.shape[1] >= 2 * b.shape[0] else None
            return sv if sv is not None and sv[-1] >= _GRAM_MIN_RATIO * sv[0] else np.linalg.svd(a, compute_uv=False)

        mats = list(batch.detach().to(torch.float64).numpy())
        workers = min(len(mats), torch.get_num_threads())
        if workers < 2:
            return np.stack([one(a) for a in mats])
        # LAPACK's SVD of a 768 x 768 matrix uses a second core poorly: one matrix per core is faster
        with threadpool_limits(1), ThreadPoolExecutor(workers) as pool:
            return np.stack(list(pool.map(one, mats)))
    b = batch.to(device, torch.float64)
    if b.shape[-2] > b.shape[-1]:
        b = b.transpose(-2, -1)
    if b.shape[-1] < 2 * b.shape[-2]:
        return torch.linalg.svdvals(b).cpu().numpy()
    sv = torch.linalg.eigvalsh(b @ b.transpose(-2, -1)).flip(-1).clamp_min(0.0).sqrt()
    redo = sv[..., -1] < _GRAM_MIN_RATIO * sv[..., 0]
    if bool(redo.any()):
        sv[redo] = torch.linalg.svdvals(b[redo])
    return sv.cpu().numpy()
