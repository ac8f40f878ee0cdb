"""The word-index measurement: datasets per scheme, one harvest, every probe and baseline, findings."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ...data import word_prompts as wp
from ...errors import InvalidInputError
from ...models.runner import Runner
from ...models.weights import Weights, as_weights, forward_tensors, require
from ...options import resolve
from ...progress import bar as progress_bar
from ...results import ClaimRow, Result
from ..reach import runner_for
from .evaluate import evaluate, one_hot, position_balanced
from .harvest import check_points, harvest, resid_hook
from .options import DELIMITED, Options
from .probes import fit_probe, fit_probes

BASELINES = ("position", "space", "both")


@dataclass(frozen=True)
class Finding:
    """One of the post's qualitative claims, measured on one scheme at the key residual point."""

    scheme: str
    label_token: str  # "last" or "first"
    layer: int  # the residual point read
    what: str
    ours: str  # the numbers behind the verdict
    holds: bool


@dataclass(frozen=True)
class Scores:
    """One probe (or baseline) on the validation points: accuracy overall, per unit index, per
    absolute position (aligned with :attr:`LabelProbes.positions`) and on the position-balanced
    subset; the training accuracy and how the fit went (C, the held-out accuracy of every
    candidate C, L-BFGS iterations). Probes on the residual also carry their ``layer`` and the
    key plot's counts ``confusion[true index][position][predicted index]``."""

    accuracy: float
    per_index: list[float]
    per_position: list[float]
    balanced_accuracy: float
    train_accuracy: float
    C: float
    selection: dict[str, float]
    n_iter: int
    converged: bool
    layer: int | None = None
    confusion: list[list[list[int]]] | None = None


@dataclass(frozen=True)
class Balanced:
    """The position-balanced validation subset: its size, positions, cell minimum and chance."""

    n_points: int
    positions: list[int]
    min_per_cell: int
    chance: float


@dataclass(frozen=True)
class LabelProbes:
    """One label token's probes: ``probes`` (one per residual point), the ``position``/``space``/
    ``both`` baselines, ``gain`` (probe accuracy minus the best baseline's, per point), the
    majority-class share; with ``combined``, probes on the residual plus the baselines'
    features and ``combined_gain`` (their accuracy minus the "both" baseline's)."""

    positions: list[int]
    balanced: Balanced
    baselines: dict[str, Scores]
    probes: list[Scores]
    gain: list[float]
    majority: float
    combined: list[Scores] | None = None
    combined_gain: list[float] | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """What a scheme's probes ran on: its unit, prefix, prompt and point counts, token lengths
    (``prompt_tokens`` min/mean/max; ``unit_tokens`` tokens per unit -> count), the word
    dictionary and three validation examples."""

    unit: str
    prefix: str
    prefix_tokens: int
    prepend_bos: bool
    n_units: int
    n_train_prompts: int
    n_val_prompts: int
    n_train_points: int
    n_val_points: int
    prompt_tokens: dict[str, float]
    unit_tokens: dict[str, int]
    dictionary: wp.DictionaryInfo
    examples: list[str]


@dataclass(frozen=True)
class SchemeResult:
    """One reference scheme: its dataset and, per label token ("last", "first"), the probes."""

    dataset: DatasetInfo
    labels: dict[str, LabelProbes]


@dataclass(frozen=True)
class WordIndexResult(Result):
    """Probe accuracy for "which unit is this token in", per residual point and scheme.

    ``schemes[s]`` (:class:`SchemeResult`): the scheme's ``dataset`` and, per label token,
    :class:`LabelProbes` (``schemes["word"].labels["last"].probes[i].accuracy`` is the probe
    at ``layers[i]``).
    """

    kind = "word_index"
    layers: list[int] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    key_layer: int = 0
    schemes: dict[str, SchemeResult] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    checks: list[ClaimRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _space_flags(tokenizer, ids: np.ndarray) -> np.ndarray:
    uniq = np.unique(ids)
    flag = {int(i): tokenizer.decode([int(i)]).startswith(" ") for i in uniq}
    return np.array([flag[int(i)] for i in ids], dtype=np.int64)


def _dataset_info(train: wp.PromptSet, val: wp.PromptSet, d: wp.WordDictionary, tokenizer) -> DatasetInfo:
    lens = np.array([len(t) for t in train.tokens + val.tokens])
    prefix_len = len(tokenizer.encode(train.prefix, prepend_bos=train.prepend_bos))
    unit_len = np.array([b - a + 1 for sp in train.spans + val.spans for a, b in sp])
    return DatasetInfo(
        unit=wp.SCHEME_UNITS[train.scheme], prefix=train.prefix, prefix_tokens=prefix_len,
        prepend_bos=train.prepend_bos, n_units=train.n_units,
        n_train_prompts=len(train), n_val_prompts=len(val),
        n_train_points=len(train) * train.n_units, n_val_points=len(val) * val.n_units,
        prompt_tokens={"min": int(lens.min()), "mean": float(lens.mean()), "max": int(lens.max())},
        unit_tokens={str(int(k)): int(v) for k, v in zip(*np.unique(unit_len, return_counts=True))},
        dictionary=d.info(),
        examples=[val.texts[i][len(val.prefix):] for i in range(min(3, len(val)))],
    )


def _probe_scheme(runner, tokenizer, train, val, layers, label_tokens, o: Options, progress, timings,
                  scheme) -> dict[str, LabelProbes]:
    probe_kw = dict(C=o.C, Cs=tuple(o.Cs), max_iter=o.max_iter, seed=o.seed)
    pts = {s: {lt: ps.points(lt) for lt in label_tokens} for s, ps in (("train", train), ("val", val))}
    # One pass over train + val prompts, reading every position any label needs (once each).
    n_tr = len(train)
    prompts, positions = [], []
    for s, off in (("train", 0), ("val", n_tr)):
        for lt in label_tokens:
            prompts.append(pts[s][lt]["prompt"] + off)
            positions.append(pts[s][lt]["pos"])
    allp, allq = np.concatenate(prompts), np.concatenate(positions)
    width = int(allq.max()) + 1
    uniq, inverse = np.unique(allp * width + allq, return_inverse=True)
    t0 = time.perf_counter()
    X = harvest(runner, train.tokens + val.tokens, uniq // width, uniq % width, layers, o.batch_size, progress)
    timings[f"{scheme}_harvest_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    rows, start = {}, 0
    for s in ("train", "val"):
        for lt in label_tokens:
            n = len(pts[s][lt]["prompt"])
            rows[s, lt] = inverse[start:start + n]
            start += n
    n_units = train.n_units
    out: dict[str, LabelProbes] = {}
    # the fits, not the harvest, were most of a probe run's time: a bar unless told not to
    show = progress or (progress is None and len(layers) * len(train) * train.n_units > 200_000)
    bar = progress_bar(total=len(label_tokens) * (4 + o.combined), desc=f"probes ({scheme})", unit="fit", leave=False,
                       disable=not show)

    def scored(p, A, B, tr, va, positions_v, bal, confusion=False, layer=None) -> Scores:
        m = evaluate(p.predict(B), va["label"], va["pos"], n_units, positions_v, bal, confusion=confusion)
        return Scores(**m, train_accuracy=float((p.predict(A) == tr["label"]).mean()), C=p.C, selection=p.selection,
                      n_iter=p.n_iter, converged=p.converged, layer=layer)

    for lt in label_tokens:
        tr, va = pts["train"][lt], pts["val"][lt]
        positions_v = np.unique(va["pos"]).tolist()
        bal, binfo = position_balanced(va["pos"], va["label"], o.balance_min, o.seed)
        sp_tr, sp_va = _space_flags(tokenizer, tr["token"]), _space_flags(tokenizer, va["token"])
        feats = {
            "position": ([tr["pos"]], [va["pos"]]),
            "space": ([sp_tr], [sp_va]),
            "both": ([tr["pos"], sp_tr], [va["pos"], sp_va]),
        }
        baselines = {}
        for name, (ftr, fva) in feats.items():
            Xtr, Xva = one_hot(ftr, ftr), one_hot(fva, ftr)
            p = fit_probe(Xtr, tr["label"], tr["prompt"], **probe_kw)
            baselines[name] = scored(p, Xtr, Xva, tr, va, positions_v, bal)
            bar.update(1)
        both_tr, both_va = one_hot(feats["both"][0], feats["both"][0]), one_hot(feats["both"][1], feats["both"][0])
        Xtr, Xva = X[:, rows["train", lt]], X[:, rows["val", lt]]
        # every point at once: one batch of fits per feature kind
        fitted = fit_probes(Xtr, tr["label"], tr["prompt"], **probe_kw)
        probes = [scored(p, Xtr[i], Xva[i], tr, va, positions_v, bal, confusion=True, layer=layer)
                  for i, (p, layer) in enumerate(zip(fitted, layers))]
        bar.update(1)
        if o.combined:  # the residual beside the baselines' own features: what it adds to them
            ctr = np.concatenate([Xtr, np.broadcast_to(both_tr, (len(layers), *both_tr.shape))], -1)
            cva = np.concatenate([Xva, np.broadcast_to(both_va, (len(layers), *both_va.shape))], -1)
            fitted = fit_probes(ctr, tr["label"], tr["prompt"], **probe_kw)
            combined_probes = [scored(p, ctr[i], cva[i], tr, va, positions_v, bal, layer=layer)
                               for i, (p, layer) in enumerate(zip(fitted, layers))]
            bar.update(1)
        best_base = max(b.accuracy for b in baselines.values())
        out[lt] = LabelProbes(
            positions=positions_v, balanced=Balanced(**binfo), baselines=baselines, probes=probes,
            gain=[m.accuracy - best_base for m in probes],
            majority=float(np.bincount(va["label"]).max() / len(va["label"])),
            combined=combined_probes if o.combined else None,
            combined_gain=[m.accuracy - baselines["both"].accuracy for m in combined_probes] if o.combined else None)
    bar.close()
    timings[f"{scheme}_probe_s"] = round(time.perf_counter() - t0, 3)
    return out


def _findings(schemes: dict[str, SchemeResult], layers: list[int], key_layer: int) -> list[Finding]:
    """The post's two qualitative claims, measured at ``key_layer`` on each scheme's last-token labels."""
    out = []
    i = layers.index(key_layer)
    for s, rep in schemes.items():
        labs = rep.labels
        lt = "last" if "last" in labs else next(iter(labs))
        r = labs[lt]
        pr = r.probes[i]
        pos_base = r.baselines["position"].accuracy
        best = max(r.baselines.values(), key=lambda b: b.accuracy)
        bal, chance = pr.balanced_accuracy, r.balanced.chance
        above = (pr.accuracy - pos_base >= 0.1) and (bal - chance >= 0.1 if not math.isnan(bal) else False)
        out.append(Finding(
            scheme=s, label_token=lt, layer=key_layer, what=f"{s}: probe at residual point {key_layer} is well above the position-only baseline",
            ours=(f"probe {pr.accuracy:.3f} vs position-only {pos_base:.3f} (best baseline {best.accuracy:.3f}); "
                  + (f"position-balanced {bal:.3f} vs chance {chance:.3f}" if r.balanced.n_points else
                     "no position-balanced points")
                  + ("; a delimited scheme: random weights carry its delimiter count too" if s in DELIMITED else "")),
            holds=bool(above),
        ))
        per = np.array(pr.per_index, dtype=float)
        h = len(per) // 2
        early, late = float(np.nanmean(per[:h])), float(np.nanmean(per[len(per) - h:]))
        out.append(Finding(
            scheme=s, label_token=lt, layer=key_layer,
            what=f"{s}: the probe is worse for later {rep.dataset.unit}s",
            ours=f"mean accuracy on indices 0-{h - 1}: {early:.3f}; on the last {h}: {late:.3f}",
            holds=bool(late < early),
        ))
    return out


def word_index(
    weights: Weights,
    options: Options | None = None,
    *,
    words: Sequence[str] | None = None,
    tokenizer=None,
    device: str = "cpu",
    dtype: str = "float32",
    progress: bool | None = None,
    runner: Runner | None = None,
    **overrides,
) -> WordIndexResult:
    """Probe every requested residual point for the index of the unit each token is in.

    ``options`` (:class:`~poslens.analyses.word_index.options.Options`; keywords replace its
    fields); ``words`` replaces wordfreq's list. Defaults are the post's: seven words of 1-3 tokens after its prefix, 10,000 training
    points (last tokens), 2,560 validation prompts on held-out words. ``layers`` are
    residual points 0..n_layers (all by default); ``schemes`` any of word, sentence, list,
    code; ``prefix`` one string for every scheme or a dict per scheme (default: each
    scheme's own); ``label_tokens`` "last" and/or "first"; ``C`` a float or "auto"
    (chosen from ``Cs`` per probe on held-out training prompts); ``combined`` adds, per
    point, a probe on the residual *and* the one-hot (position, space) features, whose gain
    over the "both" baseline is what the residual adds to them even where a linear read-out
    of position from the residual is worse than a one-hot one; ``key_layer`` the point the
    findings are read at (default: a third of the way through, the post's choice).

    >>> r = word_index(load_weights("tiny"), schemes=("word", "list"))   # doctest: +SKIP
    >>> r.schemes["word"].labels["last"].probes[1].accuracy     # doctest: +SKIP
    """
    from ...models.tokenizer import Tokenizer, as_tokenizer

    o = resolve(Options, options, overrides, "word_index")
    weights = as_weights(weights, "word_index")
    tokenizer = as_tokenizer(tokenizer, "word_index", weights)
    cfg = weights.cfg
    layers = check_points(cfg.n_layers, o.layers, weights.label)
    schemes = list(dict.fromkeys(o.schemes))
    label_tokens = list(dict.fromkeys(o.label_tokens))
    key_layer = o.key_layer
    if key_layer is None:
        key_layer = min(layers, key=lambda l: (abs(l - max(1, round(cfg.n_layers / 3))), l))
    elif key_layer not in layers:
        raise InvalidInputError(f"key layer {key_layer} is not among the probed layers {layers}")
    require(weights, forward_tensors(weights, max(layers)), "word-index probes (token inputs through the model)")
    tokenizer = tokenizer or Tokenizer.for_checkpoint(weights.source)
    runner = runner_for(weights, runner, "word_index", device, dtype)
    prefixes = o.prefix if isinstance(o.prefix, dict) else {s: o.prefix for s in schemes}
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    d = wp.word_dictionary(tokenizer, o.dictionary_size, o.lengths, o.train_fraction, o.seed, words=words)
    timings["dictionary_s"] = round(time.perf_counter() - t_start, 3)
    # Every scheme's prompts first, so a bad one fails before any forward pass; a scheme whose prompts
    # outgrow the context is left out (with a note) when another one fits.
    data, too_long = {}, {}
    for s in schemes:
        try:
            data[s] = wp.make_dataset(
                tokenizer, s, n_units=o.n_units, lengths=o.lengths, n_train=o.n_train, n_val_prompts=o.n_val_prompts,
                prefix=prefixes.get(s), prepend_bos=o.prepend_bos, n_ctx=cfg.n_ctx, seed=o.seed, dictionary=d)[:2]
        except wp.PromptTooLong as exc:
            too_long[s] = exc
    if not data:
        raise next(iter(too_long.values()))
    out: dict[str, SchemeResult] = {}
    for s, (train, val) in data.items():
        out[s] = SchemeResult(_dataset_info(train, val, d, tokenizer), _probe_scheme(
            runner, tokenizer, train, val, layers, label_tokens, o, progress, timings, s))
    timings["total_s"] = round(time.perf_counter() - t_start, 3)
    findings = _findings(out, layers, key_layer)
    notes = [f"scheme '{s}' left out: {exc}" for s, exc in too_long.items()]
    schemes = list(out)
    if not any(m.converged for s in out.values() for r in s.labels.values() for m in r.probes):
        notes.append(f"no probe converged within max_iter={o.max_iter}; accuracies are those of the last iterate")
    options = dict(
        layers=layers, schemes=schemes, n_units=o.n_units, lengths=list(o.lengths), dictionary_size=o.dictionary_size,
        dictionary="wordfreq en (cleaned)" if words is None else f"{d.n_candidates} given words",
        train_fraction=o.train_fraction, n_train=o.n_train, n_val_prompts=o.n_val_prompts,
        prefix={s: out[s].dataset.prefix for s in schemes}, prepend_bos=o.prepend_bos,
        label_tokens=label_tokens, C=o.C, Cs=list(o.Cs), max_iter=o.max_iter, standardize=True,
        holdout="20% of training prompts" if o.C == "auto" else None, balance_min=o.balance_min, combined=o.combined,
        key_layer=key_layer, tokenizer=tokenizer.identity, batch_size=o.batch_size, seed=o.seed, device=str(device),
        dtype=str(dtype),
    )
    return WordIndexResult(
        model=weights.label, processing=weights.processing, options=options, layers=layers,
        hooks=[resid_hook(l, n_layers=cfg.n_layers) for l in layers], key_layer=key_layer, schemes=out,
        findings=findings, notes=notes, timings=timings,
    )


# ----------------------------------------------------------------------------- summary / figures


def summarize(result: WordIndexResult) -> list[str]:
    """A few lines: per scheme and label token, probe accuracy by layer against the baselines."""
    lines = []
    for s, rep in result.schemes.items():
        ds = rep.dataset
        lines.append(f"{s} ({ds.n_units} {ds.unit}s, {ds.n_train_points} train / {ds.n_val_points} "
                     f"validation points, prompts {ds.prompt_tokens['min']}-{ds.prompt_tokens['max']} tokens):")
        for lt, r in rep.labels.items():
            b = r.baselines
            accs = " ".join(f"{l}:{m.accuracy:.3f}" for l, m in zip(result.layers, r.probes))
            lines.append(f"  {lt} token: probe by point {accs}")
            lines.append(f"    baselines position {b['position'].accuracy:.3f}, space {b['space'].accuracy:.3f}, "
                         f"both {b['both'].accuracy:.3f}; majority {r.majority:.3f}")
            if r.combined_gain is not None:
                comb = " ".join(f"{l}:{g:+.3f}" for l, g in zip(result.layers, r.combined_gain))
                lines.append(f"    residual + position + space over the 'both' baseline: {comb}")
            best = int(np.argmax(r.gain))
            bal = " ".join(f"{l}:{m.balanced_accuracy:.3f}" for l, m in zip(result.layers, r.probes))
            lines.append(f"    best gain over baselines {r.gain[best]:+.3f} at point {result.layers[best]}; "
                         + (f"position-balanced ({r.balanced.n_points} points, chance {r.balanced.chance:.3f}) {bal}"
                            if r.balanced.n_points else "no position-balanced points: no position has two indices "
                            f"with {r.balanced.min_per_cell} points each (--balance-min)"))
    for f in result.findings:
        lines.append(f"{'holds' if f.holds else 'does not hold'}: {f.what} ({f.ours})")
    lines += result.notes
    return lines
