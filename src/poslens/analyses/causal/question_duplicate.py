"""Do the duplicate-token heads drive the duplicate-token neurons? Ablate them and watch the neurons.

The duplicate-token post reads the circuit off the weights: duplicate-token heads of layer 0 carry the
positions of earlier copies of the current token into layer 0's MLP, where neurons such
as GPT-2's 1168 respond to repeated tokens. The causal test: mean-ablate the
duplicate-token heads, and separately the other heads of the layer, and measure how each
selected neuron's activation on repeated tokens and on non-repeated tokens changes.

Data, so that only "repeated or not" differs: ``n_seq`` sequences of random tokens whose
second half repeats the first (every second-half token has one copy half a sequence
back), and ``n_seq`` sequences of distinct random tokens; both are measured only at the
second-half positions. The mean used for mean ablation is each head's output per position
over a separate set of distinct-token sequences (``reference="distinct"``): what the head
writes at that position when there is no copy to find (the seed's "mean ablation which
preserves the position").

Heads come from :func:`poslens.analyses.heads.duplicate_heads`. Neurons: named
ones, or ``select="pvo"`` (the duplicate-neuron analysis's heuristic,
:func:`poslens.analyses.neurons.pvo_matrix`: largest norm of the strongest
duplicate head's positional contribution to the MLP), or ``select="activation"`` (largest
difference between repeated and non-repeated tokens, measured on a separate set of
sequences). Baselines: the same ablation on random head sets of the same size, and the
duplicate-head ablation read on random neuron sets of the same size.

>>> r = duplicate_neuron_ablation(load_weights("tiny"), n_seq=16)          # doctest: +SKIP
>>> r.effects["duplicate"]["gap"].effect, r.effects["duplicate"]["gap"].vs_random_heads.z  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import InvalidInputError, NotApplicableError
from ...models import processing as proc
from ...models.runner import Runner
from ...models.weights import Weights, as_weights, require
from ...options import resolve
from ...results import ClaimRow, Result
from ..neurons.premise import not_applicable_reason, zero_mlp_reason
from ..reach import runner_for
from .baselines import Comparison, against, compare, head_pool, random_head_sets, random_neurons
from .inputs import distinct_tokens
from .intervention import InterventionRecord, ablate_head
from .metrics import masked_neuron_means
from .options import DupNeuronAblationOptions
from .run import measure_variants


@dataclass(frozen=True)
class HeadsEffect:
    """One quantity's change (mean over the selected neurons) when a head group is ablated."""

    effect: float  # ablated - clean
    clean: float
    relative: float  # effect over the clean mean |gap|
    vs_random_heads: Comparison  # the same ablation on random head sets of the group's size
    vs_random_neurons: Comparison  # this ablation read on random neuron sets of the selection's size


@dataclass(frozen=True)
class CleanGap:
    """The selected neurons' clean means: activation on repeated and non-repeated tokens, the signed
    gap and its size (each neuron's |gap|)."""

    repeated: float
    non_repeated: float
    gap_size: float
    gap: float


@dataclass(frozen=True)
class NeuronGap:
    """One selected neuron: its clean mean activation on repeated and non-repeated tokens, the gap,
    and the gap's change with each head group ablated (None where the layer has no other heads)."""

    repeated: float
    non_repeated: float
    gap: float
    duplicate_gap_change: float
    others_gap_change: float | None = None


@dataclass(frozen=True)
class DupAblationData:
    """The inputs: repeated-token and distinct-token sequences, their length, the first position
    measured, whether a BOS leads them, and how many positions held a repeated / non-repeated token."""

    repeated_sequences: int
    distinct_sequences: int
    seq_len: int
    measured_from: int
    bos: bool
    n_repeated_positions: int
    n_non_repeated_positions: int


@dataclass(frozen=True)
class DupInterventions:
    """The two head ablations (the duplicate-token heads, the layer's other heads) and the random draws
    they are compared with, and the reference the mean ablation took its means from."""

    duplicate: InterventionRecord
    others: InterventionRecord | None
    random_heads_duplicate: list[list[int]]
    random_heads_others: list[list[int]]
    random_neurons: list[list[int]]
    reference: str


@dataclass(frozen=True)
class DupNeuronAblationResult(Result):
    """Selected neurons' activation on repeated vs non-repeated tokens, clean and with heads ablated.

    ``neurons[n]``: clean ``repeated``, ``non_repeated``, ``gap`` (repeated - non-repeated,
    signed) and per ablation its change. ``effects[ablation][quantity]`` (ablation
    ``duplicate`` or ``others``; each the mean over the selected neurons): ``gap`` is the
    size of each neuron's gap (its gap times the sign of its clean gap, so the clean value
    is the mean |gap| and a negative effect means the gaps shrink), ``repeated`` and
    ``non_repeated`` the plain activations; each a :class:`HeadsEffect`.
    """

    kind = "causal_dup_neurons"
    layer: int = 0
    neuron_layer: int = 0
    duplicate_heads: list[str] = field(default_factory=list)
    other_heads: list[str] = field(default_factory=list)
    head_scores: dict[str, float] = field(default_factory=dict)
    selected: list[int] = field(default_factory=list)
    selection: str = ""
    clean: CleanGap | None = None
    random_neuron_clean_gap: Comparison | None = None
    neurons: dict[str, NeuronGap] = field(default_factory=dict)  # neuron index -> its gap
    effects: dict[str, dict[str, HeadsEffect]] = field(default_factory=dict)
    interventions: DupInterventions | None = None
    data: DupAblationData | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    checks: list[ClaimRow] = field(default_factory=list)


def _data(n_seq: int, P: int, vocab: int, seed: int, bos: int | None):
    """Repeated + distinct sequences and their [batch, pos, 2] masks (repeated, non-repeated) on the second half."""
    from ...data.sequences import repeated_tokens
    from ..heads import duplicate_mask

    rep = repeated_tokens(n_seq, P, vocab, seed=seed, bos=bos)  # BOS leads, and is drawn nowhere else
    dis = distinct_tokens(n_seq, P, vocab, seed=seed + 1, bos=bos)
    tokens = torch.cat([rep, dis])
    has = duplicate_mask(tokens, () if bos is None else (bos,)).any(-1)  # [B, P]
    first = int(has[0].nonzero()[0]) if has[0].any() else P
    late = torch.arange(P)[None, :] >= first
    masks = torch.stack([has & late, ~has & late], -1)
    return tokens, masks, first


def _select_pvo(weights: Weights, layer: int, head: int, n: int) -> tuple[list[int], str]:
    from ..neurons import first_layers, pvo_matrix

    w = proc.center_writing_weights(proc.fold_layer_norm(first_layers(weights, layer + 1)))
    norms = pvo_matrix(w, layer, head).norm(dim=0)
    top = torch.argsort(norms, descending=True)[:n].tolist()
    return [int(i) for i in top], (f"top {n} neurons of layer {layer} by |PVO| of head {layer}.{head} "
                                   f"(poslens.analyses.neurons.pvo_matrix, folded LayerNorm, centred writers; "
                                   f"norms {norms[top[0]]:.3g}..{norms[top[-1]]:.3g})")


def _select_activation(runner: Runner, layer: int, n: int, n_seq: int, P: int, vocab: int, seed: int, bos) -> tuple[list[int], str]:
    tokens, masks, _ = _data(n_seq, P, vocab, seed + 1000, bos)
    m = masked_neuron_means(layer, range(runner.cfg.d_mlp), masks, ("repeated", "non_repeated"))
    v = np.nanmean(measure_variants(runner, tokens, [[]], [m])[m.name][0], 0)  # [d_mlp, 2]
    diff = v[:, 0] - v[:, 1]
    top = np.argsort(-np.abs(diff))[:n]
    return [int(i) for i in top], (f"top {n} neurons of layer {layer} by |mean activation on repeated - non-repeated "
                                   f"tokens| on a separate selection set ({n_seq} + {n_seq} sequences, seed {seed + 1000}; "
                                   f"differences {diff[top[0]]:+.3g}..{diff[top[-1]]:+.3g})")


def duplicate_neuron_ablation(
    weights: Weights,
    options: DupNeuronAblationOptions | None = None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    tokenizer=None,
    runner: Runner | None = None,
    **overrides,
) -> DupNeuronAblationResult:
    """Ablate layer ``layer``'s duplicate-token heads (and separately its other heads); watch the MLP neurons.

    ``options`` (:class:`~poslens.analyses.causal.options.DupNeuronAblationOptions`; keywords
    replace its fields). ``heads``: the duplicate heads (default: those scoring >= ``threshold`` in
    :func:`~poslens.analyses.heads.duplicate_heads`, else the best one).
    ``kind``: zero, mean or resample ablation of each head's ``hook_z``; ``reference``:
    ``distinct`` (a separate set of distinct-token sequences) or ``input``. ``runner``
    reuses an existing runner of ``weights``.
    """
    from ...models.tokenizer import Tokenizer, as_tokenizer
    from ..heads import duplicate_heads

    t0 = time.perf_counter()
    o = resolve(DupNeuronAblationOptions, options, overrides, "duplicate_neuron_ablation")
    weights = as_weights(weights, "duplicate_neuron_ablation")
    tokenizer = as_tokenizer(tokenizer, "duplicate_neuron_ablation", weights)
    layer, heads, threshold, neurons, select, n_neurons = o.layer, o.heads, o.threshold, o.neurons, o.select, o.n_neurons
    kind, reference, n_seq, seq_len, n_random = o.kind, o.reference, o.n_seq, o.seq_len, o.n_random
    prepend_bos, seed, batch_size = o.prepend_bos, o.seed, o.batch_size
    cfg = weights.cfg
    if not 0 <= layer < cfg.n_layers:
        raise InvalidInputError(f"layer {layer} does not exist: {weights.label} has layers 0..{cfg.n_layers - 1}")
    if cfg.positional != "learned":  # the question is about W_pos's signal, however the neurons are chosen
        raise NotApplicableError(f"the duplicate-neuron ablation does not apply: it asks how neurons read the positional "
                                 f"signal (W_pos) that duplicate heads move, and {weights.label} has {cfg.positional} "
                                 "positions, with no W_pos table")
    require(weights, ["embed.W_E", "pos_embed.W_pos"] + [f"blocks.{l}.mlp.W_in" for l in range(layer + 1)],
            f"token inputs through layer {layer}'s MLP (the duplicate-neuron ablation)")
    if why := zero_mlp_reason(weights, layer):  # else every neuron reads 0 and each ratio is nan
        raise NotApplicableError(f"the duplicate-neuron ablation does not apply: {why}")
    # PVO reads LayerNorm-folded weights; a post-LayerNorm model's cannot be folded, so its
    # ranking would be of the raw matrices. Activations (or named neurons) need no premise.
    if neurons is None and select == "pvo" and (why := not_applicable_reason(cfg, weights.label)):
        raise NotApplicableError(f"the duplicate-neuron ablation's choice of neurons by PVO does not apply: {why}; "
                                 "choose them by activation (select='activation', --select activation) or name "
                                 "them (--neurons)")
    if neurons is not None and (bad := [n for n in neurons if not 0 <= int(n) < cfg.d_mlp]):
        raise InvalidInputError(f"neuron {bad[0]} does not exist: layer {layer}'s MLP has neurons 0..{cfg.d_mlp - 1}")
    if heads is not None and (bad := [h for h in heads if not 0 <= int(h) < cfg.n_heads]):
        raise InvalidInputError(f"head {layer}.{bad[0]} does not exist: layer {layer} has heads 0..{cfg.n_heads - 1}")
    P = min(seq_len, cfg.n_ctx)
    notes: list[str] = []
    if P > cfg.d_vocab:  # distinct-token sequences need a new token at every position
        notes.append(f"sequences shortened from {P} to {cfg.d_vocab} tokens: distinct-token sequences cannot be longer "
                     "than the vocabulary")
        P = cfg.d_vocab
    if tokenizer is None and prepend_bos:
        tokenizer = Tokenizer.for_checkpoint(weights.source)
    bos = tokenizer.bos_token_id if (prepend_bos and tokenizer is not None) else None
    runner = runner_for(weights, runner, "duplicate_neuron_ablation", device, dtype)

    # 1. The duplicate-token heads.
    dh = duplicate_heads(weights, layers=[layer], n_seq=min(n_seq, 16), seq_len=P, seed=seed, threshold=threshold,
                         positional=False, prepend_bos=prepend_bos, device=device, dtype=dtype, tokenizer=tokenizer,
                         runner=runner)
    scores = {k: v.score_repeated for k, v in dh.heads.items()}
    if heads is None:
        dup = [int(k.split(".")[1]) for k in dh.duplicate_heads]
        if not dup:
            dup = [int(dh.ranking[0].split(".")[1])]
            notes.append(f"no head of layer {layer} scored >= {threshold}; took the best, {dh.ranking[0]} "
                         f"({scores[dh.ranking[0]]:.3f})")
    else:
        dup = sorted({int(h) for h in heads})
    others = [h for h in range(cfg.n_heads) if h not in dup]
    best = max(dup, key=lambda h: scores[f"{layer}.{h}"])

    # 2. The neurons.
    if neurons is not None:
        selected, selection = [int(n) for n in neurons], "given"
    elif select == "pvo":
        selected, selection = _select_pvo(weights, layer, best, n_neurons)
    else:
        selected, selection = _select_activation(runner, layer, n_neurons, n_seq, P, cfg.d_vocab, seed, bos)
    rsets = random_neurons(cfg.d_mlp, len(selected), exclude=selected, n_draws=n_random, seed=seed + 17)
    extra = sorted({n for s in rsets for n in s})
    read = selected + extra
    col = {n: i for i, n in enumerate(read)}

    # 3. Data, reference and variants.
    tokens, masks, first = _data(n_seq, P, cfg.d_vocab, seed + 2, bos)
    refs = {}
    ref_name = "input"
    if kind != "zero" and reference == "distinct":
        refs["distinct"] = distinct_tokens(n_seq, P, cfg.d_vocab, seed + 3, bos=bos)
        ref_name = "distinct"

    def abl(hs, label):
        return ablate_head(layer, hs, kind, reference=ref_name, seed=seed, label=label)

    iv_dup = abl(dup, f"{kind}-ablate duplicate heads {', '.join(f'{layer}.{h}' for h in dup)}")
    iv_oth = abl(others, f"{kind}-ablate other heads of layer {layer}") if others else None
    rh_dup = random_head_sets(cfg.n_heads, len(dup), exclude=dup, n_draws=n_random, seed=seed + 5)
    rh_oth = random_head_sets(cfg.n_heads, len(others), exclude=(), n_draws=n_random, seed=seed + 6) if others else []
    if set(head_pool(cfg.n_heads, len(dup), dup)) & set(dup):
        notes.append(f"too few non-duplicate heads for a disjoint random baseline of {len(dup)} heads; draws may "
                     "include duplicate heads")
    for what, sets in (("duplicate", rh_dup), ("other", rh_oth if others else [None, None])):
        if len(sets) < 2:
            notes.append(f"layer {layer} allows only {len(sets)} distinct random head set(s) of the {what} heads' size; "
                         "that baseline has no spread (z is infinite or undefined)")
    variants = [[], [iv_dup]] + ([[iv_oth]] if iv_oth else [])
    variants += [[abl(s, f"random heads {s}")] for s in rh_dup + rh_oth]
    metric = masked_neuron_means(layer, read, masks, ("repeated", "non_repeated"))
    vals = measure_variants(runner, tokens, variants, [metric], references=refs, batch_size=batch_size)
    vals = np.nanmean(vals[metric.name], 1)  # [V, n_read, 2]
    rep, non = vals[..., 0], vals[..., 1]
    gap = rep - non
    # Neurons' gaps have either sign; aligning each with its clean sign makes "gap" the size of the
    # difference (|gap| when clean) and a negative change mean "the difference shrinks".
    size = gap * np.sign(gap[0])
    q = {"gap": size, "repeated": rep, "non_repeated": non}
    sel_cols = [col[n] for n in selected]
    r0 = 3 if iv_oth else 2  # the variant index of the first random-heads draw
    groups = {"duplicate": (1, list(range(r0, r0 + len(rh_dup))))}
    if iv_oth:
        groups["others"] = (2, list(range(r0 + len(rh_dup), r0 + len(rh_dup) + len(rh_oth))))
    clean_gap_sel = float(size[0, sel_cols].mean())
    effects: dict[str, dict[str, HeadsEffect]] = {}
    for gname, (vi, rnd) in groups.items():
        effects[gname] = {}
        for qname, arr in q.items():
            d = arr - arr[0]
            e = float(d[vi, sel_cols].mean())
            heads_draws = [float(d[r, sel_cols].mean()) for r in rnd]
            neuron_draws = [float(d[vi, [col[n] for n in s]].mean()) for s in rsets]
            effects[gname][qname] = HeadsEffect(
                effect=e, clean=float(arr[0, sel_cols].mean()),
                relative=e / abs(clean_gap_sel) if clean_gap_sel else float("nan"),
                vs_random_heads=compare(e, heads_draws), vs_random_neurons=compare(e, neuron_draws))
    per_neuron = {}
    for n in selected:
        c = col[n]
        per_neuron[str(n)] = NeuronGap(repeated=float(rep[0, c]), non_repeated=float(non[0, c]), gap=float(gap[0, c]),
                                       **{f"{g}_gap_change": float(gap[vi, c] - gap[0, c]) for g, (vi, _) in groups.items()})
    rand_gap = [float(size[0, [col[n] for n in s]].mean()) for s in rsets]
    opts = {**dataclasses.asdict(o), "heads": None if heads is None else list(dup), "seq_len": P, "dtype": dtype,
            "hook": f"blocks.{layer}.attn.hook_z", "mean_over": "sequences (per position)"}
    return DupNeuronAblationResult(
        model=weights.label, processing=tuple(weights.processing), options=opts, layer=layer, neuron_layer=layer,
        duplicate_heads=[f"{layer}.{h}" for h in dup], other_heads=[f"{layer}.{h}" for h in others],
        head_scores=scores, selected=selected, selection=selection,
        clean=CleanGap(repeated=float(rep[0, sel_cols].mean()), non_repeated=float(non[0, sel_cols].mean()),
                       gap_size=clean_gap_sel, gap=float(gap[0, sel_cols].mean())),
        random_neuron_clean_gap=compare(clean_gap_sel, rand_gap), neurons=per_neuron, effects=effects,
        interventions=DupInterventions(
            duplicate=iv_dup.describe(), others=iv_oth.describe() if iv_oth else None,
            random_heads_duplicate=[list(x) for x in rh_dup], random_heads_others=[list(x) for x in rh_oth],
            random_neurons=[list(x) for x in rsets],
            reference=("a separate set of distinct-token sequences (no token repeats), "
                       f"{n_seq} x {P}, seed {seed + 3}") if ref_name == "distinct" else "the input"),
        data=DupAblationData(repeated_sequences=n_seq, distinct_sequences=n_seq, seq_len=P, measured_from=first,
                             bos=bos is not None, n_repeated_positions=int(masks[..., 0].sum()),
                             n_non_repeated_positions=int(masks[..., 1].sum())),
        seconds=round(time.perf_counter() - t0, 3), notes=notes + list(dh.notes),
    )


def summarize(r: DupNeuronAblationResult) -> list[str]:
    lines = [f"layer {r.layer}: duplicate-token heads {', '.join(r.duplicate_heads)} (scores "
             + ", ".join(f"{r.head_scores[h]:.2f}" for h in r.duplicate_heads) + f"); neurons {r.selected[:8]}"
             + ("..." if len(r.selected) > 8 else "") + f" ({r.selection.split(' (')[0]})",
             f"clean: repeated {r.clean.repeated:.3f}, non-repeated {r.clean.non_repeated:.3f}, mean |gap| "
             f"{r.clean.gap_size:.3f} (random neurons' {r.random_neuron_clean_gap.baseline.mean:.3f} ± "
             f"{r.random_neuron_clean_gap.baseline.std:.3f}, n {r.random_neuron_clean_gap.baseline.n})"]
    names = {"duplicate": f"{r.options.get('kind')}-ablating the duplicate heads",
             "others": f"{r.options.get('kind')}-ablating the other {len(r.other_heads)} heads"}
    for g, e in r.effects.items():
        x = e["gap"]
        lines.append(f"{names[g]}: change of the gap in its clean direction {x.effect:+.3f} "
                     f"({x.relative:+.0%} of the clean gap; below -100% the gap flips sign); "
                     f"{against(x.vs_random_heads.baseline, x.vs_random_heads.z, 'random heads')}; "
                     f"{against(x.vs_random_neurons.baseline, x.vs_random_neurons.z, 'same ablation on random neurons')}")
    return lines + list(r.notes)
