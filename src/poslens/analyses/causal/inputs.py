"""Token sequences the causal checks run on, named by a short spec.

``sample`` (consecutive windows of the built-in sample passage), ``corpus:PATH`` (random
windows of a text file), ``text:...`` (windows of the given text), ``repeated`` (random
tokens whose second half repeats the first), ``distinct`` (random tokens, none twice).

>>> from poslens.models.tokenizer import Tokenizer
>>> make_inputs("repeated", d_vocab=100, tokenizer=None, n_seq=2, seq_len=9).shape
torch.Size([2, 9])
"""

from __future__ import annotations

import torch

from ...errors import InvalidInputError

INPUT_SPECS = ("sample", "corpus:PATH", "text:TEXT", "repeated", "distinct")


def distinct_tokens(n_seq: int, seq_len: int, vocab: int, seed: int, bos: int | None = None) -> torch.Tensor:
    """Sequences in which no token occurs twice (BOS first when given, and nowhere else)."""
    from ...data.sequences import token_pool

    pool = token_pool(vocab, [bos])
    L = seq_len - (bos is not None)
    if pool.numel() < L:
        raise InvalidInputError(f"{L} distinct tokens are needed per sequence but the vocabulary has {pool.numel()}")
    g = torch.Generator().manual_seed(int(seed))
    body = torch.stack([pool[torch.randperm(pool.numel(), generator=g)[:L]] for _ in range(n_seq)])
    if bos is None:
        return body
    return torch.cat([torch.full((n_seq, 1), int(bos), dtype=torch.long), body], 1)


def make_inputs(spec: str, *, d_vocab: int, tokenizer, n_seq: int, seq_len: int, seed: int = 0,
                bos: int | None = None) -> torch.Tensor:
    """Token ids ``[n, seq_len]`` for one of :data:`INPUT_SPECS` (text specs need a tokenizer)."""
    from ...data.sequences import SAMPLE_TEXT, corpus_sequences, repeated_tokens, text_windows

    kind, _, arg = spec.partition(":")
    if kind == "repeated":
        return repeated_tokens(n_seq, seq_len, d_vocab, seed=seed, bos=bos)
    if kind == "distinct":
        return distinct_tokens(n_seq, seq_len, d_vocab, seed, bos=bos)
    if kind in ("sample", "corpus", "text"):
        if tokenizer is None:
            raise InvalidInputError(f"input '{spec}' is text but the model has no tokenizer; use repeated or distinct")
        if kind == "corpus":
            if not arg:
                raise InvalidInputError("input 'corpus:PATH' needs a path")
            return corpus_sequences(arg, tokenizer, seq_len, n_seq, seed=seed, prepend_bos=bos is not None)
        return text_windows(arg if kind == "text" else SAMPLE_TEXT, tokenizer, seq_len, n_seq, bos)
    raise InvalidInputError(f"unknown input '{spec}'; use one of {', '.join(INPUT_SPECS)}")
