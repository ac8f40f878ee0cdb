"""The probing points of a token forward pass, shared by the subspace analysis and the lens:
0 = token + position embeddings, i = output of block i-1 (Hugging Face's ``hidden_states``).

>>> probe_hooks(2), probe_labels(2)
(['blocks.0.hook_resid_pre', 'blocks.0.hook_resid_post', 'ln_final.hook_normalized'], ['embed', 'block 0', 'block 1 +ln_f'])
"""

from __future__ import annotations

import torch

from ...errors import InvalidInputError
from ...models.weights import Weights, forward_tensors, require


def probe_hooks(n_layers: int, final_ln: bool = True) -> list[str]:
    """Hook names of the n_layers + 1 probing points (Hugging Face's ``hidden_states``)."""
    hooks = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(n_layers)]
    if final_ln:
        hooks[-1] = "ln_final.hook_normalized"
    return hooks


def probe_labels(n_layers: int, final_ln: bool = True) -> list[str]:
    return ["embed"] + [f"block {l}" for l in range(n_layers - 1)] + [f"block {n_layers - 1}" + (" +ln_f" if final_ln else "")]


def require_forward(weights: Weights, needed_for: str, unembed: bool = False) -> None:
    """MissingTensorError naming the first tensor a full token forward pass would lack
    (in the model's own family: no W_pos for rotary models, the gate of gated MLPs)."""
    require(weights, forward_tensors(weights, unembed=unembed), needed_for)


def prompt_tokenizer(weights: Weights, prompt, tokenizer, what: str):
    """``tokenizer`` (anything :func:`~poslens.models.tokenizer.as_tokenizer` takes), or for a text
    prompt without one the model's own; InvalidInputError for a tokenizer with more ids than the
    model (another model's), before any id reaches the runner."""
    from ...models.tokenizer import Tokenizer, as_tokenizer

    tokenizer = as_tokenizer(tokenizer, what, weights)
    if tokenizer is None and (prompt is None or isinstance(prompt, str)):
        tokenizer = Tokenizer.for_checkpoint(weights.source)
    return tokenizer


def prompt_ids(prompt, tokenizer, prepend_bos: bool = False) -> list[int]:
    """Token ids of ``prompt``, a text (encoded by ``tokenizer``) or ids; InvalidInputError when empty."""
    if isinstance(prompt, str):
        if tokenizer is None:
            raise InvalidInputError("a text prompt needs the model's tokenizer; give token ids or a tokenizer")
        return prompt_tokens(tokenizer, prompt, prepend_bos)
    from ...models.runner import _as_tensor

    t = _as_tensor(prompt, "the prompt's token ids")
    if not t.numel():
        raise InvalidInputError("the prompt is empty; give at least one token")
    # floats were truncated to ids, and two rows run as one prompt
    if t.is_floating_point() or t.dtype == torch.bool or t.dim() > 2 or (t.dim() == 2 and len(t) != 1):
        raise InvalidInputError(f"a prompt's token ids are integers, one sequence ([pos] or [1, pos]); got {t.dtype} "
                                f"of shape {tuple(t.shape)}")
    return t.reshape(-1).tolist()


def prompt_tokens(tokenizer, text: str, prepend_bos: bool = False) -> list[int]:
    """Token ids of ``text``; InvalidInputError for an empty text."""
    if text is None or not str(text).strip():
        raise InvalidInputError("the prompt is empty; give some text (or @FILE)")
    ids = tokenizer.encode(text, prepend_bos=prepend_bos)
    if len(ids) - int(prepend_bos) == 0:
        raise InvalidInputError("the prompt encodes to no tokens; give some text")
    return ids
