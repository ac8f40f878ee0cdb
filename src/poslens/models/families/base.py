"""What a family adapter is: its config reader and a map from TransformerLens names to its
stored tensors, with the stored shapes a config implies (checked before any work).

A :class:`Src` says which stored tensors a TransformerLens tensor is made of and how
(``fn(*raw) -> tensor``); ``hf=()`` means a derived zero (a bias the family does not have).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from ...errors import CorruptCheckpointError, UnsupportedArchitectureError
from ..config import ModelConfig


@dataclass(frozen=True)
class Src:
    hf: tuple[str, ...]
    fn: Callable[..., torch.Tensor]


def same(t: torch.Tensor) -> torch.Tensor:
    return t


def zeros(*shape: int) -> Src:
    return Src((), lambda: torch.zeros(*shape))


def stored_or_zeros(stored: bool, name: str, fn: Callable[..., torch.Tensor], *shape: int) -> Src:
    """``name`` read through ``fn`` when the checkpoint stores it (``stored``), else a zero of ``shape``."""
    return Src((name,), fn) if stored else zeros(*shape)


def layer_norm(t: dict[str, Src], tl: str, hf: str) -> None:
    """TransformerLens ``{tl}.w`` / ``{tl}.b`` as the stored ``{hf}.weight`` / ``{hf}.bias``."""
    t[tl + ".w"], t[tl + ".b"] = Src((hf + ".weight",), same), Src((hf + ".bias",), same)


def mlp(t: dict[str, Src], tl: str, w_in: str, w_out: str, cfg, fn: Callable[..., torch.Tensor] = same,
        bias: bool = True) -> None:
    """TransformerLens ``{tl}.W_in`` / ``b_in`` / ``W_out`` / ``b_out`` as the stored ``{w_in}`` and ``{w_out}``
    ``.weight`` (read through ``fn``) and ``.bias`` (zeros where the checkpoint keeps none, ``bias`` False)."""
    t[tl + ".W_in"] = Src((w_in + ".weight",), fn)
    t[tl + ".b_in"] = stored_or_zeros(bias, w_in + ".bias", same, cfg.d_mlp)
    t[tl + ".W_out"] = Src((w_out + ".weight",), fn)
    t[tl + ".b_out"] = stored_or_zeros(bias, w_out + ".bias", same, cfg.d_model)


def linear_in(heads: int, d_head: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """nn.Linear weight [heads * d_head, d_model] -> [heads, d_model, d_head]."""
    return lambda w: w.T.reshape(w.shape[1], heads, d_head).permute(1, 0, 2).contiguous()


def linear_out(heads: int, d_head: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """nn.Linear weight [d_model, heads * d_head] -> [heads, d_head, d_model]."""
    return lambda w: w.T.reshape(heads, d_head, w.shape[0]).contiguous()


def per_head(heads: int, d_head: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda b: b.reshape(heads, d_head)


def grouped(fn: Callable[[torch.Tensor], torch.Tensor], group: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Expand a key/value tensor over its query heads (query head h reads key/value head h // group)."""
    if group == 1:
        return fn
    return lambda t: fn(t).repeat_interleave(group, dim=0)


class Family:
    """One family: ``name``, the ``model_types`` it reads, the prefixes its stored names may carry."""

    name: str = ""
    model_types: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    description: str = ""

    def config(self, hf: dict[str, Any], source: str) -> ModelConfig:
        raise NotImplementedError

    def tensors(self, cfg: ModelConfig) -> dict[str, Src]:
        """TransformerLens name -> how to build it, in forward order."""
        raise NotImplementedError

    def shapes(self, cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
        """Stored tensor name -> the shape ``cfg`` implies (every tensor a complete checkpoint has)."""
        raise NotImplementedError

    # ---- stored names ---------------------------------------------------------------------
    def stored(self, name: str, present: Callable[[str], bool]) -> str:
        """The name ``name`` is stored under (with or without the family's prefix)."""
        if present(name):
            return name
        for p in self.prefixes:
            if name.startswith(p) and present(name[len(p):]):
                return name[len(p):]
            if present(p + name):
                return p + name
        return name


def read(hf: dict[str, Any], keys: Iterable[str], source: str, what: str, default: Any = None) -> Any:
    """The value of a setting transformers has spelled several ways (``rotary_pct`` /
    ``partial_rotary_factor``); dotted keys read inside a nested dict (``rope_parameters.rope_theta``).
    Two spellings with different values are an error."""
    found: dict[str, Any] = {}
    for k in keys:
        node: Any = hf
        for part in k.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            found[k] = node
    values = {json_key(v) for v in found.values()}
    if len(values) > 1:
        given = ", ".join(f"{k}={v}" for k, v in found.items())
        raise CorruptCheckpointError(
            f"{source} gives the {what} inconsistently ({given}); keep one spelling or make them agree")
    return next(iter(found.values())) if found else default


def json_key(v: Any) -> Any:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def need(hf: dict[str, Any], key: str, source: str, family: str) -> Any:
    if hf.get(key) is None:
        raise CorruptCheckpointError(f"{source} lacks the {family} field '{key}'; is it a {family} config?")
    return hf[key]


def rope(hf: dict[str, Any], source: str, d_head: int, default_fraction: float,
         fraction_keys: tuple[str, ...], base_keys: tuple[str, ...]) -> tuple[int, float]:
    """(rotary_dim, rotary_base) from every spelling transformers has used."""
    params = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    kind = params.get("rope_type") or params.get("type") or "default"
    if kind != "default":
        raise UnsupportedArchitectureError(
            f"{source}: rotary scaling '{kind}' is not supported; poslens runs plain rotary embeddings (rope_type 'default')")
    frac = float(read(hf, (*fraction_keys, "rope_parameters.partial_rotary_factor"), source,
                      "rotary fraction", default_fraction))
    base = float(read(hf, (*base_keys, "rope_parameters.rope_theta"), source, "rotary base", 10000.0))
    if not 0 < frac <= 1:
        raise UnsupportedArchitectureError(f"{source}: rotary fraction {frac} is not in (0, 1]")
    return int(d_head * frac), base
