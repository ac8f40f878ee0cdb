"""Family adapters: each maps one architecture's config.json and tensor names/layout onto
TransformerLens names and shapes (:class:`~poslens.models.families.base.Family`).

>>> adapter_for({"model_type": "gpt_neox"}).name
'gpt_neox'
>>> sorted(FAMILIES)
['gpt2', 'gpt_neo', 'gpt_neox', 'llama', 'opt']
"""

from __future__ import annotations

from typing import Any

from ...errors import UnsupportedArchitectureError
from .base import Family, Src
from .gpt2 import GPT2
from .gpt_neo import GPTNeo
from .gpt_neox import GPTNeoX
from .llama import Llama
from .opt import OPT

FAMILIES: dict[str, Family] = {f.name: f for f in (GPT2(), GPTNeo(), OPT(), GPTNeoX(), Llama())}
MODEL_TYPES: dict[str, Family] = {t: f for f in FAMILIES.values() for t in f.model_types}


def supported() -> str:
    return ", ".join(f"{t} ({f.name})" if t != f.name else t for t, f in MODEL_TYPES.items())


def adapter_for(hf: dict[str, Any], source: str = "config.json") -> Family:
    """The adapter for a config.json's ``model_type``."""
    kind = hf.get("model_type")
    if kind in MODEL_TYPES:
        return MODEL_TYPES[kind]
    archs = ", ".join(hf.get("architectures") or []) or "no architecture"
    raise UnsupportedArchitectureError(
        f"{source} describes a '{kind}' model ({archs}); poslens reads the decoder-only families "
        f"{supported()}")


def family_of(cfg) -> Family:
    """The adapter for a :class:`~poslens.models.config.ModelConfig`."""
    return FAMILIES[cfg.family]




def check_shapes(ckpt) -> None:
    """Check every stored tensor's shape (from the file headers; no tensor data is read)
    against what the checkpoint's config.json implies for its family.

    Raises one :class:`~poslens.errors.CorruptCheckpointError` naming the first tensor whose
    shape is wrong, its shape and the expected one.
    """
    from ...errors import CorruptCheckpointError

    cfg = ckpt.config
    fam = family_of(cfg)
    for name, expected in fam.shapes(cfg).items():
        stored = fam.stored(name, ckpt.has)
        if not ckpt.has(stored):
            continue
        shape = tuple(ckpt.shape(stored))
        if shape != tuple(expected):
            raise CorruptCheckpointError(
                f"{ckpt.label}: tensor '{stored}' has shape {list(shape)} but its config.json implies "
                f"{list(expected)} ({fam.name}: n_layers={cfg.n_layers}, n_heads={cfg.n_heads}, d_model={cfg.d_model}, "
                f"d_mlp={cfg.d_mlp}, n_ctx={cfg.n_ctx}, d_vocab={cfg.d_vocab}); the weights and config.json "
                "do not belong together: fix config.json or re-download the checkpoint")


__all__ = ["FAMILIES", "MODEL_TYPES", "Family", "Src", "adapter_for", "check_shapes", "family_of", "supported"]
