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


__all__ = ["FAMILIES", "MODEL_TYPES", "Family", "Src", "adapter_for", "family_of", "supported"]
