"""PVO, the positional signal a head writes into the same layer's MLP (``W_pos · W_V^h · W_O^h ·
W_in``), its neuron grid and linear fits, and the seed's combined positional curve of one neuron."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ...errors import InvalidInputError
from ...models.weights import Weights, require
from ..heads.options import check_heads


def grid_shape(n: int, aspect: float = 0.75) -> tuple[int, int]:
    """Rows x columns for showing ``n`` neurons as a grid: rows the largest divisor of ``n``
    not above ``sqrt(n * aspect)`` (3072 -> 48 x 64, the seed's figure).

    >>> grid_shape(3072), grid_shape(512), grid_shape(7)
    ((48, 64), (16, 32), (1, 7))
    """
    if n < 1:
        raise InvalidInputError(f"cannot lay out {n} neurons as a grid")
    target = math.sqrt(n * aspect)
    rows = max(d for d in range(1, int(target) + 1) if n % d == 0)
    return rows, n // rows


def linear_fit(y, x=None) -> dict[str, Any]:
    """Least-squares line through ``y`` against ``x`` (default 0, 1, ...): slope, intercept,
    R² and the x where the line crosses zero (None for a flat line).

    >>> f = linear_fit([2.0, 1.0, 0.0, -1.0])
    >>> f["slope"], f["zero_crossing"], f["r2"]
    (-1.0, 2.0, 1.0)
    """
    from scipy import stats

    y = np.asarray(y, dtype=float)
    x = np.arange(len(y), dtype=float) if x is None else np.asarray(x, dtype=float)
    if len(y) < 2 or np.ptp(x) == 0:
        return {"slope": None, "intercept": None, "r2": None, "zero_crossing": None, "n": int(len(y))}
    lr = stats.linregress(x, y)
    slope, icept = float(lr.slope), float(lr.intercept)
    r2 = float(lr.rvalue) ** 2 if np.ptp(y) > 0 else 1.0
    return {"slope": slope, "intercept": icept, "r2": r2,
            "zero_crossing": -icept / slope if slope != 0 else None, "n": int(len(y))}


def neuron_ov(weights: Weights, layer: int, w: torch.Tensor) -> torch.Tensor:
    """``[n_heads, d_model]``: what each head of ``layer`` reads from its (normalised) input for
    a neuron whose input weights are ``w [d_model]`` (``W_V^h · W_O^h · w``)."""
    p = f"blocks.{layer}.attn."
    return torch.einsum("hdk,hkm,m->hd", weights.get(p + "W_V").double(), weights.get(p + "W_O").double(), w.double())


def pvo_matrix(weights: Weights, layer: int, head: int) -> torch.Tensor:
    """The PVO contribution ``W_pos · W_V^h · W_O^h · W_in`` of head ``layer.head`` to the
    MLP of the same layer, ``[n_ctx, d_mlp]`` in float64, on the weights as given.

    >>> pvo_matrix(w, 0, 5).norm(dim=0).shape      # doctest: +SKIP
    torch.Size([3072])
    """
    check_heads(weights, [(layer, head)])
    need = ["pos_embed.W_pos", f"blocks.{layer}.attn.W_V", f"blocks.{layer}.attn.W_O", f"blocks.{layer}.mlp.W_in"]
    require(weights, need, f"the PVO contribution of head {layer}.{head}")
    p = f"blocks.{layer}."
    W_V, W_O = weights.get(p + "attn.W_V")[head].double(), weights.get(p + "attn.W_O")[head].double()
    return weights.W_pos.double() @ (W_V @ (W_O @ weights.get(p + "mlp.W_in").double()))


def combined_positional(weights: Weights, head: tuple[int, int], neuron: int, uniform_heads: list[int],
                        m1: torch.Tensor, mlp_scale: float) -> torch.Tensor:
    """The seed's "combined PVO contribution from all the components" ``[n_ctx]``: what a
    token that has no earlier copy gets from position alone, by the seed's rules.

    Every head but the uniform ones contributes its PVO at the current position (the
    duplicate head attends to the token itself), a uniform head the mean PVO over earlier
    positions, plus the direct path W_pos·w; ``m1`` is the layer-0 LayerNorm multiplier
    per position and ``mlp_scale`` the MLP LayerNorm scale.

    >>> combined_positional(w, (0, 5), 1168, [11], m1, 1.2)[200:].mean()   # doctest: +SKIP
    """
    L = head[0]
    w_in = weights.get(f"blocks.{L}.mlp.W_in")[:, neuron].double()
    pos = weights.W_pos.double()
    per_head = (pos @ neuron_ov(weights, L, w_in).T) * m1[:, None]  # [n_ctx, H]
    n = torch.arange(1, len(pos) + 1, dtype=torch.float64)[:, None]
    uni = torch.zeros(per_head.shape[1], dtype=torch.bool)
    uni[list(uniform_heads)] = True
    heads = torch.where(uni[None, :], per_head.cumsum(0) / n, per_head)
    return (heads.sum(1) + pos @ w_in) / mlp_scale
