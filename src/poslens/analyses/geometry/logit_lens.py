"""The logit lens and greedy generation ("Dissecting the Frog", part 5).

Every probing point (0 = embeddings, i = output of block i-1) is read as if it were the
last: ``softmax(ln_final(resid) @ W_U + b_U)``. Per point: the entropy (nats) of that
next-token distribution at every position, at the last token and averaged over tokens,
the top-k tokens at the last position, the top-1 token at every position, the KL
divergence from the model's own (last-point) distribution and the rank of the model's
final top-1 token. At the last point the lens *is* the model's output. Greedy generation
records the top-k logits of every step.

The lens needs the unembedding W_U, which GPT-2 ties to the token embedding ``wte`` (an untied
checkpoint stores its own, ``lm_head.weight``); a checkpoint without it cannot run the lens and
says so (MissingTensorError). The slides'
entropies are compared in :mod:`poslens.claims.dissecting_the_frog.geometry`.

>>> from poslens.models import load_weights, open_checkpoint
>>> from poslens.models.tokenizer import Tokenizer
>>> tok = Tokenizer.for_checkpoint(open_checkpoint("tiny"))          # doctest: +SKIP
>>> r = logit_lens(load_weights("tiny"), SLIDE_PROMPT, tok)           # doctest: +SKIP
>>> r.last_entropy[-1], r.top_k[-1][0].token                       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from ...errors import InvalidInputError
from ...models.block import norm
from ...models.runner import Runner
from ...models.tokenizer import as_tokenizer
from ...models.weights import Weights, as_weights
from ...options import resolve
from ...results import ClaimRow, Result
from .options import LensOptions
from .probe import probe_hooks, probe_labels, prompt_ids, prompt_tokenizer, require_forward

# The slides' prompt: the default one.
SLIDE_PROMPT = "Einstein is best known for the theory of"


@dataclass(frozen=True)
class TopToken:
    """One of the top-k next tokens: its id, text, probability and logit."""

    id: int
    token: str
    prob: float
    logit: float


@dataclass(frozen=True)
class GenerationStep:
    chosen: TopToken  # the argmax, appended to the sequence
    top_k: list[TopToken]
    entropy: float  # nats


@dataclass(frozen=True)
class Generation:
    """Greedy decoding: the ``n_new`` tokens appended (``ids``, ``text``) and each step's top-k."""

    n_new: int
    ids: list[int]
    text: str | None
    steps: list[GenerationStep]


@dataclass(frozen=True)
class LensResult(Result):
    """``entropy[point][position]`` (nats), ``last_entropy``/``mean_entropy`` per point,
    ``top_k[point]`` at the last position, ``top1[point][position]``, ``kl_to_final`` and
    ``final_rank`` per point, and ``generation`` (greedy steps with their top-k)."""

    kind = "logit_lens"
    prompt: str = ""
    tokens: list[int] = field(default_factory=list)
    str_tokens: list[str] = field(default_factory=list)
    points: list[str] = field(default_factory=list)
    entropy: list[list[float]] = field(default_factory=list)
    last_entropy: list[float] = field(default_factory=list)
    mean_entropy: list[float] = field(default_factory=list)
    top_k: list[list[TopToken]] = field(default_factory=list)
    top1: list[list[str]] = field(default_factory=list)
    kl_to_final: list[float] = field(default_factory=list)
    final_rank: list[int] = field(default_factory=list)
    generation: Generation | None = None
    checks: list[ClaimRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _entropy(logp: torch.Tensor) -> torch.Tensor:
    return -(logp.exp() * logp).sum(-1)


def lens_needs(cfg) -> str:
    """What the lens needs, for a missing tensor's message: the tie says why a missing token embedding counts."""
    tied = ", tied to the token embedding" if cfg.tied_embeddings else ""
    return f"the logit lens (unembedding W_U{tied}, and every layer)"


def lens_logits(weights: Weights, resid: torch.Tensor) -> torch.Tensor:
    """``ln_final(resid) @ W_U + b_U`` in float32 ([..., d_vocab]): the model's own final norm
    (LayerNorm, RMSNorm, or none for models whose unembedding reads the residual directly).

    >>> lens_logits(w, acts["blocks.3.hook_resid_post"])   # doctest: +SKIP
    """
    cfg = weights.cfg
    why = lens_needs(cfg)
    W_U = weights.get("unembed.W_U", needed_for=why).float()
    b_U = weights.get("unembed.b_U", needed_for=why).float()
    x = resid.float()
    if cfg.final_norm and cfg.normalization != "none":  # the forward block's own norm
        b = weights.get("ln_final.b").float() if cfg.normalization == "LN" else None
        x = norm(cfg, x, weights.get("ln_final.w").float(), b)
    return x @ W_U + b_U


def greedy_generate(runner: Runner, ids: list[int], n_new: int, top_k: int, tokenizer=None) -> Generation:
    """Greedy decoding for ``n_new`` steps; each step keeps the top-k logits (id, token, logit, prob).

    Each step runs only the newest token, on the cached keys and values of those before it.
    """
    tokenizer = as_tokenizer(tokenizer, "greedy_generate", runner.weights)
    n_ctx = runner.cfg.n_ctx
    if len(ids) + n_new > n_ctx:
        raise InvalidInputError(f"the prompt ({len(ids)} tokens) plus {n_new} generated tokens exceeds the model's "
                                f"context n_ctx={n_ctx}; shorten the prompt or generate fewer tokens")
    seq = list(ids)
    steps = []
    cache = runner.prefix(seq, logits=True)
    for i in range(n_new):
        if i:
            cache = runner.prefix(seq[-1:], after=cache, logits=True)
        logits = cache.logits[0].float()
        lp = torch.log_softmax(logits, -1)
        vals, idx = logits.topk(min(top_k, logits.numel()))
        cands = [TopToken(int(i), tokenizer.to_str_tokens([i])[0] if tokenizer else str(int(i)), float(lp[i].exp()),
                          float(v)) for v, i in zip(vals, idx)]
        steps.append(GenerationStep(cands[0], cands, float(_entropy(lp))))
        seq.append(cands[0].id)
    new = seq[len(ids):]
    return Generation(n_new, new, tokenizer.decode(new) if tokenizer else None, steps)


def logit_lens(
    weights: Weights,
    prompt: str | list[int] | None = None,
    tokenizer=None,
    options: LensOptions | None = None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    states: dict[str, torch.Tensor] | None = None,
    **overrides,
) -> LensResult:
    """Each layer's next-token distribution for ``prompt`` (text with ``tokenizer``, or ids).

    ``final_ln=True`` reads every point through ln_final (the slides' "[LN]" lens);
    ``False`` applies W_U to the raw residual stream. ``states`` (probe hook -> [1, N, D])
    skips the forward pass (the report shares it).

    >>> r = logit_lens(load_weights("tiny"), "The lamp was", tok, n_generate=5)   # doctest: +SKIP
    """
    o = resolve(LensOptions, options, overrides, "logit_lens")
    weights = as_weights(weights, "logit_lens")
    cfg = weights.cfg
    require_forward(weights, lens_needs(cfg), unembed=True)
    prompt = SLIDE_PROMPT if prompt is None else prompt
    tokenizer = prompt_tokenizer(weights, prompt, tokenizer, "logit_lens")
    ids = prompt_ids(prompt, tokenizer, o.prepend_bos)
    if len(ids) > cfg.n_ctx:
        raise InvalidInputError(f"the prompt has {len(ids)} tokens, longer than the model's context n_ctx={cfg.n_ctx}; "
                                "shorten it")
    if o.top_k > cfg.d_vocab:
        raise InvalidInputError(f"top_k={o.top_k} is more tokens than {weights.label}'s vocabulary of {cfg.d_vocab}; "
                                f"give at most {cfg.d_vocab}")
    runner = Runner(weights, device, dtype)
    # Raw residuals at every point; ln_final is applied by the lens itself.
    hooks = probe_hooks(cfg.n_layers, final_ln=False)
    acts = states if states is not None else runner.run(torch.tensor([ids]), hooks=hooks)
    points = [p.replace(" +ln_f", "") for p in probe_labels(cfg.n_layers, final_ln=False)]
    dec = (lambda i: tokenizer.to_str_tokens([i])[0]) if tokenizer else (lambda i: str(int(i)))

    final_lp = None
    per_point: list[dict[str, Any]] = []
    for h in reversed(hooks):  # the last point first: KL and ranks refer to it
        resid = acts[h][0]
        logits = lens_logits(weights, resid) if o.final_ln else resid.float() @ weights.get("unembed.W_U").float()
        lp = torch.log_softmax(logits, -1)  # [N, V]
        ent = _entropy(lp)
        if final_lp is None:
            final_lp = lp
        kl = (final_lp.exp() * (final_lp - lp)).sum(-1)
        target = int(final_lp[-1].argmax())
        rank = int((logits[-1] > logits[-1, target]).sum())
        vals, idx = lp[-1].topk(min(o.top_k, lp.shape[-1]))
        per_point.append({
            "entropy": ent.tolist(),
            "top_k": [TopToken(int(i), dec(i), float(v.exp()), float(logits[-1, i])) for v, i in zip(vals, idx)],
            "top1": [dec(i) for i in lp.argmax(-1).tolist()],
            "kl_to_final": float(kl.mean()), "final_rank": rank,
        })
    per_point.reverse()
    cols = {k: [p[k] for p in per_point] for k in per_point[0]}  # LensResult's per-point lists
    gen = greedy_generate(runner, ids, o.n_generate, o.top_k, tokenizer) if o.n_generate else None
    options = {**asdict(o), "entropy": "nats", "kl": "KL(final || point), mean over positions",
               "final_rank": "rank at point of the model's own top-1 next token, last position (0 = top)"}
    return LensResult(
        model=weights.label, processing=weights.processing, options=options,
        prompt=prompt if isinstance(prompt, str) else (tokenizer.decode(ids) if tokenizer else ""),
        tokens=ids, str_tokens=[dec(i) for i in ids], points=points, **cols,
        last_entropy=[e[-1] for e in cols["entropy"]], mean_entropy=[float(np.mean(e)) for e in cols["entropy"]],
        generation=gen,
    )


def summarize(result: LensResult) -> list[str]:
    lines = [f"prompt: {result.prompt!r} ({len(result.tokens)} tokens)"]
    for p, le, me, tk, kl in zip(result.points, result.last_entropy, result.mean_entropy, result.top_k,
                                 result.kl_to_final):
        top = ", ".join(f"{t.token!r} {t.prob:.3f}" for t in tk[:3])
        lines.append(f"{p}: last-token entropy {le:.4f}, mean {me:.4f} nats, KL to output {kl:.3f}; top: {top}")
    if result.generation:
        lines.append(f"greedy continuation: {result.generation.text!r}")
    for c in result.checks:
        lines.append(f"{c.what}: published {c.published}, ours {c.ours:.4f} "
                     f"({'reproduced' if c.reproduced else 'NOT reproduced'})")
    lines += result.notes
    return lines
