"""Benchmark: a 12-layer x 128-position residual-stream patching sweep on a GPT-2-small-shaped model.

Random weights (gpt2-small shape: 12 layers, 12 heads, d_model 768, d_mlp 3072, vocab
50257); one clean/corrupted pair of 128 tokens differing at a handful of positions; metric
= logit difference at the final position (read from ``ln_final.hook_normalized`` and two
columns of W_U). Target: under 5 minutes on 2 cores.

Prints the sweep's wall time with the suffix method (positions at and after the patch
only), the time of a sample of cells run in full from the patched layer (the same cells,
extrapolated to the whole sweep), their ratio, the matmul roofline of this machine, and
the largest difference between the two methods on the sampled cells.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/bench_causal.py [--positions 128] [--full-sample 16]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import environment, matmul_flops  # noqa: E402

from poslens.analyses.causal.metrics import logit_diff  # noqa: E402
from poslens.analyses.causal.patching import patch_sweep  # noqa: E402
from poslens.models import Runner, Weights  # noqa: E402
from poslens.testing import gpt2_small_config, random_state_dict  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--positions", type=int, default=128)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--full-sample", type=int, default=16, help="positions whose cells are also run in full (0: skip)")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    cfg = gpt2_small_config(n_layers=args.layers)
    w = Weights.from_state_dict(random_state_dict(cfg, seed=0), cfg, label="random gpt2-small shape")
    runner = Runner(w, dtype=args.dtype)
    P = args.positions
    g = torch.Generator().manual_seed(1)
    clean = torch.randint(0, cfg.d_vocab, (1, P), generator=g)
    corrupted = clean.clone()
    for p in (3, P // 3, P // 2, P - 5):
        corrupted[0, p] = (clean[0, p] + 17) % cfg.d_vocab
    metric = logit_diff(w, good=1000, bad=2000)  # any two tokens: random weights have no preferred answer
    print(f"environment: {environment()}")
    print(f"roofline: {matmul_flops() / 1e9:.1f} GFLOP/s (fp32 matmul 1024x768x3072)")
    runner.run(clean[:, :8], hooks=["ln_final.hook_normalized"])  # prepare weights outside the timing

    t0, c0 = time.perf_counter(), time.process_time()
    r = patch_sweep(runner, clean, corrupted, metric, hook="resid_pre", method="suffix", progress=False)
    t_suffix, c_suffix = time.perf_counter() - t0, time.process_time() - c0
    print(f"suffix sweep: {len(r.layers)} layers x {len(r.columns)} positions = {r.cells_run} cells in {t_suffix:.1f} s "
          f"wall, {c_suffix:.1f} s CPU on {torch.get_num_threads()} thread(s) "
          f"({'PASS' if t_suffix < 300 else 'FAIL'}: target < 300 s wall)")
    if c_suffix > 1.2 * t_suffix * torch.get_num_threads() or t_suffix > 1.3 * c_suffix / torch.get_num_threads():
        print("note: wall and CPU time differ: the machine was shared during the run; CPU time is what the sweep costs")

    if args.full_sample:
        step = max(1, P // args.full_sample)
        sample = list(range(0, P, step))[: args.full_sample]
        c0 = time.process_time()
        f = patch_sweep(runner, clean, corrupted, metric, hook="resid_pre", method="full", positions=sample, progress=False)
        t_full = (time.process_time() - c0) * P / len(sample)
        cols = [r.columns.index(p) for p in sample]
        diff = np.abs(np.array(r.raw)[:, cols] - np.array(f.raw)).max()
        print(f"full method on {len(sample)} sampled positions, extrapolated to {P}: {t_full:.1f} s CPU "
              f"(suffix is {t_full / c_suffix:.2f}x faster in CPU time)")
        print(f"largest |suffix - full| on the sampled cells: {diff:.2e} (metric scale {abs(r.clean_metric - r.corrupted_metric):.3g})")


if __name__ == "__main__":
    main()
