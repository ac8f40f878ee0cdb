"""Checkpoints, weights, the hooked runner and the tokenizer."""

from .checkpoint import Checkpoint
from .config import ModelConfig
from .registry import MODELS, open_checkpoint, resolve
from .runner import Activations, Runner, hook_names
from .weights import Weights, load_weights

__all__ = [
    "Activations", "Checkpoint", "MODELS", "ModelConfig", "Runner", "Weights",
    "hook_names", "load_weights", "open_checkpoint", "resolve",
]
