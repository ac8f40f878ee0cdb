"""Are the word-index probe directions used? Resample-ablate them, and patch the signal between prompts.

The emergent-positional-embeddings post probes the residual stream for "which word is this token in" but could not say
whether the model uses what the probe finds. Two causal tests:

1. **Ablation.** Fit word-index probes (:func:`poslens.analyses.word_index.fit_probe` on
   :func:`~poslens.analyses.word_index.harvest`-ed activations of
   :func:`poslens.data.word_prompts.make_dataset` prompts) at residual point ``layer`` and
   at every later point. Resample-ablate the span of the point-``layer`` probe's class
   directions (in raw residual coordinates) on validation prompts: each prompt's
   coordinates in that subspace are replaced by another prompt's of the same length, at
   every position. Measure the later probes' accuracy and the model's loss on the words,
   against random subspaces of the same dimension ablated the same way.
2. **Patching.** Pairs of prompts with the same tokens count but different word lengths,
   e.g. words of 3|1 tokens (A) and 1|2|1 tokens (B): at the last token (position ``t``)
   A is in word 1 and B in word 2. Patch A's activations into B's run (a layers x
   positions sweep), the metric being the later probe's logit difference between the two
   indices at ``t``, normalised 0 = B, 1 = A; and patch only the probe subspace at
   (``layer``, ``t``) against random subspaces of the same dimension, counting how often
   the later probe then predicts A's index.

Residual points follow :mod:`poslens.analyses.word_index`: point ``L`` is the stream
entering block ``L`` and point ``n_layers`` the stream after the last block.

>>> r = word_index_ablation(load_weights("tiny"), layer=1, n_train=1400, n_val_prompts=120)   # doctest: +SKIP
>>> r.ablation.accuracy["2"].effect, r.patching.subspace.follow_a              # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import InvalidInputError
from ...models.runner import Runner
from ...models.weights import Weights, as_weights
from ...options import resolve
from ...results import Result
from ..reach import runner_for
from .baselines import against, compare, compare_arms, random_subspace, spread
from .intervention import ablate_direction
from .metrics import direction_readout, next_token_loss
from .options import WordIndexAblationOptions
from .patching import PatchResult, patch_sweep
from .word_index_records import (FollowStay, PatchPairs, PointProbe, ProbeAblation, SubspacePatch, WordIndexData,
                                 WordIndexPatching)
from .run import measure_variants, run_variants


@dataclass(frozen=True)
class WordIndexCausalResult(Result):
    """Probe-direction ablation and word-index patching.

    ``probes[point]``: clean validation accuracy; ``ablation`` (:class:`ProbeAblation`):
    accuracy per later point and loss, each ablated - clean against random subspaces;
    ``patching``: the pairs, the residual sweep (a :class:`PatchResult` as a dict) and the
    subspace patch (:class:`SubspacePatch`).
    """

    kind = "causal_word_index"
    layer: int = 0
    later: list[int] = field(default_factory=list)
    hooks: dict[str, str] = field(default_factory=dict)
    subspace_rank: int = 0
    probes: dict[str, PointProbe] = field(default_factory=dict)  # residual point -> its probe
    ablation: ProbeAblation | None = None
    patching: WordIndexPatching | None = None  # None: the pairs' word indices were never seen by the probe
    data: WordIndexData | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def probe_subspace(probe, tol: float = 1e-6) -> torch.Tensor:
    """Orthonormal basis ``[r, d]`` of the span of a standardised probe's class directions in raw coordinates."""
    W = np.asarray(probe.model.coef_, dtype=np.float64) / np.asarray(probe.scaler.scale_, dtype=np.float64)
    _, s, vt = np.linalg.svd(W, full_matrices=False)
    r = int((s > tol * s[0]).sum()) if s.size and s[0] > 0 else 0
    if r == 0:
        raise InvalidInputError("the probe's weights are all zero; there is no direction to ablate")
    return torch.from_numpy(vt[:r].copy())


def probe_logit_direction(probe, a: int, b: int) -> tuple[np.ndarray, float]:
    """``(w, c)`` with ``logit_a(x) - logit_b(x) = x . w + c`` for a standardised logistic-regression probe."""
    classes = list(probe.model.classes_)
    ia, ib = classes.index(a), classes.index(b)
    coef, sc = probe.model.coef_, probe.scaler
    dw = (coef[ia] - coef[ib]) / sc.scale_
    c = float(probe.model.intercept_[ia] - probe.model.intercept_[ib] - (dw * sc.mean_).sum())
    return dw.astype(np.float64), c


def word_pairs(tokenizer, dictionary, lengths_a: Sequence[int], lengths_b: Sequence[int], n_pairs: int, *,
               prefix: str, prepend_bos: bool = True, split: str = "val", seed: int = 0,
               max_redraws: int = 50) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_pairs`` prompts ``prefix + words`` with word token lengths ``lengths_a`` (A) and ``lengths_b`` (B).

    The two lists must add up to the same number of tokens, so A and B align position by
    position; each prompt's tokens are checked against tokenising its whole text (a draw
    whose words merge across a boundary is redrawn). Returns token ids ``[n, P]`` each.
    (Written here rather than in :mod:`poslens.data.word_prompts`, whose generator draws
    lengths at random; this one fixes them.)
    """
    if sum(lengths_a) != sum(lengths_b):
        raise InvalidInputError(f"word lengths {list(lengths_a)} and {list(lengths_b)} cover different numbers of "
                                "tokens; patching position by position needs the same total")
    words = dictionary.words(split)
    for k in {*lengths_a, *lengths_b}:
        if k not in words or not words[k]:
            raise InvalidInputError(f"the dictionary has no {k}-token words under this tokenizer; choose other lengths")
    pre = tokenizer.encode(prefix, prepend_bos=prepend_bos)
    rng = np.random.default_rng([seed, 3])

    def draw(lengths):
        for _ in range(max_redraws):
            ws = [" " + words[k][rng.integers(len(words[k]))] for k in lengths]
            ids = list(pre)
            for wd in ws:
                ids += tokenizer.encode(wd)
            if ids == tokenizer.encode(prefix + "".join(ws), prepend_bos=prepend_bos) and len(ids) == len(pre) + sum(lengths):
                return ids
        raise InvalidInputError(f"could not draw words of token lengths {list(lengths)} that tokenise separately in "
                                f"{max_redraws} tries")

    A = [draw(lengths_a) for _ in range(n_pairs)]
    B = [draw(lengths_b) for _ in range(n_pairs)]
    return torch.tensor(A), torch.tensor(B)


def word_index_ablation(
    weights: Weights,
    options: WordIndexAblationOptions | None = None,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    tokenizer=None,
    runner: Runner | None = None,
    **overrides,
) -> WordIndexCausalResult:
    """Ablate the point-``layer`` word-index probe subspace; patch the signal between A/B word-length prompts.

    ``layer``: residual point of the ablated probe (default: a third of the way, as
    :func:`~poslens.analyses.word_index.word_index`); ``later``: points whose probes are
    read (default every later point); ``patch_point``: the later point whose probe is
    the patching metric (default ``layer + 1``). ``kind``: resample or mean. ``options``:
    :class:`~poslens.analyses.causal.options.WordIndexAblationOptions` (keywords replace its fields).
    """
    from ...data import word_prompts as wp
    from ...models.tokenizer import Tokenizer, as_tokenizer
    from ..word_index import fit_probe, harvest, resid_hook

    t0 = time.perf_counter()
    o = resolve(WordIndexAblationOptions, options, overrides, "word_index_ablation")
    weights = as_weights(weights, "word_index_ablation")
    tokenizer = as_tokenizer(tokenizer, "word_index_ablation", weights)
    layer, later, patch_point, kind, n_random, seed = o.layer, o.later, o.patch_point, o.kind, o.n_random, o.seed
    lengths_a, lengths_b, n_pairs, prepend_bos, batch_size = o.lengths_a, o.lengths_b, o.n_pairs, o.prepend_bos, o.batch_size
    cfg = weights.cfg
    n = cfg.n_layers
    if layer is None:
        layer = max(1, round(n / 3))
    if not 0 <= layer < n:
        raise InvalidInputError(f"point {layer} has no later point to read: use a residual point 0..{n - 1}")
    later = list(range(layer + 1, n + 1)) if later is None else sorted({int(x) for x in later})
    if not later or any(not layer < x <= n for x in later):
        raise InvalidInputError(f"later points must lie in {layer + 1}..{n} (after the ablated point {layer})")
    patch_point = later[0] if patch_point is None else int(patch_point)
    if patch_point not in later:
        raise InvalidInputError(f"the patching probe point {patch_point} must be one of the later points {later}")
    tokenizer = tokenizer or Tokenizer.for_checkpoint(weights.source)
    runner = runner_for(weights, runner, "word_index_ablation", device, dtype)
    notes: list[str] = []
    points = [layer, *later]
    hooks = {str(p): resid_hook(p, n_layers=n) for p in points}

    # 1. Dataset and probes (the word-index analysis's functions).
    d = wp.word_dictionary(tokenizer, o.dictionary_size, sorted({1, 2, 3, *lengths_a, *lengths_b}), seed=seed)
    train, val, _ = wp.make_dataset(tokenizer, "word", n_units=o.n_units, n_train=o.n_train, n_val_prompts=o.n_val_prompts,
                                    prepend_bos=prepend_bos, n_ctx=cfg.n_ctx, seed=seed, dictionary=d)
    tp, vp = train.points("last"), val.points("last")
    Xt = harvest(runner, train.tokens, tp["prompt"], tp["pos"], points, batch_size=batch_size)
    Xv = harvest(runner, val.tokens, vp["prompt"], vp["pos"], points, batch_size=batch_size)
    probes, probe_info = {}, {}
    for i, p in enumerate(points):
        probes[p] = pr = fit_probe(Xt[i], tp["label"], tp["prompt"], C=o.inverse_regularisation, seed=seed)
        probe_info[str(p)] = PointProbe(accuracy=float((pr.predict(Xv[i]) == vp["label"]).mean()), C=pr.C,
                                        converged=pr.converged, hook=hooks[str(p)])
    U = probe_subspace(probes[layer])
    r = U.shape[0]

    # 2. Ablation on the validation prompts, grouped by length (positions must align for resampling).
    hook = hooks[str(layer)]
    prefix_len = len(tokenizer.encode(train.prefix, prepend_bos=prepend_bos))
    iv = ablate_direction(hook, U, kind, mean_over="sequences", seed=seed, label=f"{kind}-ablate the point-{layer} probe subspace",
                          source=f"span of the word-index probe's {len(probes[layer].model.classes_)} class directions at "
                                 f"point {layer} (rank {r})")
    rand = [ablate_direction(hook, random_subspace(cfg.d_model, r, seed=seed * 7919 + j), kind, mean_over="sequences",
                             seed=seed, label=f"random {r}-d subspace #{j}",
                             source=f"uniform random {r}-d subspace, seed {seed * 7919 + j}") for j in range(n_random)]
    variants = [[], [iv], *[[x] for x in rand]]
    V = len(variants)
    read = [hooks[str(p)] for p in points]
    feats = {h: np.full((V, len(vp["prompt"]), cfg.d_model), np.nan, dtype=np.float32) for h in read}
    loss_sum, loss_n = np.zeros(V), 0
    lengths = np.array([len(t) for t in val.tokens])
    used = 0
    for Lg in np.unique(lengths):
        group = np.flatnonzero(lengths == Lg)
        if len(group) < 2:
            continue
        used += len(group)
        sel = np.flatnonzero(np.isin(vp["prompt"], group))
        gi = np.searchsorted(group, vp["prompt"][sel])  # each point's prompt's place in the group
        gp = vp["pos"][sel]
        ng = len(group)
        tokens = torch.tensor([val.tokens[i] for i in group], dtype=torch.long)

        def gather(act, ctx, sel=sel, gi=gi, gp=gp, ng=ng):
            rows = np.arange(ctx.batch.start, ctx.batch.stop)
            for rr in rows:
                v, i = divmod(int(rr), ng)
                m = gi == i
                if m.any():
                    feats[ctx.name][v, sel[m]] = act[rr - ctx.batch.start, torch.as_tensor(gp[m])].float().cpu().numpy()

        lm = next_token_loss(tokens, skip_first=prefix_len - 1)
        lv = measure_variants(runner, tokens, variants, [lm], readers={h: [gather] for h in read},
                              batch_size=batch_size)["loss"]  # [V, ng] mean per prompt over Lg - prefix_len predictions
        loss_sum += lv.sum(1) * (Lg - prefix_len)
        loss_n += ng * (Lg - prefix_len)
    if used < len(val.tokens):
        notes.append(f"{len(val.tokens) - used} validation prompts had a length no other prompt shares and were left out "
                     "of the ablation (resampling needs another prompt of the same length)")
    ok = ~np.isnan(feats[read[0]][0, :, 0])
    y = vp["label"][ok]
    acc = {}
    for p in points:
        h = hooks[str(p)]
        a = np.array([(probes[p].predict(feats[h][v, ok]) == y).mean() for v in range(V)])
        acc[str(p)] = compare_arms(a[0], a[1], a[2:] - a[0])
    loss = loss_sum / max(loss_n, 1)
    loss_eff = compare_arms(loss[0], loss[1], loss[2:] - loss[0])

    # 3. Patching between A (3|1) and B (1|2|1) prompts.
    patching = _patching(runner, tokenizer, d, probes, hooks, layer, patch_point, U, lengths_a, lengths_b, n_pairs,
                         train.prefix, prepend_bos, seed, n_random, notes)
    opts = {**dataclasses.asdict(o), "layer": layer, "later": later, "patch_point": patch_point, "dtype": dtype,
            "C": o.inverse_regularisation, "positions": "all (the prefix is the same in every prompt)",
            "label_token": "last"}
    return WordIndexCausalResult(
        model=weights.label, processing=tuple(weights.processing), options=opts, layer=layer, later=later, hooks=hooks,
        subspace_rank=r, probes=probe_info,
        ablation=ProbeAblation(
            intervention=iv.describe(full=False), random=[x.describe(full=False) for x in rand], accuracy=acc,
            loss=loss_eff, n_prompts=int(used), n_points=int(ok.sum()),
            loss_over=f"next-token predictions of the word tokens (after the {prefix_len}-token prefix)"),
        patching=patching,
        data=WordIndexData(train_prompts=len(train), val_prompts=len(val), prefix=train.prefix, prefix_tokens=prefix_len,
                           dictionary=d.counts()),
        seconds=round(time.perf_counter() - t0, 3), notes=notes,
    )


def _patching(runner, tokenizer, d, probes, hooks, layer, point, U, la, lb, n_pairs, prefix, bos, seed, n_random, notes):
    A, B = word_pairs(tokenizer, d, la, lb, n_pairs, prefix=prefix, prepend_bos=bos, seed=seed)
    t = A.shape[1] - 1
    ia, ib = len(la) - 1, len(lb) - 1
    probe = probes[point]
    if ia not in probe.model.classes_ or ib not in probe.model.classes_:
        notes.append(f"the point-{point} probe never saw word index {ia} or {ib}; patching skipped")
        return None
    w, c = probe_logit_direction(probe, ia, ib)
    metric = direction_readout(hooks[str(point)], w, positions=[t], bias=c,
                               name=f"probe@{point} logit[word {ia}] - logit[word {ib}]")
    # point p is the stream entering block p: the layers below it can move the probe
    sweep: PatchResult = patch_sweep(runner, A, B, metric, hook="resid_pre", layers=list(range(point)),
                                     tokenizer=tokenizer)
    # Patch only the probe subspace at (layer, t), against random subspaces of the same rank.
    hook = hooks[str(layer)]
    r = U.shape[0]
    ivs = [[ablate_direction(hook, U, "patch", positions=[t], reference="A", label="patch the probe subspace")]]
    ivs += [[ablate_direction(hook, random_subspace(runner.cfg.d_model, r, seed=seed * 31 + j), "patch", positions=[t],
                              reference="A", label=f"patch a random {r}-d subspace #{j}")] for j in range(n_random)]
    full = ablate_direction(hook, torch.eye(runner.cfg.d_model, dtype=torch.float64), "patch", positions=[t], reference="A",
                            label="patch the whole residual stream")
    variants = [[], [full], *ivs]
    preds = np.zeros((len(variants), len(B)), dtype=np.int64)
    ld = np.zeros((len(variants), len(B)))
    ph = hooks[str(point)]

    def read(act, ctx):
        x = act[:, t].float().cpu().numpy()
        rows = slice(ctx.batch.start, ctx.batch.stop)  # row v * n_pairs + i: variant v, pair i
        preds.reshape(-1)[rows] = probe.predict(x)
        ld.reshape(-1)[rows] = x @ w + c

    run_variants(runner, B, variants, {ph: [read]}, references={"A": A})
    follow = (preds == ia).mean(1)
    stay = (preds == ib).mean(1)
    sub = SubspacePatch(follow_a=float(follow[2]), stay_b=float(stay[2]), logit_diff=float(ld[2].mean()),
                        random_follow_a=spread(follow[3:]), random_logit_diff=spread(ld[3:].mean(1)),
                        vs_random=compare(float(ld[2].mean() - ld[0].mean()), ld[3:].mean(1) - ld[0].mean()))
    return WordIndexPatching(
        pairs=PatchPairs(a_lengths=list(la), b_lengths=list(lb), n=int(len(A)), position=int(t), a_index=ia, b_index=ib,
                         example_a=tokenizer.to_str_tokens(A[0].tolist()),
                         example_b=tokenizer.to_str_tokens(B[0].tolist())),
        metric=metric.describe(), sweep=sweep,
        b_run=FollowStay(follow_a=float(follow[0]), stay_b=float(stay[0]), logit_diff=float(ld[0].mean())),
        full_patch=FollowStay(follow_a=float(follow[1]), stay_b=float(stay[1]), logit_diff=float(ld[1].mean())),
        subspace=sub,
    )


def summarize(r: WordIndexCausalResult) -> list[str]:
    lines = [f"word-index probes: point {r.layer} accuracy {r.probes[str(r.layer)].accuracy:.3f}; later "
             + ", ".join(f"{p}: {r.probes[str(p)].accuracy:.3f}" for p in r.later)]
    a = r.ablation
    if a:
        lines.append(f"{r.options.get('kind')}-ablating the point-{r.layer} probe subspace (rank {r.subspace_rank}) on "
                     f"{a.n_prompts} prompts: " + "; ".join(
                         f"point {p} accuracy {x.clean:.3f} → {x.ablated:.3f} ({x.effect:+.3f}; "
                         f"{against(x.baseline, x.z, 'random')})"
                         for p, x in ((str(q), a.accuracy[str(q)]) for q in [r.layer, *r.later])))
        L = a.loss
        lines.append(f"loss on the words {L.clean:.3f} → {L.ablated:.3f} ({L.effect:+.4f}; "
                     f"{against(L.baseline, L.z, 'random')})")
    p = r.patching
    if p:
        pr = p.pairs
        sw = p.sweep
        lines.append(f"patching {'|'.join(map(str, pr.a_lengths))} into {'|'.join(map(str, pr.b_lengths))} prompts at "
                     f"position {pr.position} (word {pr.a_index} vs {pr.b_index}): probe@{r.options.get('patch_point')} "
                     f"logit diff clean {sw.clean_metric:.2f}, corrupted {sw.corrupted_metric:.2f}")
        s = p.subspace
        lines.append(f"patching only the probe subspace at point {r.layer}: the later probe predicts A's index for "
                     f"{s.follow_a:.0%} of pairs (whole stream {p.full_patch.follow_a:.0%}, unpatched "
                     f"{p.b_run.follow_a:.0%}; random {r.subspace_rank}-d subspaces "
                     f"{s.random_follow_a.mean:.0%} ± {s.random_follow_a.std:.0%})")
    return lines + list(r.notes)
