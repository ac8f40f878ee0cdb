"""poslens: mechanistic interpretability of positional information in GPT-2-style transformers.

>>> from poslens import load_weights, Runner
>>> w = load_weights("tiny")                       # doctest: +SKIP
>>> acts = Runner(w).run(tokens, hooks=["blocks.0.attn.hook_pattern"])  # doctest: +SKIP
"""

from .errors import PoslensError
from .models import Checkpoint, ModelConfig, Runner, Weights, load_weights, open_checkpoint
from .models.tokenizer import Tokenizer

__version__ = "0.1.0"
__all__ = ["Checkpoint", "ModelConfig", "PoslensError", "Runner", "Tokenizer", "Weights", "load_weights", "open_checkpoint"]
