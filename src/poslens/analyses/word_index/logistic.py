"""Multinomial logistic regression, many problems at once, in torch.

A word-index run fits one probe per residual point and candidate C on the same labels;
scikit-learn fits them one after another, which was most of a probe run's time. Here
every (point, C) problem is one slice of a batch: the logits of all of them are one
batched matmul, and a per-problem L-BFGS (its own history, step and stopping test) runs
them to scikit-learn's optimum. The objective is scikit-learn's for ``lbfgs``:

    mean_i CE(softmax(x_i W + b), y_i) + ||W||^2 / (2 C n)      (intercept not penalised)

stopped, as scikit-learn's L-BFGS-B is, when every gradient entry is at most ``tol``.
Computed in float64 unless told otherwise, so the stopping test is not lost in rounding.

>>> X = torch.randn(3, 200, 5, dtype=torch.float64)     # 3 feature sets, 200 rows, 5 features
>>> y = torch.randint(0, 4, (200,))
>>> fit = fit_softmax(X, y, 4, C=torch.tensor([[0.1, 1.0]]).expand(3, 2))
>>> fit.W.shape, fit.converged.all().item()
(torch.Size([3, 2, 6, 4]), True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

HISTORY = 10  # L-BFGS memory, scipy's default
ARMIJO = 1e-4
MAX_HALVINGS = 40
SMALL_WORK = 2**25  # feature entries x problems x classes below which one thread is faster


@dataclass
class SoftmaxFit:
    """``W [G, m, d + 1, K]`` (last row: intercepts), ``n_iter`` and ``converged`` ``[G, m]``."""

    W: torch.Tensor
    n_iter: torch.Tensor
    converged: torch.Tensor


def with_bias(X: torch.Tensor) -> torch.Tensor:
    """``[..., n, d] -> [..., n, d + 1]``: a constant column for the intercept."""
    return torch.cat([X, X.new_ones(*X.shape[:-1], 1)], -1)


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vecdot(a.flatten(-2), b.flatten(-2))  # 2-4x faster than einsum or a batched matmul here


def principal_axes(X: torch.Tensor) -> torch.Tensor:
    """``Q [G, d, d]``: the eigenvectors of each ``X[g]``'s uncentred second moment, the basis
    :func:`fit_softmax` works in; computed once, it serves every fit on (a subset of) those rows."""
    return torch.linalg.eigh(X.transpose(1, 2) @ X / X.shape[1])[1]


def fit_softmax(X: torch.Tensor, y: torch.Tensor, n_classes: int, C: torch.Tensor, W0: torch.Tensor | None = None,
                max_iter: int = 1000, tol: float = 1e-4, dtype: torch.dtype = torch.float64,
                axes: torch.Tensor | None = None) -> SoftmaxFit:
    """Fit ``G x m`` problems: group ``g`` reads features ``X[g]`` (``[G, n, d]``, no intercept
    column) with labels ``y`` (``[n]``, 0..n_classes-1, shared), problem ``(g, j)`` has inverse
    regularisation ``C[g, j]``. ``W0`` (``[G, m, d + 1, K]``) warm-starts. ``dtype`` float32
    halves the time but near the optimum rounding can stop the line search before the
    tolerance is met (such problems end with ``converged`` False): good enough to choose C by,
    and a float64 fit started from it finishes in a few iterations. ``axes`` (from
    :func:`principal_axes`, e.g. of all rows when fitting a subset) saves the eigendecomposition.

    >>> fit_softmax(X, y, 4, torch.ones(1, 1)).W[0, 0, -1]   # intercepts   # doctest: +SKIP
    """
    if W0 is not None and bool(_converged_at(X, y, n_classes, C, W0, tol, dtype).all()):
        # a warm start that already meets the stopping rule (a float64 check of a float32 fit) is
        # returned as it is, tested in the original coordinates without rotating X
        return SoftmaxFit(W0.to(dtype), torch.zeros(C.shape, dtype=torch.long), torch.ones(C.shape, dtype=torch.bool))
    threads = torch.get_num_threads()
    # a small batch spends its time in per-iteration overhead, where threads only contend
    small = X.numel() * C.shape[1] * n_classes < SMALL_WORK
    if small:
        torch.set_num_threads(1)
    try:
        return _fit(X, y, n_classes, C, W0, max_iter, tol, dtype, axes)
    finally:
        if small:
            torch.set_num_threads(threads)


def _converged_at(X: torch.Tensor, y: torch.Tensor, n_classes: int, C: torch.Tensor, W: torch.Tensor, tol: float,
                  dtype: torch.dtype) -> torch.Tensor:
    """``[G, m]``: whether every gradient entry of the objective at ``W`` is at most ``tol``."""
    X1, W = with_bias(X.to(dtype)), W.to(dtype)
    n = X1.shape[1]
    p = torch.softmax(X1[:, None] @ W, -1)  # [G, m, n, K]
    p -= torch.nn.functional.one_hot(y.long(), n_classes).to(dtype)
    g = X1[:, None].transpose(-2, -1) @ p / n
    g[..., :-1, :] += W[..., :-1, :] / (C.to(dtype) * n)[..., None, None]
    return g.abs().amax((-2, -1)) <= tol


def _fit(
    X: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    C: torch.Tensor,
    W0: torch.Tensor | None = None,
    max_iter: int = 1000,
    tol: float = 1e-4,
    dtype: torch.dtype = torch.float64,
    axes: torch.Tensor | None = None,
) -> SoftmaxFit:
    X = X.to(dtype)
    tiny = torch.finfo(dtype).tiny
    G, n, d = X.shape
    d1, m, K = d + 1, C.shape[1], n_classes
    # Work on the features' principal axes: a rotation leaves the objective (and the L2
    # penalty) unchanged, and there the loss's curvature is close to diagonal, so the
    # diagonal c * variance + penalty is a good first guess at the Hessian (L-BFGS's H0).
    Q = (principal_axes(X) if axes is None else axes).to(dtype)
    XQ = X @ Q
    var = XQ.square().mean(1)  # the eigenvalues, or the variances along axes fitted on other rows
    var = torch.cat([var, var.new_ones(G, 1)], 1)[:, None, :, None]  # [G, 1, d1, 1]
    X1 = with_bias(XQ)
    # The logits are computed as W^T X^T ([jK, d1] x [d1, n]) and the gradient as R^T X: with
    # few classes these shapes run about twice as fast as X W and X^T R (both layouts are kept).
    X1T = X1.transpose(1, 2).contiguous()
    Yt = torch.nn.functional.one_hot(y.long(), K).to(dtype).T  # [K, n]
    lam = (1.0 / (C.to(dtype) * n))[:, :, None, None]  # [G, m, 1, 1]
    mask = torch.ones(d1, 1, dtype=dtype)
    mask[-1] = 0.0  # the intercept is not penalised

    def rotate(W: torch.Tensor, back: bool) -> torch.Tensor:
        R = Q[:, None] if back else Q.transpose(1, 2)[:, None]
        return torch.cat([R @ W[:, :, :d], W[:, :, d:]], 2)

    def fg(W: torch.Tensor, lam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        j = W.shape[1]
        Z = (W.transpose(2, 3).reshape(G, j * K, d1) @ X1T).view(G, j, K, n)
        lsm = torch.log_softmax(Z, 2)
        f = -(lsm * Yt).sum(2).mean(-1)
        R = (lsm.exp_() - Yt) / n
        g = (R.view(G, j * K, n) @ X1).view(G, j, K, d1).transpose(2, 3).contiguous()
        Wm = W * mask
        return f + 0.5 * lam[..., 0, 0] * _dot(Wm, Wm), g + lam * Wm

    def fg_active(W: torch.Tensor, cols: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # only the columns (C values) that some group still iterates on: the rest are done
        if bool(cols.all()):
            return fg(W, lam)
        f, g = torch.zeros(G, m, dtype=W.dtype), torch.zeros_like(W)
        f[:, cols], g[:, cols] = fg(W[:, cols], lam[:, cols])
        return f, g

    def above_tol(g: torch.Tensor) -> torch.Tensor:
        """scikit-learn's test, max |gradient entry| > tol, in the original coordinates.

        Rotating every gradient back costs a d x d product per problem per iteration, as
        much as the loss itself; but a class column whose 2-norm exceeds tol * sqrt(d + 1)
        has an entry above tol in any orthonormal basis, so only problems that can pass
        are rotated and tested exactly (the decisions are the same)."""
        out = g.square().sum(-2).sqrt().amax(-1) > tol * math.sqrt(d1)
        for gi in (~out).any(1).nonzero().flatten().tolist():
            cols = (~out[gi]).nonzero().flatten()
            gg = g[gi, cols]
            # one [d, d] x [d, cols * K] product: broadcasting Q over cols runs K-wide ones, 2-6x slower
            back = torch.cat([torch.einsum("ij,cjk->cik", Q[gi], gg[:, :d]), gg[:, d:]], 1)
            out[gi, cols] = back.abs().amax((-2, -1)) > tol
        return out

    W = torch.zeros(G, m, d1, K, dtype=dtype) if W0 is None else rotate(W0.to(dtype), back=False)
    f, g = fg(W, lam)
    n_iter = torch.zeros(G, m, dtype=torch.long)
    active = above_tol(g)
    stalled = torch.zeros_like(active)
    # H0 = gamma * P, P the diagonal curvature at uniform p (p(1 - p) ~ 1/K) plus the penalty
    P = 1.0 / (var / K + lam * mask)  # [G, m, d1, 1]
    gamma = torch.ones(G, m, dtype=dtype)
    S: list[torch.Tensor] = []
    Yh: list[torch.Tensor] = []
    rho: list[torch.Tensor] = []
    for _ in range(max_iter):
        if not active.any():
            break
        # two-loop recursion, per problem (pairs that failed the curvature test have rho = 0)
        q = g.clone()
        alphas = []
        for s, yv, r in zip(reversed(S), reversed(Yh), reversed(rho)):
            a = r * _dot(s, q)
            q -= a[..., None, None] * yv
            alphas.append(a)
        q *= gamma[..., None, None] * P
        for s, yv, r, a in zip(S, Yh, rho, reversed(alphas)):
            b = r * _dot(yv, q)
            q += (a - b)[..., None, None] * s
        step = -q
        gd = _dot(g, step)
        bad = gd >= 0  # not a descent direction: fall back to steepest descent
        if bad.any():
            step = torch.where(bad[..., None, None], -g, step)
            gd = torch.where(bad, -_dot(g, g), gd)
        step = step * active[..., None, None]
        # backtracking Armijo line search, each problem with its own step length
        t = torch.ones(G, m, dtype=dtype)
        done = ~active
        Wn, fn_, gn_ = W.clone(), f.clone(), g.clone()
        for _ in range(MAX_HALVINGS):
            Wt = W + t[..., None, None] * step
            ft, gt = fg_active(Wt, (~done).any(0))
            ok = ~done & (ft <= f + ARMIJO * t * gd)
            Wn[ok], fn_[ok], gn_[ok] = Wt[ok], ft[ok], gt[ok]
            done |= ok
            if done.all():
                break
            # minimiser of the quadratic through f, the slope gd and ft, kept within [t/10, t/2]
            tq = -gd * t * t / (2 * (ft - f - gd * t)).clamp_min(tiny)
            t = torch.where(done, t, torch.minimum(torch.maximum(tq, 0.1 * t), 0.5 * t))
        stalled |= ~done & active  # no decrease found: the iterate is as good as rounding allows
        s, yv = Wn - W, gn_ - g
        sy = _dot(s, yv)
        good = active & (sy > 1e-10 * _dot(s, s).sqrt() * _dot(yv, yv).sqrt() + tiny)
        S.append(s)
        Yh.append(yv)
        rho.append(torch.where(good, 1.0 / sy.clamp_min(tiny), torch.zeros_like(sy)))
        if len(S) > HISTORY:
            S.pop(0), Yh.pop(0), rho.pop(0)
        # scale H0 to the newest pair, as preconditioned L-BFGS does: gamma = s'y / y'Py
        gamma = torch.where(good, sy / _dot(yv * P, yv).clamp_min(tiny), gamma)
        n_iter += active.long()
        W, f, g = Wn, fn_, gn_
        active = above_tol(g) & ~stalled
    return SoftmaxFit(rotate(W, back=True), n_iter, ~above_tol(g))


def predict(X: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Class indices: ``X [..., n, d]`` with ``W [..., d + 1, K]``; ties go to the lower class."""
    return (with_bias(X.to(W.dtype)) @ W).argmax(-1)
