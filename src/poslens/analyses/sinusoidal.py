"""The standard sinusoidal positional encoding, as a matrix shaped like a learned ``W_pos``.

Vaswani et al. (2017), in the slides' notation (the Dissecting the Frog slides, "Dissecting the Frog")::

    PE[n, 2i]   = sin(n / base ** (2i / d_model))
    PE[n, 2i+1] = cos(n / base ** (2i / d_model))      base = 10000

Every row has norm sqrt(d_model / 2) (each sin/cos pair contributes 1), and
``PE[n] . PE[n+1] = sum_i cos(base ** (-2i / d_model))`` does not depend on ``n``.

>>> pe = sinusoidal_encoding(1024, 768)
>>> pe.shape, round(float(np.linalg.norm(pe[100])), 4)
((1024, 768), 19.5959)
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

FORMULA = "PE[n, 2i] = sin(n / base**(2i/d_model)); PE[n, 2i+1] = cos(n / base**(2i/d_model))"
DEFAULT_BASE = 10000.0
LAYOUTS = ("interleaved", "halves")


def sinusoidal_encoding(n_ctx: int, d_model: int, base: float = DEFAULT_BASE, layout: str = "interleaved") -> np.ndarray:
    """``[n_ctx, d_model]`` float64 sinusoidal encoding.

    ``layout``: "interleaved" (even dims sin, odd dims cos, as in the paper) or "halves"
    (all sines, then all cosines, as some implementations store it); the two differ by a
    permutation of dimensions, so every rotation-invariant metric agrees.
    """
    if layout not in LAYOUTS:
        raise InvalidInputError(f"unknown sinusoidal layout '{layout}'; use one of {', '.join(LAYOUTS)}")
    if n_ctx < 1 or d_model < 2 or d_model % 2:
        raise InvalidInputError(
            f"a sinusoidal encoding needs n_ctx >= 1 and an even d_model >= 2 (got n_ctx={n_ctx}, d_model={d_model})"
        )
    if base <= 1:
        raise InvalidInputError(f"sinusoidal base must be > 1 (got {base}); the standard value is 10000")
    n = np.arange(n_ctx, dtype=np.float64)[:, None]
    i = np.arange(d_model // 2, dtype=np.float64)[None, :]
    angle = n / base ** (2 * i / d_model)
    if layout == "halves":
        return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)
    pe = np.empty((n_ctx, d_model))
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle)
    return pe


def describe(n_ctx: int, d_model: int, base: float = DEFAULT_BASE, layout: str = "interleaved") -> dict:
    """The formula and constants, for a result to record what it compared against."""
    return {
        "formula": FORMULA,
        "base": base,
        "n_ctx": n_ctx,
        "d_model": d_model,
        "layout": "interleaved (even dims sin, odd dims cos)" if layout == "interleaved" else "halves (sines, then cosines)",
        "expected_row_norm": float(np.sqrt(d_model / 2)),
    }
