"""Benchmark: spectra of every weight matrix of a GPT-2-small-shaped random model.

Target: under 30 s on 2 cores for every layer's W_Q, W_K, W_V, W_O (whole and
per head), W_in, W_out, plus the QK distances of every head. With ``--peer`` it also times
the obvious alternative, ``torch.linalg.svdvals`` in float64 on the same whole and MLP
matrices, in the same run.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_spectra.py [--peer]
"""

from __future__ import annotations

import argparse
import os
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer", action="store_true", help="also time torch.linalg.svdvals on the same matrices")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from poslens.analyses.geometry.spectra import MATRICES, weight_spectra, whole_matrix
    from poslens.models import Weights
    from poslens.testing import gpt2_small_config, random_state_dict

    cfg = gpt2_small_config()
    t0 = time.perf_counter()
    sd = random_state_dict(cfg, seed=args.seed)
    sd.pop("wte.weight")  # spectra never read the embedding
    w = Weights.from_state_dict(sd, cfg, label="random gpt2-small shape")
    t_build = time.perf_counter() - t0

    t0 = time.perf_counter()
    r = weight_spectra(w, per_head=True, qk=True, keep_spectra=True)
    t_ours = time.perf_counter() - t0
    n_whole = sum(len(v) for v in r.matrices.values())
    n_heads = sum(len(v) for v in r.heads.values())
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"model: {cfg.n_layers} layers x {cfg.n_heads} heads, d_model {cfg.d_model}, d_mlp {cfg.d_mlp} "
          f"(random weights, built in {t_build:.1f} s)")
    print(f"poslens weight_spectra: {n_whole} whole matrices + {n_heads} per-head blocks + {len(r.qk)} QK heads "
          f"in {t_ours:.2f} s (OMP_NUM_THREADS={threads}, torch threads {torch.get_num_threads()}); "
          f"target < 30 s: {'met' if t_ours < 30 else 'NOT met'}")
    if args.peer:
        mats = [whole_matrix(w, m, l) for m in MATRICES for l in range(cfg.n_layers)]
        t0 = time.perf_counter()
        for W in mats:
            torch.linalg.svdvals(W.double())
        t_peer = time.perf_counter() - t0
        t0 = time.perf_counter()
        weight_spectra(w, per_head=False, qk=False)
        t_same = time.perf_counter() - t0
        print(f"peer torch.linalg.svdvals (float64), the same {len(mats)} whole matrices: {t_peer:.2f} s; "
              f"poslens on them: {t_same:.2f} s; ratio peer/poslens {t_peer / t_same:.2f}")


if __name__ == "__main__":
    main()
