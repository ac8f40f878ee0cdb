"""Emergent positional embeddings: does the residual stream know which word a token is in?

The seed's experiment, done layer by layer and with the controls it lists as missing.
Prompts are a fixed prefix then N random words of 1-3 tokens (:mod:`poslens.data.word_prompts`,
tokenised by the model's own tokenizer); the residual stream is read at the last (or
first) token of every word, at every requested *residual point*, in one batched pass per
prompt set that stops at the deepest point; a multinomial logistic-regression probe
(scikit-learn, standardised features, regularisation chosen per point on held-out
training prompts) predicts the word's index, and is scored on prompts built from
validation words that never occur in training.

Residual point ``L`` is the stream entering block ``L`` (``blocks.L.hook_resid_pre``;
0 = token + position embeddings) and ``L = n_layers`` the stream after the last block, so
GPT-2 small has 13 points and the post's "residual stream after layer 3" is point 4.

What the post could not rule out is measured beside every probe:

* baselines, probes on features that are not the residual stream: only the labelled
  token's absolute position (one-hot), only whether it begins with a space, and both
  (one-hot of the pair). With a one-hot input such a probe is the best classifier those
  features allow, so ``probe - best baseline`` is the emergent signal;
* a position-balanced evaluation: validation points subsampled so that at every kept
  absolute position each word index present there is equally frequent, where anything
  that knows only the position scores the chance level ``mean(1 / k_p)``;
* first-token against last-token labels, and the other reference schemes (nth sentence,
  nth list item, nth code line) with the same probing.

>>> from poslens.models import load_weights
>>> from poslens.analyses.word_index import word_index, summarize
>>> r = word_index(load_weights("tiny"), n_train=2000, n_val_prompts=300)   # doctest: +SKIP
>>> print("\\n".join(summarize(r)))                                          # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data import word_prompts as wp
from ..errors import InvalidInputError
from ..models.runner import Runner
from ..models.weights import Weights, require
from ..results import Result

LABEL_TOKENS = ("last", "first")
BASELINES = ("position", "space", "both")
DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0)

# ----------------------------------------------------------------------------- residual points


def resid_hook(n_layers: int, layer: int) -> str:
    """Hook name of residual point ``layer`` (0..n_layers).

    >>> resid_hook(12, 4), resid_hook(12, 12)
    ('blocks.4.hook_resid_pre', 'blocks.11.hook_resid_post')
    """
    return f"blocks.{layer}.hook_resid_pre" if layer < n_layers else f"blocks.{n_layers - 1}.hook_resid_post"


def check_layers(n_layers: int, layers: Sequence[int] | None, label: str = "the model") -> list[int]:
    """Sorted, unique residual points; all ``0..n_layers`` when ``layers`` is empty."""
    if not layers:
        return list(range(n_layers + 1))
    out = sorted(set(int(l) for l in layers))
    for l in out:
        if not 0 <= l <= n_layers:
            raise InvalidInputError(
                f"layer {l} is out of range: {label} has residual points 0..{n_layers} "
                f"(0 = embeddings, {n_layers} = after the last block)"
            )
    return out


def _needed_tensors(n_layers: int, deepest: int) -> list[str]:
    names = ["embed.W_E", "pos_embed.W_pos"]
    for l in range(min(deepest, n_layers)):
        names += [f"blocks.{l}.{p}" for p in ("ln1.w", "ln1.b", "attn.W_Q", "attn.W_O", "ln2.w", "ln2.b",
                                               "mlp.W_in", "mlp.W_out")]
    return names


# ----------------------------------------------------------------------------- harvest


def harvest(
    runner: Runner,
    tokens: Sequence[Sequence[int]],
    prompt: np.ndarray,
    pos: np.ndarray,
    layers: Sequence[int],
    batch_size: int = 64,
    progress: bool | None = None,
) -> np.ndarray:
    """Residual vectors at rows ``(prompt[i], pos[i])`` for every point in ``layers``: ``[layer, row, d_model]``.

    Prompts are run grouped by length (no padding) with read-only edits that copy only the
    requested rows out of each batch, so nothing else is stored, and each pass stops at the
    deepest point requested.

    >>> X = harvest(runner, ps.tokens, pts["prompt"], pts["pos"], layers=[0, 4])   # doctest: +SKIP
    """
    cfg = runner.cfg
    prompt = np.asarray(prompt, dtype=np.int64)
    pos = np.asarray(pos, dtype=np.int64)
    hooks = [resid_hook(cfg.n_layers, l) for l in layers]
    slot = {h: i for i, h in enumerate(hooks)}
    out = np.empty((len(layers), len(prompt), cfg.d_model), dtype=np.float32)
    lengths = np.array([len(t) for t in tokens])
    if len(prompt) and (pos.min() < 0 or (pos >= lengths[prompt]).any()):
        raise InvalidInputError("a harvested position lies outside its prompt")
    if progress is None:
        progress = len(tokens) > 2000
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(tokens), desc="harvest", unit="prompt", leave=False)
    local = np.full(len(tokens), -1)
    for L in np.unique(lengths):
        group = np.flatnonzero(lengths == L)
        local[:] = -1
        local[group] = np.arange(len(group))
        rows = np.flatnonzero(local[prompt] >= 0)
        if len(rows) == 0:
            continue
        lp, pp = local[prompt[rows]], pos[rows]

        def gather(act: torch.Tensor, hook, rows=rows, lp=lp, pp=pp) -> None:
            s, e = hook.batch.start, hook.batch.stop
            sel = (lp >= s) & (lp < e)
            out[slot[hook.name], rows[sel]] = act[torch.as_tensor(lp[sel] - s), torch.as_tensor(pp[sel])].float().cpu().numpy()

        t = torch.tensor([tokens[i] for i in group], dtype=torch.long)
        runner.run(t, edits={h: gather for h in hooks}, batch_size=batch_size, progress=False)
        if bar is not None:
            bar.update(len(group))
    if bar is not None:
        bar.close()
    return out


# ----------------------------------------------------------------------------- probes


@dataclass
class Probe:
    """A fitted probe: standardiser + multinomial logistic regression, and how its C was chosen."""

    scaler: Any
    model: Any
    C: float
    selection: dict[str, float]
    n_iter: int
    converged: bool

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model.predict(self.scaler.transform(X))


def _lr(C: float, max_iter: int, tol: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=max_iter, tol=tol)


def _fit(model, X, y):
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return model


def fit_probe(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    C: float | str = "auto",
    Cs: Sequence[float] = DEFAULT_CS,
    holdout: float = 0.2,
    max_iter: int = 1000,
    tol: float = 1e-4,
    seed: int = 0,
) -> Probe:
    """Standardise ``X`` and fit a multinomial logistic regression to ``y``.

    ``C="auto"`` picks the inverse regularisation from ``Cs`` by accuracy on a held-out
    ``holdout`` share of the training *prompts* (``groups``), so the choice never sees
    validation words; ties go to the stronger regularisation, and the path (strongest
    first) stops at the first C whose held-out accuracy falls more than one standard error
    below the best so far, as weaker regularisation is also the slowest to fit. The probe
    is then refitted
    on all of ``X``, starting from the chosen fit (the standardiser is fitted once, on all
    training rows: it sees no labels). Fits along the ``Cs`` path start from the previous
    solution, so the search costs little more than one fit.

    >>> p = fit_probe(X_train, y_train, prompt_ids)       # doctest: +SKIP
    >>> (p.predict(X_val) == y_val).mean(), p.C           # doctest: +SKIP
    """
    import copy

    from sklearn.preprocessing import StandardScaler

    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y)
    sc = StandardScaler().fit(X)
    Xs = sc.transform(X)
    selection: dict[str, float] = {}
    start = None
    if C == "auto":
        Cs = sorted(float(c) for c in Cs)
        ug = np.unique(groups)
        rng = np.random.default_rng(seed)
        held = rng.choice(ug, size=max(1, int(round(holdout * len(ug)))), replace=False)
        mask = np.isin(groups, held)
        if mask.all() or not mask.any() or len(np.unique(y[~mask])) < 2:
            Cs = Cs[-1:]
        if len(Cs) == 1:
            C = Cs[0]
        else:
            m = _lr(Cs[0], max_iter, tol)
            m.set_params(warm_start=True)  # each larger C starts from the previous solution
            best = (-1.0, Cs[0])
            for c in Cs:
                m.set_params(C=c)
                _fit(m, Xs[~mask], y[~mask])
                acc = float((m.predict(Xs[mask]) == y[mask]).mean())
                selection[f"{c:g}"] = acc
                if acc > best[0] + 1e-12:
                    best = (acc, c)
                    start = copy.deepcopy(m)
                elif acc < best[0] - math.sqrt(best[0] * (1 - best[0]) / mask.sum()):
                    break  # clearly past the peak: weaker regularisation only costs iterations from here
            C = best[1]
            if start is not None and not np.array_equal(start.classes_, np.unique(y)):
                start = None  # a class missing from the held-in part: its shape cannot seed the refit
    else:
        C = float(C)
        if not C > 0:
            raise InvalidInputError(f"the probe's C must be positive or 'auto', got {C}")
    m = start if start is not None else _lr(C, max_iter, tol)
    m = _fit(m, Xs, y)
    n_iter = int(np.max(m.n_iter_))
    return Probe(sc, m, float(C), selection, n_iter, n_iter < max_iter)


def one_hot(columns: Sequence[np.ndarray], categories: Sequence[np.ndarray]) -> np.ndarray:
    """One-hot of the *joint* value of ``columns`` over the joint values in ``categories`` (unseen -> zeros)."""
    key = np.stack([np.asarray(c) for c in columns], 1)
    cats = np.unique(np.stack([np.asarray(c) for c in categories], 1), axis=0)
    lookup = {tuple(r): i for i, r in enumerate(cats)}
    out = np.zeros((len(key), len(cats)), dtype=np.float32)
    for i, r in enumerate(key):
        j = lookup.get(tuple(r))
        if j is not None:
            out[i, j] = 1.0
    return out


# ----------------------------------------------------------------------------- evaluation


def position_balanced(pos: np.ndarray, y: np.ndarray, min_per_cell: int = 10, seed: int = 0) -> tuple[np.ndarray, dict]:
    """Indices of a subset where, at every kept position, each word index present is equally frequent.

    At each absolute position the indices with at least ``min_per_cell`` points are kept
    (positions with fewer than two such indices are dropped) and each is subsampled to the
    smallest of their counts. Chance for a position-only classifier is ``1/k`` at a
    position with ``k`` indices; ``chance`` is its mean over the subset.

    >>> idx, info = position_balanced(np.array([5, 5, 5, 5]), np.array([0, 1, 0, 1]), min_per_cell=2)
    >>> sorted(idx.tolist()), info["chance"]
    ([0, 1, 2, 3], 0.5)
    """
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    chance: list[float] = []
    positions = []
    for p in np.unique(pos):
        at = np.flatnonzero(pos == p)
        labels, counts = np.unique(y[at], return_counts=True)
        ok = labels[counts >= min_per_cell]
        if len(ok) < 2:
            continue
        m = int(counts[counts >= min_per_cell].min())
        for lab in ok:
            keep.append(rng.choice(at[y[at] == lab], size=m, replace=False))
        chance += [1.0 / len(ok)] * (m * len(ok))
        positions.append(int(p))
    idx = np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)
    info = {"n_points": int(len(idx)), "positions": positions, "min_per_cell": min_per_cell,
            "chance": float(np.mean(chance)) if chance else float("nan")}
    return idx, info


def evaluate(pred: np.ndarray, y: np.ndarray, pos: np.ndarray, n_units: int, positions: Sequence[int],
             balanced: np.ndarray, confusion: bool = False) -> dict[str, Any]:
    """Accuracy overall, per word index, per absolute position (aligned with ``positions``),
    on the position-balanced subset, and optionally the key plot's counts
    ``confusion[true index][position][predicted index]``."""
    ok = pred == y
    pidx = np.searchsorted(positions, pos)
    out: dict[str, Any] = {
        "accuracy": float(ok.mean()) if len(ok) else float("nan"),
        "per_index": [float(ok[y == u].mean()) if (y == u).any() else float("nan") for u in range(n_units)],
        "per_position": (np.bincount(pidx, weights=ok, minlength=len(positions))
                         / np.maximum(np.bincount(pidx, minlength=len(positions)), 1)).tolist(),
        "balanced_accuracy": float(ok[balanced].mean()) if len(balanced) else float("nan"),
    }
    if confusion:
        c = np.zeros((n_units, len(positions), n_units), dtype=np.int64)
        np.add.at(c, (y, pidx, pred), 1)
        out["confusion"] = c.tolist()
    return out


# ----------------------------------------------------------------------------- result


@dataclass(frozen=True)
class WordIndexResult(Result):
    """Probe accuracy for "which unit is this token in", per residual point and scheme.

    ``schemes[s]["labels"][label_token]`` holds ``positions`` (validation positions, the
    x axis of ``per_position`` and the key plot), ``balanced`` (the position-balanced
    subset), ``baselines`` (``position``/``space``/``both`` metrics), ``probes`` (one
    metrics dict per entry of ``layers``) and ``gain`` (probe accuracy minus the best
    baseline's, per layer); with ``combined``, ``combined`` (probes on the residual plus the
    one-hot position and space features) and ``combined_gain`` (their accuracy minus the
    "both" baseline's).
    """

    kind = "word_index"
    layers: list[int] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    key_layer: int = 0
    schemes: dict[str, dict] = field(default_factory=dict)
    findings: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def _space_flags(tokenizer, ids: np.ndarray) -> np.ndarray:
    uniq = np.unique(ids)
    flag = {int(i): tokenizer.decode([int(i)]).startswith(" ") for i in uniq}
    return np.array([flag[int(i)] for i in ids], dtype=np.int64)


def _dataset_info(train: wp.PromptSet, val: wp.PromptSet, d: wp.WordDictionary, tokenizer) -> dict[str, Any]:
    lens = np.array([len(t) for t in train.tokens + val.tokens])
    prefix_len = len(tokenizer.encode(train.prefix, prepend_bos=train.prepend_bos))
    unit_len = np.array([b - a + 1 for sp in train.spans + val.spans for a, b in sp])
    return {
        "unit": wp.SCHEME_UNITS[train.scheme], "prefix": train.prefix, "prefix_tokens": prefix_len,
        "prepend_bos": train.prepend_bos, "n_units": train.n_units,
        "n_train_prompts": len(train), "n_val_prompts": len(val),
        "n_train_points": len(train) * train.n_units, "n_val_points": len(val) * val.n_units,
        "prompt_tokens": {"min": int(lens.min()), "mean": float(lens.mean()), "max": int(lens.max())},
        "unit_tokens": {str(int(k)): int(v) for k, v in zip(*np.unique(unit_len, return_counts=True))},
        "dictionary": {"tokenizer": d.tokenizer, "size": d.size, "n_candidates": d.n_candidates,
                       "train_fraction": d.train_fraction, "words_per_length": d.counts()},
        "examples": [val.texts[i][len(val.prefix):] for i in range(min(3, len(val)))],
    }


def _probe_scheme(runner, tokenizer, train, val, layers, label_tokens, probe_kw, balance_min, batch_size, seed,
                  progress, timings, scheme, combined) -> dict[str, Any]:
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
    X = harvest(runner, train.tokens + val.tokens, uniq // width, uniq % width, layers, batch_size, progress)
    timings[f"{scheme}_harvest_s"] = round(time.perf_counter() - t0, 3)
    t0 = time.perf_counter()
    rows, start = {}, 0
    for s in ("train", "val"):
        for lt in label_tokens:
            n = len(pts[s][lt]["prompt"])
            rows[s, lt] = inverse[start:start + n]
            start += n
    n_units = train.n_units
    out: dict[str, Any] = {}
    bar = None
    n_fits = len(label_tokens) * (3 + len(layers) * (2 if combined else 1))
    # the fits, not the harvest, are most of a probe run's time: a bar unless told not to
    if progress or (progress is None and n_fits * len(train) > 20_000):
        from tqdm.auto import tqdm

        bar = tqdm(total=n_fits, desc=f"probes ({scheme})", unit="fit", leave=False)
    for lt in label_tokens:
        tr, va = pts["train"][lt], pts["val"][lt]
        positions_v = np.unique(va["pos"]).tolist()
        bal, binfo = position_balanced(va["pos"], va["label"], balance_min, seed)
        sp_tr, sp_va = _space_flags(tokenizer, tr["token"]), _space_flags(tokenizer, va["token"])
        feats = {
            "position": ([tr["pos"]], [va["pos"]]),
            "space": ([sp_tr], [sp_va]),
            "both": ([tr["pos"], sp_tr], [va["pos"], sp_va]),
        }
        baselines = {}
        for name, (ftr, fva) in feats.items():
            Xtr, Xva = one_hot(ftr, ftr), one_hot(fva, ftr)
            p = fit_probe(Xtr, tr["label"], tr["prompt"], seed=seed, **probe_kw)
            m = evaluate(p.predict(Xva), va["label"], va["pos"], n_units, positions_v, bal)
            m.update(train_accuracy=float((p.predict(Xtr) == tr["label"]).mean()), C=p.C, selection=p.selection,
                     n_iter=p.n_iter, converged=p.converged)
            baselines[name] = m
            if bar is not None:
                bar.update(1)
        both_tr, both_va = one_hot(feats["both"][0], feats["both"][0]), one_hot(feats["both"][1], feats["both"][0])
        probes, combined_probes = [], []
        for i, layer in enumerate(layers):
            Xtr, Xva = X[i, rows["train", lt]], X[i, rows["val", lt]]
            variants = [(probes, Xtr, Xva)]
            if combined:  # the residual beside the baselines' own features: what it adds to them
                variants.append((combined_probes, np.hstack([Xtr, both_tr]), np.hstack([Xva, both_va])))
            for dest, A, B in variants:
                p = fit_probe(A, tr["label"], tr["prompt"], seed=seed, **probe_kw)
                m = evaluate(p.predict(B), va["label"], va["pos"], n_units, positions_v, bal, confusion=dest is probes)
                m.update(layer=layer, train_accuracy=float((p.predict(A) == tr["label"]).mean()), C=p.C,
                         selection=p.selection, n_iter=p.n_iter, converged=p.converged)
                dest.append(m)
                if bar is not None:
                    bar.update(1)
        best_base = max(b["accuracy"] for b in baselines.values())
        out[lt] = {
            "positions": positions_v, "balanced": binfo, "baselines": baselines, "probes": probes,
            "gain": [m["accuracy"] - best_base for m in probes],
            "majority": float(np.bincount(va["label"]).max() / len(va["label"])),
        }
        if combined:
            out[lt]["combined"] = combined_probes
            out[lt]["combined_gain"] = [m["accuracy"] - baselines["both"]["accuracy"] for m in combined_probes]
    if bar is not None:
        bar.close()
    timings[f"{scheme}_probe_s"] = round(time.perf_counter() - t0, 3)
    return out


def _findings(schemes: dict, layers: list[int], key_layer: int, model_label: str) -> list[dict]:
    """The post's two qualitative claims, measured at ``key_layer`` on each scheme's last-token labels."""
    out = []
    i = layers.index(key_layer)
    for s, rep in schemes.items():
        labs = rep["labels"]
        lt = "last" if "last" in labs else next(iter(labs))
        r = labs[lt]
        pr = r["probes"][i]
        pos_base = r["baselines"]["position"]["accuracy"]
        best = max(r["baselines"].values(), key=lambda b: b["accuracy"])
        bal, chance = pr["balanced_accuracy"], r["balanced"]["chance"]
        above = (pr["accuracy"] - pos_base >= 0.1) and (bal - chance >= 0.1 if not math.isnan(bal) else False)
        out.append(dict(
            scheme=s, label_token=lt, layer=key_layer,
            what=f"{s}: probe at residual point {key_layer} is well above the position-only baseline",
            ours=(f"probe {pr['accuracy']:.3f} vs position-only {pos_base:.3f} (best baseline {best['accuracy']:.3f}); "
                  f"position-balanced {bal:.3f} vs chance {chance:.3f}"),
            holds=bool(above),
        ))
        per = np.array(pr["per_index"], dtype=float)
        h = len(per) // 2
        early, late = float(np.nanmean(per[:h])), float(np.nanmean(per[len(per) - h:]))
        out.append(dict(
            scheme=s, label_token=lt, layer=key_layer,
            what=f"{s}: the probe is worse for later {rep['dataset']['unit']}s",
            ours=f"mean accuracy on indices 0-{h - 1}: {early:.3f}; on the last {h}: {late:.3f}",
            holds=bool(late < early),
        ))
    return out


def _checks(findings: list[dict], cfg, has_word: bool) -> list[dict]:
    """Published-vs-ours rows, only for GPT-2 small's shape (the post's model) and the word scheme."""
    if (cfg.n_layers, cfg.n_heads, cfg.d_model) != (12, 12, 768) or not has_word:
        return []
    published = {0: "well above the position-only baseline (read off the key plot; no accuracy given)",
                 1: "much worse for later words, still well above chance"}
    rows = [f for f in findings if f["scheme"] == "word"]
    return [dict(what=f["what"].replace("word: ", "GPT-2 small, layer 3 (point 4): "), published=published[j],
                 ours=f["ours"], reproduced=f["holds"],
                 note="the post probed the last token at layer 3 with sklearn defaults on unstandardised features")
            for j, f in enumerate(rows)]


def word_index(
    weights: Weights,
    *,
    layers: Sequence[int] | None = None,
    schemes: Sequence[str] = ("word",),
    n_units: int = 7,
    lengths: Sequence[int] = (1, 2, 3),
    dictionary_size: int = 20000,
    train_fraction: float = 0.8,
    n_train: int = 10000,
    n_val_prompts: int = 2560,
    prefix: str | dict[str, str] | None = None,
    prepend_bos: bool = True,
    label_tokens: Sequence[str] = ("last", "first"),
    C: float | str = "auto",
    Cs: Sequence[float] = DEFAULT_CS,
    max_iter: int = 1000,
    balance_min: int = 10,
    combined: bool = False,
    key_layer: int | None = None,
    words: Sequence[str] | None = None,
    tokenizer=None,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "cpu",
    dtype: str = "float32",
    progress: bool | None = None,
    runner: Runner | None = None,
) -> WordIndexResult:
    """Probe every requested residual point for the index of the unit each token is in.

    Defaults are the post's: seven words of 1-3 tokens after its prefix, 10,000 training
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
    >>> r.schemes["word"]["labels"]["last"]["probes"][1]["accuracy"]     # doctest: +SKIP
    """
    from ..models.tokenizer import Tokenizer

    cfg = weights.cfg
    layers = check_layers(cfg.n_layers, layers, weights.label)
    schemes = list(dict.fromkeys(schemes))
    if not schemes:
        raise InvalidInputError(f"no scheme given; use any of {', '.join(wp.SCHEMES)}")
    for s in schemes:
        if s not in wp.SCHEMES:
            raise InvalidInputError(f"unknown scheme '{s}'; use any of {', '.join(wp.SCHEMES)}")
    label_tokens = list(dict.fromkeys(label_tokens))
    if not label_tokens or any(lt not in LABEL_TOKENS for lt in label_tokens):
        raise InvalidInputError(f"label tokens must be 'last' and/or 'first', got {list(label_tokens)}")
    if isinstance(C, str) and C != "auto":
        try:
            C = float(C)
        except ValueError:
            raise InvalidInputError(f"the probe's C must be a positive number or 'auto', got '{C}'") from None
    if not isinstance(C, str) and not C > 0:
        raise InvalidInputError(f"the probe's C must be a positive number or 'auto', got {C}")
    if not Cs or any(not c > 0 for c in Cs):
        raise InvalidInputError(f"the candidate Cs must be positive numbers, got {list(Cs)}")
    if n_units < 2:
        raise InvalidInputError(f"need at least 2 units per prompt to tell them apart, got N={n_units}")
    if batch_size < 1:
        raise InvalidInputError(f"batch size must be positive, got {batch_size}")
    if key_layer is None:
        key_layer = min(layers, key=lambda l: (abs(l - max(1, round(cfg.n_layers / 3))), l))
    elif key_layer not in layers:
        raise InvalidInputError(f"key layer {key_layer} is not among the probed layers {layers}")
    require(weights, _needed_tensors(cfg.n_layers, max(layers)), "word-index probes (token inputs through the model)")
    tokenizer = tokenizer or Tokenizer.for_checkpoint(weights.source)
    runner = runner or Runner(weights, device, dtype)
    prefixes = prefix if isinstance(prefix, dict) else {s: prefix for s in schemes}
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    d = wp.word_dictionary(tokenizer, dictionary_size, lengths, train_fraction, seed, words=words)
    timings["dictionary_s"] = round(time.perf_counter() - t_start, 3)
    probe_kw = dict(C=C, Cs=tuple(Cs), max_iter=max_iter)
    out: dict[str, dict] = {}
    for s in schemes:
        train, val, _ = wp.make_dataset(
            tokenizer, s, n_units=n_units, lengths=lengths, n_train=n_train, n_val_prompts=n_val_prompts,
            prefix=prefixes.get(s), prepend_bos=prepend_bos, n_ctx=cfg.n_ctx, seed=seed, dictionary=d,
        )
        out[s] = {"dataset": _dataset_info(train, val, d, tokenizer)}
        out[s]["labels"] = _probe_scheme(runner, tokenizer, train, val, layers, label_tokens, probe_kw, balance_min,
                                         batch_size, seed, progress, timings, s, combined)
    timings["total_s"] = round(time.perf_counter() - t_start, 3)
    findings = _findings(out, layers, key_layer, weights.label)
    notes = []
    if not any(m["converged"] for s in out.values() for r in s["labels"].values() for m in r["probes"]):
        notes.append(f"no probe converged within max_iter={max_iter}; accuracies are those of the last iterate")
    options = dict(
        layers=layers, schemes=schemes, n_units=n_units, lengths=list(lengths), dictionary_size=dictionary_size,
        dictionary="wordfreq en (cleaned)" if words is None else f"{d.n_candidates} given words",
        train_fraction=train_fraction, n_train=n_train, n_val_prompts=n_val_prompts,
        prefix={s: out[s]["dataset"]["prefix"] for s in schemes}, prepend_bos=prepend_bos,
        label_tokens=label_tokens, C=C, Cs=list(Cs), max_iter=max_iter, standardize=True,
        holdout="20% of training prompts" if C == "auto" else None, balance_min=balance_min, combined=combined,
        key_layer=key_layer, tokenizer=tokenizer.source, batch_size=batch_size, seed=seed, device=str(device),
        dtype=str(dtype),
    )
    return WordIndexResult(
        model=weights.label, processing=weights.processing, options=options, layers=layers,
        hooks=[resid_hook(cfg.n_layers, l) for l in layers], key_layer=key_layer, schemes=out,
        findings=findings, checks=_checks(findings, cfg, "word" in out), notes=notes, timings=timings,
    )


# ----------------------------------------------------------------------------- summary / figures


def summarize(result: WordIndexResult) -> list[str]:
    """A few lines: per scheme and label token, probe accuracy by layer against the baselines."""
    lines = []
    for s, rep in result.schemes.items():
        ds = rep["dataset"]
        lines.append(f"{s} ({ds['n_units']} {ds['unit']}s, {ds['n_train_points']} train / {ds['n_val_points']} "
                     f"validation points, prompts {ds['prompt_tokens']['min']}-{ds['prompt_tokens']['max']} tokens):")
        for lt, r in rep["labels"].items():
            b = r["baselines"]
            accs = " ".join(f"{l}:{m['accuracy']:.3f}" for l, m in zip(result.layers, r["probes"]))
            lines.append(f"  {lt} token: probe by point {accs}")
            lines.append(f"    baselines position {b['position']['accuracy']:.3f}, space {b['space']['accuracy']:.3f}, "
                         f"both {b['both']['accuracy']:.3f}; majority {r['majority']:.3f}")
            if "combined" in r:
                comb = " ".join(f"{l}:{g:+.3f}" for l, g in zip(result.layers, r["combined_gain"]))
                lines.append(f"    residual + position + space over the 'both' baseline: {comb}")
            best = int(np.argmax(r["gain"]))
            bal = " ".join(f"{l}:{m['balanced_accuracy']:.3f}" for l, m in zip(result.layers, r["probes"]))
            lines.append(f"    best gain over baselines {r['gain'][best]:+.3f} at point {result.layers[best]}; "
                         f"position-balanced ({r['balanced']['n_points']} points, chance "
                         f"{r['balanced']['chance']:.3f}) {bal}")
    for f in result.findings:
        lines.append(f"{'holds' if f['holds'] else 'does not hold'}: {f['what']} ({f['ours']})")
    lines += result.notes
    return lines


def figures(result: WordIndexResult, out_dir: str | Path) -> list[Path]:
    """The key plot, accuracy by layer against the baselines, per-index accuracy, schemes compared."""
    from ..viz.word_index import word_index_figures

    return word_index_figures(result, Path(out_dir))
