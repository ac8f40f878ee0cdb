"""Rotary geometry under the rotate-half convention (GPT-NeoX, Llama).

The first ``rotary_dim`` dimensions of each query and key head are rotated; dimension ``i``
pairs with ``i + rotary_dim/2`` (``i < rotary_dim/2``) and the pair turns by ``p * theta_i``
at position ``p``, ``theta_i = base ** (-2 i / rotary_dim)``: pair 0 is the highest
frequency (one radian per position), the last pair the lowest. Rotation keeps each pair's
norm, so chunk norms can be read from pre-rotation ``hook_q`` / ``hook_k``.

>>> spec = RotarySpec(rotary_dim=8, base=10000.0)
>>> [round(t, 4) for t in spec.frequencies()]
[1.0, 0.1, 0.01, 0.001]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ...models import block


@dataclass(frozen=True)
class RotarySpec:
    rotary_dim: int
    base: float

    @property
    def n_pairs(self) -> int:
        return self.rotary_dim // 2

    def frequencies(self) -> list[float]:
        """theta_i in radians per position, pair 0 (highest) first."""
        r = self.rotary_dim
        return [self.base ** (-2 * i / r) for i in range(r // 2)]

    def wavelengths(self) -> list[float]:
        """Positions per full turn of each pair, 2 pi / theta_i."""
        return [2 * math.pi / t for t in self.frequencies()]


def rotary_spec(cfg) -> RotarySpec | None:
    """The model's rotary layout, or None for a learned-position model."""
    if getattr(cfg, "positional", "learned") != "rotary":
        return None
    return RotarySpec(int(cfg.rotary_dim), float(getattr(cfg, "rotary_base", 10000.0)))


def not_rotary_reason(cfg, label: str = "the model") -> str | None:
    """Why a rotary analysis does not apply to ``cfg`` (one sentence), or None when it does."""
    positional = getattr(cfg, "positional", "learned")
    if positional != "rotary":
        return (f"{label} has {positional} positional embeddings (a W_pos table added to the input), not rotary "
                "position encodings: its queries and keys are not rotated, so there are no rotary frequencies to measure")
    if int(getattr(cfg, "rotary_dim", 0)) < 2:
        return f"{label} is rotary but rotates no dimensions (rotary_dim {getattr(cfg, 'rotary_dim', 0)})"
    return None


def apply_rotary(x: torch.Tensor, spec: RotarySpec, offset: int = 0) -> torch.Tensor:
    """Rotate ``x [batch, pos, head, d_head]`` at positions ``offset, offset+1, ...`` by the model's own
    rotation (the forward block's tables and rotate-half, in ``x``'s dtype)."""
    pos = torch.arange(offset, offset + x.shape[1], device=x.device)
    return block.apply_rotary(x, *block.rotary_tables(spec.rotary_dim, spec.base, pos, x.dtype))


def chunk_norms(x: torch.Tensor, spec: RotarySpec) -> torch.Tensor:
    """Norm of every rotary pair: ``x [..., d_head]`` -> ``[..., n_pairs]`` (pair i = dims i, i + r/2)."""
    half = spec.n_pairs
    return torch.sqrt(x[..., :half].pow(2) + x[..., half : 2 * half].pow(2))
