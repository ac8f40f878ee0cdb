"""Checkpoints, weights, the hooked runner and the tokenizer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import exports

if TYPE_CHECKING:
    from .checkpoint import Checkpoint
    from .config import ModelConfig
    from .registry import MODELS, open_checkpoint, resolve
    from .runner import Activations, Runner, hook_names, resid_hook
    from .weights import Weights, load_weights

__getattr__ = exports(__name__, {
    ".checkpoint": ("Checkpoint",),
    ".config": ("ModelConfig",),
    ".registry": ("MODELS", "open_checkpoint", "resolve"),
    ".runner": ("Activations", "Runner", "hook_names", "resid_hook"),
    ".weights": ("Weights", "load_weights"),
})

__all__ = [
    "Activations", "Checkpoint", "MODELS", "ModelConfig", "Runner", "Weights",
    "hook_names", "load_weights", "resid_hook", "open_checkpoint", "resolve",
]
