"""Does the model use W_pos's helix? Project out its top principal subspace at the embedding and see.

The helix seed (001) shows that the top 3 principal components of ``W_pos`` carry most of
its variance. The causal question: remove that subspace from the positional
embedding (``hook_pos_embed``) and measure what breaks, the next-token loss and each
head's attention to the previous token, against two random controls:

* ``random``: uniformly random subspaces of the same dimension, projected out the same way
  (they remove only a small share of W_pos's variance);
* ``matched``: the same random subspaces, but the removal scaled (``gain``) so that the
  perturbation has the same total variance over positions as the helix removal, i.e. a
  change of the same size in a direction that is not the helix.

Every variant runs in one batched pass. Without the token embedding or the MLPs (the
partial GPT-2 checkpoint) the loss cannot be computed: the input is then the positional
embedding alone (token embedding zero) and only layer 0's attention is measured.

>>> r = helix_ablation(load_weights("tiny"), n_seq=8, n_random=5)          # doctest: +SKIP
>>> r.loss.helix.effect, r.loss.matched.helix_z                      # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import InvalidInputError
from ...models.runner import Runner
from ...models.weights import Weights, as_weights
from ...options import resolve
from ...results import Result
from ..reach import runner_for
from .baselines import Spread, against, compare, random_subspace, spread
from .intervention import InterventionRecord, ablate_direction, orthonormal_basis
from .metrics import next_token_loss, previous_token_attention
from .options import HelixAblationOptions
from .run import measure_variants

MAX_PATTERN_ELEMENTS = 6e7  # rows x heads x P^2 per chunk when patterns are read
MAX_LOGIT_ELEMENTS = 1e8  # rows x P x vocab per chunk for the loss: 54 x 128 x 50,257 at once was slower, and 1.4 GB


@dataclass(frozen=True)
class HelixEffect:
    effect: float  # ablated - clean with the helix subspace removed


@dataclass(frozen=True)
class Control:
    """A control's draws (random or variance-matched subspaces) and the helix effect against them."""

    effect: float  # the control's mean effect (ablated - clean)
    baseline: Spread
    helix_z: float  # (helix effect - control mean) / control std
    helix_ratio: float  # helix effect / |control mean|
    share_as_large: float  # share of control draws at least as large as the helix effect


@dataclass(frozen=True)
class HelixVsControls:
    helix: HelixEffect
    random: Control
    matched: Control


@dataclass(frozen=True)
class HeadChange:
    """One head's previous-token attention: clean, and its change under each ablation."""

    clean: float
    helix: float
    random: Spread
    matched: Spread


@dataclass(frozen=True)
class VarianceShare:
    """Shares of the (centred) variance of W_pos over the positions run that each ablation removes;
    ``helix_pca`` is the PCA's own share over the positions it was fitted on."""

    helix_pca: float
    removed_helix: float
    removed_random: Spread


@dataclass(frozen=True)
class InputInfo:
    """What the variants ran on: ``kind`` in words, its sequences and their length, and whether a BOS leads."""

    kind: str
    n_seq: int
    seq_len: int
    bos: bool | None = None  # None for positional inputs (no tokens)


@dataclass(frozen=True)
class HelixInterventions:
    """The helix subspace ablation and its controls: random subspaces and variance-matched ones."""

    helix: InterventionRecord
    random: list[InterventionRecord]
    matched: list[InterventionRecord]


@dataclass(frozen=True)
class HelixAblationResult(Result):
    """Loss and previous-token attention with W_pos's top-k subspace removed, against random subspaces.

    ``loss`` and ``prev_attention`` (:class:`HelixVsControls`; ``loss`` is None without token
    inputs): the helix effect (ablated - clean) and, for the ``random`` and ``matched``
    controls, their mean effect, draws and the z-score of the helix effect against them.
    """

    kind = "causal_helix"
    k: int = 3
    variance_share: VarianceShare | None = None
    input: InputInfo | None = None
    clean_loss: float | None = None
    loss: HelixVsControls | None = None
    prev_heads: list[str] = field(default_factory=list)
    clean_prev: dict[str, float] = field(default_factory=dict)
    prev_attention: HelixVsControls | None = None
    per_head: dict[str, HeadChange] = field(default_factory=dict)
    gains: list[float] = field(default_factory=list)
    interventions: HelixInterventions | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def _can_run_tokens(w: Weights) -> str | None:
    cfg = w.cfg
    # post-LayerNorm OPT (350m) has no final norm: its absence is the design, not a gap
    need = ["embed.W_E", "unembed.W_U"] + (["ln_final.w"] if cfg.final_norm else [])
    for l in range(cfg.n_layers):
        need += [f"blocks.{l}.mlp.W_in", f"blocks.{l}.mlp.W_out", f"blocks.{l}.attn.W_Q"]
    missing = [n for n in need if not w.has(n)]
    return None if not missing else ", ".join(sorted({w.stored_name(n) or n for n in missing})[:3])


def helix_ablation(
    weights: Weights,
    options: HelixAblationOptions | None = None,
    *,
    text: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    tokenizer=None,
    runner: Runner | None = None,
    **overrides,
) -> HelixAblationResult:
    """Remove W_pos's top-``k`` principal subspace at ``hook_pos_embed``; loss and previous-token attention.

    ``options`` (:class:`~poslens.analyses.causal.options.HelixAblationOptions`; keywords
    replace its fields). PCA (:func:`poslens.analyses.helix.pca`) runs on positions ``1..n_ctx-1`` (``skip_first``,
    as the helix post) after centring (``center``). ``kind``: ``zero`` projects the subspace out,
    ``mean`` replaces the coordinates in it by their mean over positions. Text: windows of
    ``corpus`` (else ``text``, else the built-in sample passage). Heads whose clean
    previous-token attention is at least ``prev_threshold`` (else the top 3) are the
    previous-token heads the summary follows. ``runner`` reuses an existing runner of ``weights``.
    """
    from ...data.sequences import SAMPLE_TEXT, corpus_sequences, text_windows
    from ...models.tokenizer import Tokenizer, as_tokenizer
    from ..helix import pca

    o = resolve(HelixAblationOptions, options, overrides, "helix_ablation")
    weights = as_weights(weights, "helix_ablation")
    tokenizer = as_tokenizer(tokenizer, "helix_ablation", weights)
    k, skip_first, center, kind, corpus, n_seq = o.k, o.skip_first, o.center, o.kind, o.corpus, o.n_seq
    seq_len, n_random, prev_threshold, positional_only = o.seq_len, o.n_random, o.prev_threshold, o.positional_only
    prepend_bos, seed, batch_size = o.prepend_bos, o.seed, o.batch_size
    t0 = time.perf_counter()
    cfg = weights.cfg
    if not 1 <= k < cfg.d_model:
        raise InvalidInputError(f"k must be between 1 and d_model - 1 = {cfg.d_model - 1}; got {k}")
    W = weights.get("pos_embed.W_pos", needed_for="the helix ablation").double()
    lo = 1 if skip_first else 0
    fit = pca(W[lo:].numpy(), n_components=k, center=center)
    U = torch.from_numpy(fit.components)  # [k, d]
    notes: list[str] = []
    missing = _can_run_tokens(weights)
    if positional_only is None:
        positional_only = missing is not None
    if positional_only and missing:
        notes.append(f"{weights.label} lacks {missing}: the input is W_pos alone (token embedding zero) and only "
                     "layer 0's attention is measured; no loss")
    runner = runner_for(weights, runner, "helix_ablation", device, dtype)
    P = min(seq_len, cfg.n_ctx)
    if positional_only:
        kw = {"embed": torch.zeros(1, P, cfg.d_model)}
        layers = [0]
        input_info = InputInfo("positional embedding alone (token embedding zero)", 1, P)
        tokens = None
    else:
        if tokenizer is None:
            tokenizer = Tokenizer.for_checkpoint(weights.source)
        bos = tokenizer.bos_token_id if prepend_bos else None
        if corpus is not None:
            tokens = corpus_sequences(corpus, tokenizer, P, n_seq, seed=seed, prepend_bos=bos is not None)
            src = f"{len(tokens)} windows of {corpus}"
        else:
            tokens = text_windows(text or SAMPLE_TEXT, tokenizer, P, n_seq, bos)
            src = f"{len(tokens)} consecutive windows of {'the given text' if text else 'the built-in sample passage'}"
            if len(tokens) < n_seq:
                notes.append(f"{'the given text' if text else 'the built-in sample passage'} holds {len(tokens)} "
                             f"windows of {P} tokens, not the {n_seq} asked for; give a corpus for more")
        kw = {"tokens": tokens}
        layers = list(range(cfg.n_layers))
        input_info = InputInfo(src, int(tokens.shape[0]), int(tokens.shape[1]), bos is not None)
    # The variants: clean, helix, n random, n variance-matched random.
    Wrun = W[:P]
    mean_over = "all"
    helix_iv = ablate_direction("hook_pos_embed", U, kind, mean_over=mean_over, label=f"W_pos top-{k} PCA subspace",
                                source=f"poslens.analyses.helix.pca of W_pos[{lo}:] ({'centred' if center else 'uncentred'})")
    e_helix = _removed_energy(Wrun, U, kind)
    rand, matched, gains, removed = [], [], [], []
    for i in range(n_random):
        R = random_subspace(cfg.d_model, k, seed=seed * 7919 + i)
        src_r = f"uniform random {k}-d subspace (QR of a Gaussian), seed {seed * 7919 + i}"
        rand.append(ablate_direction("hook_pos_embed", R, kind, mean_over=mean_over, label=f"random {k}-d subspace #{i}",
                                     source=src_r))
        removed.append(_removed_energy(Wrun, R, kind))
        gains.append(math.sqrt(e_helix / max(removed[-1], 1e-30)))
        matched.append(ablate_direction("hook_pos_embed", R, kind, mean_over=mean_over, gain=gains[-1],
                                        label=f"variance-matched random {k}-d subspace #{i}", source=src_r))
    variants = [[], [helix_iv], *[[r] for r in rand], *[[m] for m in matched]]
    metrics = [previous_token_attention(l, cfg.n_heads, min_query=1) for l in layers]
    if tokens is not None:
        metrics.append(next_token_loss(tokens, skip_first=0))
    bs = batch_size or max(1, int(min(MAX_PATTERN_ELEMENTS // (cfg.n_heads * P * P),
                                      MAX_LOGIT_ELEMENTS // (P * cfg.d_vocab) if tokens is not None else math.inf)))
    vals = measure_variants(runner, kw, variants, metrics, batch_size=bs)
    nv = 1 + 1 + n_random
    idx = {"helix": [1], "random": list(range(2, nv)), "matched": list(range(nv, nv + n_random))}

    # Previous-token attention: every head, then the previous-token heads together.
    prev = np.concatenate([np.nanmean(vals[m.name], 1) for m in metrics if m.name.startswith("prev")], 1)  # [V, L*H]
    names = [f"{l}.{h}" for l in layers for h in range(cfg.n_heads)]
    clean_prev = dict(zip(names, prev[0].tolist()))
    chosen = [n for n in names if clean_prev[n] >= prev_threshold] or sorted(names, key=lambda n: -clean_prev[n])[:3]
    sel = [names.index(n) for n in chosen]
    d_prev = prev[:, sel].mean(1) - prev[0, sel].mean()
    prev_eff = _variant_effects(d_prev, idx)
    per_head = {}
    for j, n in enumerate(names):
        d = prev[:, j] - prev[0, j]
        per_head[n] = HeadChange(clean=float(prev[0, j]), helix=float(d[1]), random=spread(d[idx["random"]]),
                                 matched=spread(d[idx["matched"]]))
    loss_eff, clean_loss = None, None
    if tokens is not None:
        lv = np.nanmean(vals["loss"], 1)
        clean_loss = float(lv[0])
        loss_eff = _variant_effects(lv - lv[0], idx)
    total = float(((Wrun - Wrun.mean(0)) ** 2).sum())
    share = VarianceShare(
        helix_pca=float(fit.cumulative[-1]), removed_helix=e_helix / total if total else float("nan"),
        removed_random=spread([e / total for e in removed]))
    opts = dict(k=k, skip_first=skip_first, center=center, kind=kind, corpus=str(corpus) if corpus else None,
                text="given" if text else None, n_seq=n_seq, seq_len=P, n_random=n_random, prev_threshold=prev_threshold,
                positional_only=positional_only, prepend_bos=prepend_bos, seed=seed, dtype=dtype, hook="hook_pos_embed",
                mean_over=mean_over)
    return HelixAblationResult(
        model=weights.label, processing=tuple(weights.processing), options=opts, k=k, variance_share=share,
        input=input_info, clean_loss=clean_loss, loss=loss_eff, prev_heads=chosen,
        clean_prev={n: clean_prev[n] for n in chosen}, prev_attention=prev_eff, per_head=per_head, gains=gains,
        interventions=HelixInterventions(helix=helix_iv.describe(), random=[r.describe(full=False) for r in rand],
                                         matched=[m.describe(full=False) for m in matched]),
        seconds=round(time.perf_counter() - t0, 3), notes=notes,
    )


def _removed_energy(W: torch.Tensor, basis, kind: str) -> float:
    """Total squared change of W_pos's rows under the ablation (gain 1)."""
    X = W.double()
    if kind == "mean":
        X = X - X.mean(0)
    return float(((X @ orthonormal_basis(basis).T) ** 2).sum())


def _variant_effects(delta: np.ndarray, idx: dict[str, list[int]]) -> HelixVsControls:
    """The helix effect against the random and the variance-matched controls."""
    h = float(delta[idx["helix"][0]])

    def control(name: str) -> Control:
        c = compare(h, delta[idx[name]])
        return Control(effect=c.baseline.mean, baseline=c.baseline, helix_z=c.z, helix_ratio=c.ratio,
                       share_as_large=c.share_as_large)

    return HelixVsControls(helix=HelixEffect(h), random=control("random"), matched=control("matched"))


def summarize(r: HelixAblationResult) -> list[str]:
    lines = [f"W_pos top-{r.k} PCA subspace ({r.variance_share.helix_pca:.0%} of W_pos variance) "
             f"{'projected out' if r.options.get('kind') == 'zero' else 'mean-ablated'} at hook_pos_embed; input: "
             f"{r.input.kind if r.input else 'none'}"]
    if r.loss:
        L = r.loss
        lines.append(f"loss {r.clean_loss:.3f}, change: helix {L.helix.effect:+.3f}; "
                     f"{against(L.random.baseline, L.random.helix_z, f'random {r.k}-d')}; "
                     f"{against(L.matched.baseline, L.matched.helix_z, 'variance-matched')}")
    if r.prev_attention:
        P = r.prev_attention
        on = r.input.kind if r.input else "this section's input"
        lines.append(f"previous-token attention on {on}, mean over heads {', '.join(r.prev_heads)} (clean "
                     f"{np.mean(list(r.clean_prev.values())):.3f}; not the model profile's previous-token score, "
                     f"which is per head on repeated random tokens), change: helix {P.helix.effect:+.3f}; "
                     f"{against(P.random.baseline, P.random.helix_z, 'random')}; "
                     f"{against(P.matched.baseline, P.matched.helix_z, 'variance-matched')}")
    return lines + list(r.notes)
