"""In-context loss gain on repeated random tokens, and the part of it that needs order.

On ``[bos] t_1..t_h t_1..t_h`` (``poslens.data.sequences.repeated_tokens``) the gain is the
mean next-token loss on the first copy minus that on the second ("In-context learning and
induction heads" contrasts late and early tokens; the copy structure makes the contrast
exact). It is not induction alone: a head that only favours tokens already seen in the
context lowers the second copy's loss too (its next token is always one seen before; in
the first copy, never), by up to ln(vocab / h) nats. So each second copy is also scored in
a random order, which such a head predicts as well and an induction circuit does not:
``induction_gain`` = loss on the shuffled second copy minus loss on the exact one.

>>> from poslens.data.sequences import repeated_tokens
>>> w = load_weights("tiny")                                                                 # doctest: +SKIP
>>> g = copy_gain(Runner(w), repeated_tokens(8, 128, w.cfg.d_vocab, bos=0), bos=True)         # doctest: +SKIP
>>> g["gain"], g["induction_gain"]                                                           # doctest: +SKIP
"""

from __future__ import annotations

import torch


def copy_losses(nll: torch.Tensor, bos: bool) -> tuple[float, float]:
    """Mean of ``nll`` (``[seq, P - 1]``, entry j = the loss of predicting token j + 1) over each copy's tokens 2..

    The first copy sits at positions off..off+h-1 and the second at off+h..P-1 (off = 1 after a
    BOS, h = the first copy's length, as in ``repeated_tokens``), so both average over the
    same token positions within their copy.

    >>> copy_losses(torch.arange(8.0)[None], bos=True)    # P = 9: copies at 1..4 and 5..8
    (2.0, 6.0)
    """
    off = 1 if bos else 0
    P = nll.shape[1] + 1
    h = (P - off + 1) // 2
    return float(nll[:, off: off + h - 1].mean()), float(nll[:, off + h: P - 1].mean())


def shuffled_second_copy(tokens: torch.Tensor, bos: bool, seed: int = 0) -> torch.Tensor:
    """``tokens`` with each row's second copy in its own random order (the same tokens, no order to follow)."""
    off = 1 if bos else 0
    P = tokens.shape[1]
    h = (P - off + 1) // 2
    g = torch.Generator().manual_seed(int(seed))
    out = tokens.clone()
    for i in range(len(tokens)):
        out[i, off + h:] = tokens[i, off + h:][torch.randperm(P - off - h, generator=g)]
    return out


@torch.no_grad()
def copy_gain(runner, tokens: torch.Tensor, bos: bool, seed: int = 0, batch_size: int | None = None) -> dict[str, float]:
    """First-copy, second-copy and shuffled-second-copy losses of ``runner``'s model on
    ``tokens`` (repeated random tokens), the gain and its order-dependent part. ``runner`` may
    also be what the analyses take (Weights, a model name or directory)."""
    from .reach import as_runner

    runner, tokens = as_runner(runner, "copy_gain"), torch.atleast_2d(torch.as_tensor(tokens))
    both = torch.cat([tokens, shuffled_second_copy(tokens, bos, seed=seed + 1)])
    kw = {"batch_size": batch_size} if batch_size else {}
    logits = runner.run(both, logits=True, **kw).logits.float()
    nll = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), both[:, 1:].reshape(-1),
                                            reduction="none").view(both.shape[0], -1).double()
    first, second = copy_losses(nll[: len(tokens)], bos)
    _, second_shuffled = copy_losses(nll[len(tokens):], bos)
    return {"first": first, "second": second, "gain": first - second, "second_shuffled": second_shuffled,
            "induction_gain": second_shuffled - second}
