"""Benchmark: word-index probes on a GPT-2-small-shaped model, all 13 residual points.

Target: the default dataset (10,000 training points, 2,560 validation prompts of
seven words) harvested at all 13 residual points of a gpt2-small-shaped random-weight
model and probed (every point, both label tokens, the three baselines, C chosen per
probe) in under 10 minutes on 2 cores; the harvest must not run layers past the deepest
point requested.

The weights are random (12 layers, 12 heads, d_model 768, GPT-2's tokenizer) and held in
memory, so the numbers are about speed, not about what GPT-2 knows. The stopping check
harvests the same prompts to point 4 and to point 12 and prints which blocks' tensors
each run read and the time ratio.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_word_index.py
    python benchmarks/bench_word_index.py --n-train 1400 --n-val-prompts 200   # a quick look
    python benchmarks/bench_word_index.py --against-sklearn     # batched torch probes vs scikit-learn, on tiny

``--against-sklearn`` fits the report's default probes on the embedded ``tiny`` model
(2,100 training points, 300 validation prompts, every residual point, C from 0.01..10)
twice: with :func:`poslens.analyses.word_index.fit_probes` (all points and Cs in one
batch) and with scikit-learn's ``LogisticRegression`` one point and one C at a time (a
warm-started C path, the same held-out choice of C, the refit started from it), and prints
both accuracies, their difference and both times.
"""

from __future__ import annotations

import argparse
import os
import re
import time

import numpy as np
import torch

from poslens.analyses import word_index as WI
from poslens.data import word_prompts as wp
from poslens.models import Runner, Weights
from poslens.models.tokenizer import Tokenizer
from poslens.testing import gpt2_small_config, random_state_dict

TARGET_S = 600.0


def random_gpt2_small(seed: int) -> Weights:
    cfg = gpt2_small_config()
    return Weights.from_state_dict(random_state_dict(cfg, seed=seed), cfg, label="gpt2-small-shaped (random)")


def blocks_read(w: Weights) -> list[int]:
    return sorted({int(m.group(1)) for r in w.source.reads if (m := re.match(r"h\.(\d+)\.", r))})


def stopping_check(tok: Tokenizer, n_prompts: int, seed: int) -> None:
    d = wp.word_dictionary(tok, seed=seed)
    ps = wp.make_prompts(tok, d, "word", n_prompts=n_prompts, seed=seed)
    pts = ps.points("last")
    times = {}
    for deepest in (4, 12):
        w = random_gpt2_small(seed)
        runner = Runner(w)
        WI.harvest(runner, ps.tokens[:2], pts["prompt"][:2], pts["pos"][:2], [deepest])  # weights loaded, warm
        t0 = time.perf_counter()
        WI.harvest(runner, ps.tokens, pts["prompt"], pts["pos"], list(range(deepest + 1)))
        times[deepest] = time.perf_counter() - t0
        b = blocks_read(w)
        print(f"  harvest to point {deepest:2d}: {times[deepest]:6.2f} s for {n_prompts} prompts; "
              f"blocks whose weights were read: {f'{b[0]}..{b[-1]}' if b else 'none'}")
    print(f"  time ratio point 4 / point 12: {times[4] / times[12]:.2f} (4 of 12 blocks run: 0.33 expected)")


def sklearn_probe(X, y, groups, Cs, seed=0, holdout=0.2, max_iter=1000, tol=1e-4):
    """The reference: scikit-learn, standardised, C chosen on held-out prompts along a warm-started path."""
    import copy
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(X)
    Xs = sc.transform(X)
    ug = np.unique(groups)
    held = np.random.default_rng(seed).choice(ug, size=max(1, int(round(holdout * len(ug)))), replace=False)
    mask = np.isin(groups, held)
    m = LogisticRegression(C=Cs[0], max_iter=max_iter, tol=tol, warm_start=True)
    best, start = (-1.0, Cs[0]), None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for c in sorted(Cs):
            m.set_params(C=c)
            m.fit(Xs[~mask], y[~mask])
            acc = float((m.predict(Xs[mask]) == y[mask]).mean())
            if acc > best[0] + 1e-12:
                best, start = (acc, c), copy.deepcopy(m)
        start.fit(Xs, y)
    return lambda Z: start.predict(sc.transform(Z)), best[1]


def against_sklearn(seed: int) -> None:
    from poslens.models import load_weights

    w = load_weights("tiny")
    tok = Tokenizer.for_checkpoint(w.source)
    d = wp.word_dictionary(tok, seed=seed)
    train, val, _ = wp.make_dataset(tok, "word", n_train=2100, n_val_prompts=300, n_ctx=w.cfg.n_ctx, seed=seed,
                                    dictionary=d)
    tp, vp = train.points("last"), val.points("last")
    runner = Runner(w)
    points = list(range(w.cfg.n_layers + 1))
    Xt = WI.harvest(runner, train.tokens, tp["prompt"], tp["pos"], points)
    Xv = WI.harvest(runner, val.tokens, vp["prompt"], vp["pos"], points)
    Cs = (0.01, 0.1, 1.0, 10.0)
    t0 = time.perf_counter()
    ours = WI.fit_probes(Xt, tp["label"], tp["prompt"], Cs=Cs, seed=seed)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = [sklearn_probe(Xt[i], tp["label"], tp["prompt"], Cs, seed) for i in range(len(points))]
    t_ref = time.perf_counter() - t0
    print(f"tiny, {len(tp['label'])} training / {len(vp['label'])} validation points, Cs {Cs}:")
    worst = 0.0
    for i, (p, (pred, c)) in enumerate(zip(ours, ref)):
        a, b = float((p.predict(Xv[i]) == vp["label"]).mean()), float((pred(Xv[i]) == vp["label"]).mean())
        worst = max(worst, abs(a - b))
        print(f"  point {i}: torch {a:.4f} (C={p.C:g}, {p.n_iter} iterations)  scikit-learn {b:.4f} (C={c:g})  "
              f"difference {a - b:+.4f}")
    print(f"largest difference {worst:.4f} (target <= 0.005); fits: torch {t_ours:.1f} s, scikit-learn {t_ref:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-train", type=int, default=10000)
    ap.add_argument("--n-val-prompts", type=int, default=2560)
    ap.add_argument("--label-tokens", default="last,first")
    ap.add_argument("--check-prompts", type=int, default=64, help="prompts for the stopping check")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--against-sklearn", action="store_true", help="compare the probes with scikit-learn's on tiny")
    args = ap.parse_args()
    if args.against_sklearn:
        against_sklearn(args.seed)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s) "
          f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), {os.cpu_count()} CPUs")
    tok = Tokenizer.gpt2()

    print("stopping check (the harvest runs only the blocks below the deepest point):")
    stopping_check(tok, args.check_prompts, args.seed)

    t0 = time.perf_counter()
    w = random_gpt2_small(args.seed)
    t_build = time.perf_counter() - t0
    print(f"random gpt2-small-shaped weights built in memory in {t_build:.1f} s (not counted)")
    t0 = time.perf_counter()
    r = WI.word_index(w, tokenizer=tok, n_train=args.n_train, n_val_prompts=args.n_val_prompts,
                      label_tokens=tuple(args.label_tokens.split(",")), seed=args.seed, progress=True)
    total = time.perf_counter() - t0
    ds = r.schemes["word"].dataset
    tm = r.timings
    labs = r.schemes["word"].labels.values()
    n_probes, n_base = sum(len(x.probes) for x in labs), sum(len(x.baselines) for x in labs)
    n_fits = sum(len(m.selection) + 1 for x in labs for m in [*x.probes, *x.baselines.values()])
    print(f"dataset: {ds.n_train_points} train / {ds.n_val_points} validation points, "
          f"{ds.n_train_prompts + ds.n_val_prompts} prompts of {ds.prompt_tokens['min']}-"
          f"{ds.prompt_tokens['max']} tokens (mean {ds.prompt_tokens['mean']:.1f})")
    print(f"residual points probed: {len(r.layers)} ({r.hooks[0]} .. {r.hooks[-1]}); label tokens "
          f"{r.options['label_tokens']}; {n_probes} probes + {n_base} baselines ({n_fits} logistic-regression fits), "
          f"C chosen from {r.options['Cs']}")
    print(f"dictionary {tm['dictionary_s']:.1f} s | harvest {tm['word_harvest_s']:.1f} s | "
          f"probes + baselines {tm['word_probe_s']:.1f} s | total {total:.1f} s")
    for lt, x in r.schemes["word"].labels.items():
        print(f"  {lt}: accuracy by point " + " ".join(f"{m.accuracy:.2f}" for m in x.probes)
              + f"; position baseline {x.baselines['position'].accuracy:.2f}")
    verdict = "meets" if total < TARGET_S else "MISSES"
    print(f"harvest + probes of all 13 points: {total:.1f} s = {total / 60:.2f} min; {verdict} the "
          f"{TARGET_S / 60:.0f}-minute target (on {torch.get_num_threads()} thread(s))")


if __name__ == "__main__":
    main()
