"""The twisted-pair construction of the twisted-pair post as real GPT-2-shaped weights.

A one-layer model (no LayerNorm, ReLU MLP) that reads two tokens ``[x_j, x_i]`` and writes
an estimate of ``j - i`` onto one residual direction ``v`` at the second position:

* ``W_E`` holds the curve points x_0..x_n (token id i is x_i = f(i/n)) in a subspace S;
  ``W_pos`` holds two slot flags (n_ctx = 2), so attention can tell the slots apart.
* Head A (0) attends from slot 1 to slot 0 (its query is a bias, its key reads flag 0, the
  score gap is ``attention_sharpness``) and copies x_j into a subspace U orthogonal to S;
  head B (1) attends to itself and writes -x_i into U. After attention U holds x_j - x_i
  and S still holds x_i, so the MLP reads both cleanly (the post's "orthogonal subspace").
  In the helix variant head C (2) also attends to itself and writes y_i = A x_i + c into a
  subspace Y (A, c: :func:`poslens.analyses.helix.fit_linear_ode` on the samples).
* The MLP has 2 neurons per sentry s_m (2M + 2 for M + 1 sentries): neuron 2m is
  ReLU(G_m (w_m . g + b_m) + b3_m (x_j - x_i) . f'(s_m)), neuron 2m + 1 the same with
  -b3_m, where g = x_i (plain) or y_i (helix). The gate G_m (w_m . g + b_m) is >= 1 on the
  points whose nearest sentry is s_m and <= -1 on every other point; b3_m is chosen so the
  signal term never exceeds ``signal_fraction`` < 1 in magnitude for |i - j| <= k. So the
  active pair is linear and every other neuron is off, and the pair's output
  C_m / (2 b3_m) (N+ - N-) = C_m (x_j - x_i) . f'(s_m) with C_m = n / |f'(s_m)|^2 is the
  estimate of j - i.

Gates (``gate=``): ``"fit"`` (default) chooses w_m and b_m by a max-margin linear program
over the sample points (the post's "W_m, b_m,l are tuned so that ..."); ``"dot"`` is the
post's literal direction w_m = f(s_m) (plain) or f'(s_m) (helix) with only the threshold
tuned. A gate exists only if the cell's points are linearly separable from the rest of
the curve; where they are not (the curve comes back near itself, or a point of a
multi-turn helix lies between its neighbours one turn up and down), the build says which
sentry fails and where (``strict=True``) or records it (``strict=False``).

>>> from poslens.analyses.twisted_pair.curves import make_curve
>>> con = build(make_curve("helix"), n=128, M=8, k=4)
>>> con.cfg.d_mlp, con.layout["v"]
(18, [8])
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...errors import InvalidInputError
from ...io import atomic_write_text
from ...models.config import ModelConfig
from ...models.weights import Weights
from ...options import one_of
from ..helix.pca import OdeFit, fit_linear_ode
from .curves import Curve, CurveInfo, CurveStats, curve_stats, derivative
from .gates import fit_gate, sentry_layout
from .options import GATES, VARIANTS


def check_sizes(n: int, M: int, k: int, variant: str = "plain") -> None:
    """The post's assumptions on sizes, as one-sentence errors."""
    one_of("variant", variant, VARIANTS)
    if int(M) < 1:
        raise InvalidInputError(f"M={M}: the construction needs at least one gap between sentries (M >= 1)")
    if int(n) < 2:
        raise InvalidInputError(f"n={n}: the curve needs at least 3 points (n >= 2)")
    if int(k) < 1:
        raise InvalidInputError(f"k={k}: the largest distance to estimate must be at least 1")
    if int(k) >= int(n):
        raise InvalidInputError(f"k={k} >= n={n}: the post assumes |i - j| <= k << n; choose k < n")
    if variant == "plain" and int(M) + 1 >= int(n):
        raise InvalidInputError(f"M={M}: the post assumes fewer sentries than points (M + 1 < n={n}); lower M")


@dataclass(frozen=True)
class CurveSamples:
    """Up to a few hundred sample points of the curve (index ``i``, coordinates ``x``) and their active
    sentry cell, for figures."""

    i: list[int]
    x: list[list[float]]
    cell: list[int]


@dataclass(frozen=True)
class ConstructionSummary:
    """A construction's shape and gates, as a result records it: sizes, the residual-stream ``layout``
    (which dimensions hold S, the slot flags, U and the readout v), the sentries' parameters ``t`` and
    gate margins, which gates isolate their cell (``gate_ok``; ``dot_gate_ok`` counts the post's
    literal f(s_m) gates that would), readout weights, the curve (name, parameters, Lipschitz and speed
    statistics, closest approach) and the sample points."""

    variant: str
    gate: str
    n: int
    M: int
    k: int
    n_sentries: int
    n_neurons: int
    d: int
    d_model: int
    n_heads: int
    d_head: int
    layout: dict[str, list[int]]
    sentry_spacing: float
    period: float | None
    t_sentries: list[float]
    gate_margin: list[float]
    gate_ok: list[bool]
    n_gates_failed: int
    dot_gate_ok: int
    b3: list[float]
    C: list[float]
    curve: CurveInfo
    ode_r2: float | None
    options: dict[str, Any]
    samples: CurveSamples


@dataclass
class Construction:
    """A built twisted-pair model: its Weights and everything needed to read and check it."""

    weights: Weights
    cfg: ModelConfig
    curve: Curve
    n: int
    M: int
    k: int
    variant: str
    gate: str
    layout: dict[str, list[int]]  # residual-stream dimensions of S, flags, U, Y (helix), v
    t_sentries: np.ndarray
    fprime: np.ndarray  # [n_s, d] f'(s_m)
    cell: np.ndarray  # [n + 1] the sentry active at each point
    s_eff: np.ndarray  # [n + 1] the effective sentry location of each point
    spacing: float
    gate_margin: np.ndarray  # [n_s] gate margin in input units (distance a gate input may move without flipping)
    gate_scale: np.ndarray  # [n_s] G_m
    gate_ok: np.ndarray  # [n_s] the gate separates its cell
    dot_gate_ok: np.ndarray  # [n_s] the post's literal direction would have separated it too
    b3: np.ndarray
    C: np.ndarray
    X: np.ndarray  # [n + 1, d] the samples
    Y: np.ndarray | None  # [n + 1, d] y_i = A x_i + c (helix variant)
    stats: CurveStats
    period: float | None = None
    ode: OdeFit | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def n_sentries(self) -> int:
        return len(self.t_sentries)

    @property
    def feasible(self) -> bool:
        return bool(self.gate_ok.all())

    def pair_tokens(self, k: int | None = None) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Token sequences ``[j, i]`` for every pair with 0 <= i, j <= n and |i - j| <= k, and (i, j)."""
        k = self.k if k is None else int(k)
        i, j = np.meshgrid(np.arange(self.n + 1), np.arange(-k, k + 1), indexing="ij")
        j = i + j
        ok = (j >= 0) & (j <= self.n)
        i, j = i[ok], j[ok]
        return torch.as_tensor(np.c_[j, i], dtype=torch.long), i, j

    def ideal(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """The construction's estimate in exact arithmetic: n (x_j - x_i) . f'(s) / |f'(s)|^2."""
        F = self.fprime[self.cell[i]]
        return self.n * np.einsum("pd,pd->p", self.X[j] - self.X[i], F) / (F**2).sum(1)

    def bound(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """The post's error bound on the estimate of j - i, in positions.

        n L (spacing / 2 + |i - j| / n) |i - j| / n / |f'(s_m)|, plus (helix variant) the
        term |f'(s_eff) - f'(s_m)| |i - j| / |f'(s_m)| for a derivative that is not exactly periodic.
        """
        d = np.abs(j - i) / self.n
        F = self.fprime[self.cell[i]]
        speed = np.linalg.norm(F, axis=1)
        vec = self.stats.L * (self.spacing / 2 + d) * d
        if self.variant == "helix":
            vec = vec + self._period_mismatch[i] * d
        return self.n * vec / speed

    @cached_property
    def _period_mismatch(self) -> np.ndarray:
        # An effective sentry past an end is replaced by the end itself: it is still
        # within half a spacing of the point, so the bound's first term still holds.
        F_eff = derivative(self.curve, np.clip(self.s_eff, 0.0, 1.0))
        return np.linalg.norm(F_eff - self.fprime[self.cell], axis=1)

    def summary(self) -> ConstructionSummary:
        """The construction's shape and gates, for a result (no big arrays)."""
        return ConstructionSummary(
            variant=self.variant, gate=self.gate, n=self.n, M=self.M, k=self.k,
            n_sentries=self.n_sentries, n_neurons=int(self.cfg.d_mlp), d=int(self.X.shape[1]),
            d_model=self.cfg.d_model, n_heads=self.cfg.n_heads, d_head=self.cfg.d_head,
            layout={k: [int(x) for x in v] for k, v in self.layout.items()}, sentry_spacing=self.spacing,
            period=self.period, t_sentries=self.t_sentries.tolist(), gate_margin=self.gate_margin.tolist(),
            gate_ok=self.gate_ok.tolist(), n_gates_failed=int((~self.gate_ok).sum()),
            dot_gate_ok=int(self.dot_gate_ok.sum()), b3=self.b3.tolist(), C=self.C.tolist(),
            curve=self.curve.describe(self.stats), ode_r2=None if self.ode is None else self.ode.r2,
            options=self.options, samples=self._samples(),
        )

    def _samples(self, most: int = 513) -> CurveSamples:
        """Up to ``most`` sample points and their cells, for figures."""
        step = max(1, (self.n + 1) // most)
        idx = np.arange(0, self.n + 1, step)
        return CurveSamples(i=idx.tolist(), x=self.X[idx].tolist(), cell=self.cell[idx].tolist())

    def save(self, path: str | Path) -> Path:
        """Write the model as a checkpoint directory (config.json, model.safetensors) plus
        ``twisted_pair.json`` saying how to read it (token ids = curve indices, sequence
        ``[j, i]``, estimate of j - i = blocks.0.hook_mlp_out[:, 1, v])."""
        from ...models.save import save_checkpoint

        path = Path(path)
        save_checkpoint(path, self.cfg, self._hf_state_dict)
        meta = {"readout": {"tokens": "[j, i] (token id = curve index)", "hook": "blocks.0.hook_mlp_out",
                            "position": 1, "direction": self.layout["v"][0], "estimates": "j - i"},
                **dataclasses.asdict(self.summary())}
        atomic_write_text(path / "twisted_pair.json", json.dumps(meta, indent=2) + "\n")
        return path


def _layout(d: int, variant: str, d_model: int | None) -> tuple[dict, int, int]:
    n_heads = 3 if variant == "helix" else 2
    need = 2 * d + 3 + (d if variant == "helix" else 0)
    d_head = max(d, math.ceil(need / n_heads))
    dm = n_heads * d_head
    if d_model is not None:
        if d_model < dm or d_model % n_heads or d_model // n_heads < d:
            raise InvalidInputError(
                f"d_model={d_model} is too small for a {d}-dimensional curve: the {variant} construction needs "
                f"a multiple of {n_heads} that is at least {dm}"
            )
        dm, d_head = d_model, d_model // n_heads
    r = list(range(dm))
    lay = {"S": r[:d], "flags": r[d:d + 2], "U": r[d + 2:2 * d + 2]}
    nxt = 2 * d + 2
    if variant == "helix":
        lay["Y"] = r[nxt:nxt + d]
        nxt += d
    lay["v"] = [nxt]
    return lay, n_heads, dm


def build(curve: Curve, n: int, M: int, k: int, *, variant: str = "plain", gate: str = "fit",
          signal_fraction: float = 0.5, period: float | None = None, attention_sharpness: float = 50.0,
          d_model: int | None = None, strict: bool = True, stats=None) -> Construction:
    """Build the twisted-pair model for ``curve`` sampled at i/n, M sentry gaps, distances up to k.

    ``variant``: "plain" (gates read x_i; M + 1 sentries on [0, 1]) or "helix" (gates read
    y_i = A x_i + c, M sentries on one period of f', reused every period). ``strict``
    raises where a gate cannot separate its cell; otherwise the failure is recorded in
    ``gate_ok`` and the model is built anyway (to show what goes wrong).

    >>> from poslens.analyses.twisted_pair.curves import make_curve
    >>> con = build(make_curve("circle-drift"), n=64, M=4, k=3)
    >>> con.feasible, con.cfg.n_heads
    (True, 2)
    """
    check_sizes(n, M, k, variant)
    one_of("gate", gate, GATES)
    if not 0 < signal_fraction < 1:
        raise InvalidInputError(f"signal_fraction must be in (0, 1) so the paired neurons stay on (got {signal_fraction})")
    n, M, k = int(n), int(M), int(k)
    stats = stats if stats is not None else curve_stats(curve, n)
    X = stats.X
    d = X.shape[1]
    ode, Y = None, None
    if variant == "helix":
        ode = fit_linear_ode(X, dt=1.0 / n)
        A, c = np.asarray(ode.A), np.asarray(ode.c)
        Y = X @ A.T + c
        period = float(period or curve.period or 1.0)
        if not period > 0:
            raise InvalidInputError(f"the helix variant's period must be positive (got {period})")
        if period * n / M < 1:
            raise InvalidInputError(
                f"M={M} sentries per period of {period * n:.3g} points leave sentries without points; lower M"
            )
    t_s, cell, s_eff, spacing = sentry_layout(n, M, variant, period)
    F = derivative(curve, np.clip(t_s, 0.0, 1.0))  # sentries past t = 1 (period > 1) have no points
    n_s = len(t_s)
    G_pts = X if variant == "plain" else Y
    dot_dirs = curve(t_s) if variant == "plain" else F

    # gates
    W_gate, b_gate = np.zeros((n_s, d)), np.zeros(n_s)
    margin, scale = np.zeros(n_s), np.zeros(n_s)
    ok, dot_ok = np.zeros(n_s, bool), np.zeros(n_s, bool)
    for m in range(n_s):
        inside = cell == m
        w, b, delta = fit_gate(G_pts, inside, gate, dot_dirs[m])
        _, _, ddot = fit_gate(G_pts, inside, "dot", dot_dirs[m])
        dot_ok[m] = ddot > 1e-12 * max(1.0, float(np.abs(G_pts).max()) * float(np.abs(dot_dirs[m]).max()))
        wn = float(np.linalg.norm(w))
        ok[m] = delta > 1e-9 * max(wn * float(np.abs(G_pts).max()), 1e-300)
        margin[m] = delta / wn if wn > 0 else np.inf
        scale[m] = 1.0 / max(abs(delta), 1e-12)
        W_gate[m], b_gate[m] = w * scale[m], b * scale[m]
        if strict and not ok[m]:
            break  # no need to fit the rest: the build fails here
    if strict and not ok.all():
        m = int(np.flatnonzero(~ok)[0])
        inside = cell == m
        from scipy.spatial.distance import cdist

        D = cdist(G_pts[inside], G_pts[~inside])
        a, b = np.unravel_index(int(D.argmin()), D.shape)
        ti, to = np.flatnonzero(inside)[a] / n, np.flatnonzero(~inside)[b] / n
        raise InvalidInputError(
            f"sentry {m} (s={t_s[m]:.4f}) cannot be gated: the points of its cell are not linearly separable from the "
            f"rest of the curve (the closest outside point is t={to:.4f}, "
            f"{D[a, b]:.3g} from t={ti:.4f}); the curve comes too close to itself for a {variant} construction "
            + ("(try variant='helix' for a multi-turn helix, or fewer turns)" if variant == "plain" else "(lower M)")
        )

    # signal scale: the largest |(x_j - x_i) . f'(s_m)| over every pair with |i - j| <= k
    big = np.zeros(n_s)
    for dlt in range(1, k + 1):
        big = np.maximum(big, np.abs((X[dlt:] - X[:-dlt]) @ F.T).max(0))
    b3 = signal_fraction / np.maximum(big, 1e-300)
    C = n / (F**2).sum(1)

    lay, n_heads, dm = _layout(d, variant, d_model)
    cfg = ModelConfig(n_layers=1, n_heads=n_heads, d_model=dm, n_ctx=2, d_vocab=n + 1, d_mlp=2 * n_s,
                      act_fn="relu", normalization="none")
    dh = cfg.d_head
    S, U, v = lay["S"], lay["U"], lay["v"][0]
    f0, f1 = lay["flags"]
    wte = torch.zeros(n + 1, dm, dtype=torch.float64)
    wte[:, S] = torch.as_tensor(X)
    wpe = torch.zeros(2, dm, dtype=torch.float64)
    wpe[0, f0] = wpe[1, f1] = 1.0
    c_attn = torch.zeros(dm, 3 * dm, dtype=torch.float64)
    c_attn_b = torch.zeros(3 * dm, dtype=torch.float64)
    c_proj = torch.zeros(dm, dm, dtype=torch.float64)
    # (head, flag its key reads, V matrix on S [d, d] so value = x @ V, output subspace, sign)
    heads = [(0, f0, np.eye(d), U, 1.0), (1, f1, np.eye(d), U, -1.0)]
    if variant == "helix":
        heads.append((2, f1, np.asarray(ode.A).T, lay["Y"], 1.0))
    for h, flag, V, out, sign in heads:
        c_attn_b[h * dh] = attention_sharpness * math.sqrt(dh)  # constant query ...
        c_attn[flag, dm + h * dh] = 1.0  # ... meets a key only on the wanted slot
        vc = 2 * dm + h * dh
        c_attn[S, vc:vc + d] = torch.as_tensor(V)
        for a in range(d):
            c_proj[h * dh + a, out[a]] = sign
    if variant == "helix":
        c_attn_b[2 * dm + 2 * dh:2 * dm + 2 * dh + d] = torch.as_tensor(np.asarray(ode.c))
    c_fc = torch.zeros(dm, 2 * n_s, dtype=torch.float64)
    c_fc_b = torch.zeros(2 * n_s, dtype=torch.float64)
    mlp_proj = torch.zeros(2 * n_s, dm, dtype=torch.float64)
    gate_dims = S if variant == "plain" else lay["Y"]
    for m in range(n_s):
        for col, sign in ((2 * m, 1.0), (2 * m + 1, -1.0)):
            c_fc[gate_dims, col] = torch.as_tensor(W_gate[m])
            c_fc[U, col] = torch.as_tensor(sign * b3[m] * F[m])
            c_fc_b[col] = b_gate[m]
            mlp_proj[col, v] = sign * C[m] / (2 * b3[m])
    sd = {
        "wte.weight": wte, "wpe.weight": wpe,
        "h.0.ln_1.weight": torch.ones(dm), "h.0.ln_1.bias": torch.zeros(dm),
        "h.0.attn.c_attn.weight": c_attn, "h.0.attn.c_attn.bias": c_attn_b,
        "h.0.attn.c_proj.weight": c_proj, "h.0.attn.c_proj.bias": torch.zeros(dm),
        "h.0.ln_2.weight": torch.ones(dm), "h.0.ln_2.bias": torch.zeros(dm),
        "h.0.mlp.c_fc.weight": c_fc, "h.0.mlp.c_fc.bias": c_fc_b,
        "h.0.mlp.c_proj.weight": mlp_proj, "h.0.mlp.c_proj.bias": torch.zeros(dm),
        "ln_f.weight": torch.ones(dm), "ln_f.bias": torch.zeros(dm),
    }
    sd = {key: t.float() for key, t in sd.items()}
    label = f"twisted-pair[{curve.name}, {variant}, n={n}, M={M}, k={k}]"
    weights = Weights.from_state_dict(sd, cfg, label=label)
    options = {"signal_fraction": signal_fraction, "attention_sharpness": attention_sharpness, "strict": strict}
    con = Construction(
        weights=weights, cfg=cfg, curve=curve, n=n, M=M, k=k, variant=variant, gate=gate, layout=lay,
        t_sentries=t_s, fprime=F, cell=cell, s_eff=s_eff, spacing=spacing, gate_margin=margin,
        gate_scale=scale, gate_ok=ok, dot_gate_ok=dot_ok, b3=b3, C=C, X=X, Y=Y, stats=stats,
        period=period, ode=ode, options=options,
    )
    con._hf_state_dict = sd
    return con
