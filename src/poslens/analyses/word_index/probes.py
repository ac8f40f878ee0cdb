"""Word-index probes: standardised multinomial logistic regression, C chosen on held-out prompts.

Every residual point's probe reads the same labels, so all of them (and every candidate
C) are fitted at once by :func:`~.logistic.fit_softmax`, scikit-learn's objective solved
to its stopping rule in one batch. A fitted :class:`Probe` exposes scikit-learn's names
(``scaler.mean_``/``scale_``, ``model.coef_``/``intercept_``/``classes_``) for code that
reads its directions.

>>> p = fit_probe(X_train, y_train, prompt_ids)                      # doctest: +SKIP
>>> (p.predict(X_val) == y_val).mean(), p.C                          # doctest: +SKIP
>>> probes = fit_probes(X_by_layer_train, y_train, prompt_ids)       # one per layer   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...errors import InvalidInputError
from .logistic import fit_softmax, principal_axes
from .options import DEFAULT_CS

_CHUNK = 2**25  # feature entries standardised and fitted at once (float64: 256 MB)


@dataclass
class Standardizer:
    """Per-feature mean and scale (population std; 1 where a feature is constant), as scikit-learn's."""

    mean_: np.ndarray
    scale_: np.ndarray

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean_) / self.scale_


@dataclass
class LinearSoftmax:
    """A fitted multinomial logistic regression on standardised features."""

    coef_: np.ndarray  # [K, d]
    intercept_: np.ndarray  # [K]
    classes_: np.ndarray

    def predict(self, Xs: np.ndarray) -> np.ndarray:
        return self.classes_[np.argmax(Xs @ self.coef_.T + self.intercept_, 1)]


@dataclass
class Probe:
    """A fitted probe: standardiser + multinomial logistic regression, and how its C was chosen."""

    scaler: Standardizer
    model: LinearSoftmax
    C: float
    selection: dict[str, float]
    n_iter: int
    converged: bool

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(self.scaler.transform(X))


def fit_probe(X: np.ndarray, y: np.ndarray, groups: np.ndarray, **kw) -> Probe:
    """One probe: :func:`fit_probes` on a single feature set."""
    return fit_probes(np.asarray(X)[None], y, groups, **kw)[0]


def fit_probes(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    C: float | str = "auto",
    Cs: Sequence[float] = DEFAULT_CS,
    holdout: float = 0.2,
    max_iter: int = 1000,
    tol: float = 1e-4,
    seed: int = 0,
) -> list[Probe]:
    """Standardise each feature set ``X[g]`` (``[G, n, d]``) and fit a multinomial logistic regression to ``y``.

    ``C="auto"`` picks, per feature set, the inverse regularisation from ``Cs`` with the
    best accuracy on a held-out ``holdout`` share of the training *prompts* (``groups``), so
    the choice never sees validation words; ties go to the stronger regularisation. The
    probe is then refitted on all rows, starting from the chosen fit (the standardiser is
    fitted once, on all training rows: it sees no labels). ``max_iter`` and ``tol`` are
    scikit-learn's: L-BFGS stops when every gradient entry is at most ``tol``.

    >>> probes = fit_probes(np.stack([X0, X1]), y, prompt_ids, Cs=(0.1, 1.0))   # doctest: +SKIP
    """
    X = np.asarray(X)
    if X.ndim != 3:
        raise InvalidInputError(f"features must be [sets, rows, features], got shape {X.shape}")
    y = np.asarray(y)
    classes, yi = np.unique(y, return_inverse=True)
    Cs = sorted(float(c) for c in Cs)
    if C == "auto":
        ug = np.unique(groups)
        rng = np.random.default_rng(seed)
        held = rng.choice(ug, size=max(1, int(round(holdout * len(ug)))), replace=False)
        mask = np.isin(groups, held)
        if mask.all() or not mask.any() or len(np.unique(y[~mask])) < 2:
            Cs = Cs[-1:]
    else:
        C = float(C)
        if not C > 0:
            raise InvalidInputError(f"the probe's C must be positive or 'auto', got {C}")
        Cs = [C]
    step = max(1, _CHUNK // max(1, X.shape[1] * X.shape[2]))
    out: list[Probe] = []
    for a in range(0, len(X), step):
        out += _fit_chunk(X[a:a + step], yi, classes, Cs, mask if len(Cs) > 1 else None, max_iter, tol)
    return out


def _fit_chunk(X, yi, classes, Cs, mask, max_iter, tol) -> list[Probe]:
    Xt = torch.as_tensor(X, dtype=torch.float64)
    mean = Xt.mean(1, keepdim=True)
    scale = Xt.std(1, correction=0, keepdim=True)
    scale = torch.where(scale > 1e-12 * mean.abs().clamp_min(1.0), scale, torch.ones_like(scale))
    Z = (Xt - mean) / scale
    G, K = len(X), len(classes)
    y = torch.as_tensor(yi)
    selection: list[dict[str, float]] = [{} for _ in range(G)]
    chosen = np.zeros(G, dtype=np.int64)
    W0 = None
    axes = principal_axes(Z)
    if mask is not None:
        m = torch.as_tensor(mask)
        grid = torch.tensor(Cs, dtype=torch.float64).expand(G, len(Cs))
        # choosing C needs held-out accuracies, not the last digits: float32 (half the time); the
        # refit below runs in float64 from the chosen fit, to scikit-learn's stopping rule
        fit = fit_softmax(Z[:, ~m], y[~m], K, grid, max_iter=max_iter, tol=tol, dtype=torch.float32, axes=axes)
        Zh = torch.cat([Z[:, m], Z.new_ones(G, int(m.sum()), 1)], -1)
        pred = torch.einsum("gnd,gjdk->gjnk", Zh, fit.W.double()).argmax(-1)  # [G, C, held rows]
        acc = (pred == y[m]).double().mean(-1).numpy()
        for g in range(G):
            selection[g] = {f"{c:g}": float(a) for c, a in zip(Cs, acc[g])}
            chosen[g] = int(np.argmax(acc[g]))  # first best: the stronger regularisation on ties
        W0 = fit.W[torch.arange(G), torch.as_tensor(chosen)][:, None]
    C = torch.tensor([Cs[j] for j in chosen], dtype=torch.float64)[:, None]
    # float32 first (half the cost per iteration), then float64 from there to scikit-learn's stopping
    # rule: where float32 already meets it, the float64 pass only checks (the same point within tol)
    first = fit_softmax(Z, y, K, C, W0=W0, max_iter=max_iter, tol=tol, dtype=torch.float32, axes=axes)
    fit = fit_softmax(Z, y, K, C, W0=first.W, max_iter=max_iter, tol=tol, axes=axes)
    n_iter = first.n_iter + fit.n_iter
    out = []
    for g in range(G):
        W = fit.W[g, 0].numpy()
        out.append(Probe(
            scaler=Standardizer(mean[g, 0].numpy(), scale[g, 0].numpy()),
            model=LinearSoftmax(W[:-1].T.copy(), W[-1].copy(), classes),
            C=float(Cs[chosen[g]]), selection=selection[g], n_iter=int(n_iter[g, 0]),
            converged=bool(fit.converged[g, 0]),
        ))
    return out
