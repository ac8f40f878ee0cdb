"""How well a linear probe reads absolute position from the residual stream, layer by layer.

Haviv et al. 2022 ("Transformer Language Models without Positional Encodings Still Learn
Positional Information") probe each layer of a model for the absolute position of every
token and report the mean absolute error in positions; models without positional encodings
still learn it, through the causal mask. Here the probe is a ridge regression, fitted in
closed form (one eigendecomposition per fit gives every ridge strength at once) on standardised
features of training sequences, its strength chosen on held-out training sequences, and
scored on test sequences it never saw. The baseline predicts the training mean position: a
probe at the baseline reads no position at all.

>>> resid = torch.stack([acts[h] for h in hooks])          # [points, batch, pos, d_model]   # doctest: +SKIP
>>> measure(resid, points=(0, 1, 2), opts=Options()).points[0].mae                         # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ...errors import InvalidInputError
from ...results import Result
from .options import Options


@dataclass(frozen=True)
class PointProbe:
    point: int  # residual point: 0 = the embeddings, L = entering block L, n_layers = after the last block
    mae: float  # mean |predicted - true| position on test sequences
    baseline_mae: float  # the same for predicting the training mean position
    relative: float  # mae / baseline_mae (1: no positional information; 0: exact)
    r2: float  # of the predicted position on test tokens
    alpha: float  # ridge strength chosen (per training token)
    mae_by_position: tuple[float, ...]  # test MAE in equal position bins


@dataclass(frozen=True)
class ProbeResult(Result):
    inputs: str = ""
    description: str = ""
    seq_len: int = 0
    n_train_seq: int = 0
    n_test_seq: int = 0
    target: str = "position"
    bin_edges: tuple[int, ...] = ()
    points: tuple[PointProbe, ...] = ()
    best_point: int = 0
    best_relative: float = 1.0  # error of the best point over the baseline
    emerges_at: int | None = None  # first point whose error is under half the baseline
    limits: str = ""

    kind = "position_probe"


def _split(n: int, frac: float, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    perm = torch.randperm(n, generator=g)
    k = min(n - 1, max(1, round(n * frac)))
    return perm[k:], perm[:k]


@dataclass(frozen=True)
class _Moments:
    """Raw sums over rows (``n``, sum x, x'x, sum y, x'y): the fit and validation rows' sums add up
    to the training rows', so each row enters one d x d product, not two."""

    n: int
    sx: torch.Tensor
    sxx: torch.Tensor
    sy: torch.Tensor
    sxy: torch.Tensor

    @classmethod
    def of(cls, X: torch.Tensor, y: torch.Tensor) -> _Moments:
        return cls(len(X), X.sum(0), X.T @ X, y.sum(), X.T @ y)

    def __add__(self, o: _Moments) -> _Moments:
        return _Moments(self.n + o.n, self.sx + o.sx, self.sxx + o.sxx, self.sy + o.sy, self.sxy + o.sxy)

    def standardised(self):
        """``(mu, sd, my, G, b)``: the rows' mean and std (unbiased; 1 for constant features), the mean
        target, and the Gram matrix and X'y of the standardised, centred rows."""
        n = self.n
        mu, my = self.sx / n, self.sy / n
        C = self.sxx - n * torch.outer(mu, mu)
        sd = (C.diagonal().clamp_min(0) / max(n - 1, 1)).sqrt()
        sd = torch.where(sd > 1e-8 * (sd.max() + 1e-30), sd, torch.ones_like(sd))  # constant features carry nothing
        return mu, sd, my, C / torch.outer(sd, sd), (self.sxy - n * mu * my) / sd


def _ridge_all(G: torch.Tensor, b: torch.Tensor, n: int, alphas: Sequence[float]) -> torch.Tensor:
    """Centred ridge weights ``[n_alpha, d]`` for every alpha from one eigendecomposition of the Gram
    matrix ``G`` (``b`` = X'y, ``n`` rows). Cheaper than an SVD of the tall token matrix."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a d x d eigh is small: LAPACK threads only contend (25x slower on a busy 2-core box)
    try:
        evals, V = torch.linalg.eigh(G)
    finally:
        torch.set_num_threads(threads)
    Vty = V.T @ b
    return torch.stack([V @ (Vty / (evals.clamp_min(0) + a * n)) for a in alphas])


def _ridge_one(G: torch.Tensor, b: torch.Tensor, n: int, alpha: float) -> torch.Tensor:
    """As :func:`_ridge_all` for one alpha: a Cholesky solve, several times cheaper than the eigendecomposition."""
    A = G.clone()
    A.diagonal().add_(alpha * n)
    L, info = torch.linalg.cholesky_ex(A)
    if int(info):  # not positive definite (alpha 0 on rank-deficient features): the eigen route copes
        return _ridge_all(G, b, n, [alpha])
    return torch.cholesky_solve(b[:, None], L)[:, 0][None]


def _to_pos(pred: torch.Tensor, target: str) -> torch.Tensor:
    return torch.expm1(pred.clamp(max=30.0)) if target == "log_position" else pred


def probe_point(X: torch.Tensor, train: torch.Tensor, test: torch.Tensor, opts: Options, g_seed: int,
                point: int, edges: torch.Tensor) -> PointProbe:
    """One residual point: ``X [seq, pos, d]``; ``train`` / ``test`` sequence indices."""
    B, P, d = X.shape
    X = X.double()
    pos = torch.arange(P, dtype=torch.float64)
    tgt = torch.log1p(pos) if opts.target == "log_position" else pos
    g = torch.Generator().manual_seed(g_seed)
    fit, val = _split(len(train), opts.val_frac, g)
    fit, val = train[fit], train[val]

    def flat(idx):
        return X[idx].reshape(-1, d), tgt.repeat(len(idx)), pos.repeat(len(idx))

    Xf, yf, _ = flat(fit)
    Xv, yv, pv = flat(val)
    mf = _Moments.of(Xf, yf)
    mu, sd, my, G, b = mf.standardised()
    alphas = opts.alpha_grid()
    W = _ridge_all(G, b, mf.n, alphas)
    pred_v = ((Xv - mu) / sd) @ W.T + my  # [n, n_alpha]
    val_mae = (_to_pos(pred_v, opts.target) - pv[:, None]).abs().mean(0)
    best = int(val_mae.argmin())
    mt = mf + _Moments.of(Xv, yv)  # the training rows: fit + validation
    mu, sd, my, G, b = mt.standardised()
    w = _ridge_one(G, b, mt.n, alphas[best])[0]
    Xs, _, ps = flat(test)
    pred = _to_pos(((Xs - mu) / sd) @ w + my, opts.target)
    err = (pred - ps).abs()
    base = (ps - pos.mean()).abs().mean()  # every sequence covers positions 0..P-1: the train mean is pos.mean()
    ss_res, ss_tot = ((pred - ps) ** 2).sum(), ((ps - ps.mean()) ** 2).sum()
    bins = torch.bucketize(ps, edges[1:-1], right=True)
    by_bin = [float(err[bins == b].mean()) if (bins == b).any() else math.nan for b in range(len(edges) - 1)]
    return PointProbe(point=point, mae=float(err.mean()), baseline_mae=float(base), relative=float(err.mean() / base),
                      r2=float(1 - ss_res / ss_tot), alpha=alphas[best], mae_by_position=tuple(by_bin))


def _each_point(fit, n: int) -> tuple[PointProbe, ...]:
    """``fit(i)`` for every point, one point per core: each is a few d x d products and one
    eigendecomposition, which one thread runs nearly as fast as two (1.8 -> 1.2 s for 13 points at
    d = 768 on 2 cores); the same results to rounding."""
    workers = min(n, torch.get_num_threads())
    if workers < 2:
        return tuple(fit(i) for i in range(n))
    from concurrent.futures import ThreadPoolExecutor

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            return tuple(pool.map(fit, range(n)))
    finally:
        torch.set_num_threads(threads)


def measure(resid: torch.Tensor, points: Sequence[int], opts: Options = Options(), *, inputs: str = "",
            description: str = "", limits: str = "") -> ProbeResult:
    """Probe every residual point: ``resid [n_points, n_seq, pos, d_model]``, ``points`` their indices.

    Sequences are split once (the same test sequences for every point) with ``opts.seed``.
    """
    if resid.dim() != 4 or resid.shape[0] != len(points):
        raise InvalidInputError(f"resid must be [n_points={len(points)}, seq, pos, d_model]; got {tuple(resid.shape)}")
    n_seq, P = resid.shape[1], resid.shape[2]
    if n_seq < 3:
        raise InvalidInputError(f"the probe needs at least 3 sequences (train, validation, test); got {n_seq}")
    g = torch.Generator().manual_seed(opts.seed)
    train, test = _split(n_seq, opts.test_frac, g)
    if len(train) < 2:
        raise InvalidInputError(f"{n_seq} sequences leave fewer than 2 for training; use more sequences")
    # More bins than positions would leave empty bins, each a NaN in the error profile.
    edges = torch.linspace(0, P, min(opts.n_bins, P) + 1).round()
    probes = _each_point(lambda i: probe_point(resid[i], train, test, opts, opts.seed + 1, int(points[i]), edges),
                         len(points))
    best = min(probes, key=lambda pp: pp.mae)
    emerges = next((pp.point for pp in probes if pp.relative < 0.5), None)
    return ProbeResult(
        options={}, inputs=inputs, description=description, seq_len=P, n_train_seq=len(train), n_test_seq=len(test),
        target=opts.target, bin_edges=tuple(int(e) for e in edges), points=probes, best_point=best.point,
        best_relative=best.relative, emerges_at=emerges, limits=limits,
    )
