"""poslens: mechanistic interpretability of positional information in GPT-2-style transformers.

>>> import torch
>>> from poslens import load_weights, Runner
>>> w = load_weights("tiny")
>>> tokens = torch.tensor([[0, 464, 256, 389]])   # [batch, pos] token ids
>>> acts = Runner(w).run(tokens, hooks=["blocks.0.attn.hook_pattern"])
>>> acts["blocks.0.attn.hook_pattern"].shape       # [batch, head, query, key]
torch.Size([1, 4, 4, 4])
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import PoslensError
from .lazy import exports

if TYPE_CHECKING:
    from .analyses import load_result
    from .models import Checkpoint, ModelConfig, Runner, Weights, load_weights, open_checkpoint
    from .models.tokenizer import Tokenizer

# torch loads on first use, so `poslens --help` and a mistyped flag answer at once
__getattr__ = exports(__name__, {
    ".analyses": ("load_result",),
    ".models": ("Checkpoint", "ModelConfig", "Runner", "Weights", "load_weights", "open_checkpoint"),
    ".models.tokenizer": ("Tokenizer",),
})

__version__ = "0.1.0"
__all__ = ["Checkpoint", "ModelConfig", "PoslensError", "Runner", "Tokenizer", "Weights", "load_result", "load_weights",
           "open_checkpoint"]
