"""Report stage: the twisted-pair distance mechanism (after the post “Twisted pair”).

The construction part does not depend on the model (it is rebuilt from its options and
cached like any stage); the model part reads W_pos and the attention weights (and layer
0's MLP where it exists). Neither harvests a shared forward pass: the construction runs
its own hand-built model, and the model part needs only layer-0 attention on positional
inputs.

>>> from poslens.report.stage_twisted_pair import STAGES   # doctest: +SKIP
>>> [s.name for s in STAGES]                               # doctest: +SKIP
['twisted_pair']
"""

from __future__ import annotations

from pathlib import Path

from .orchestrate import Stage, lazy

SEED = "twisted_pair"
CODE = tuple(f"poslens.analyses.twisted_pair{s}" for s in
             ("", ".measure", ".curves", ".gates", ".build", ".verify", ".experiments", ".gpt2", ".report")) + (
    "poslens.analyses.helix", "poslens.analyses.helix.pca", "poslens.viz.twisted_pair", "poslens.viz.common")


def _options(ctx) -> dict:
    return {
        "curve": "helix",
        "n": ctx.pick(128, 256, 512),
        "M": ctx.pick(8, 16, 32),
        "k": ctx.pick(4, 8, 8),
        "sweep_M": ctx.pick([], [4, 16, 64], [4, 8, 16, 32, 64]),
        "sweep_n": ctx.pick([], [128, 512], [128, 256, 512, 1024]),
        "sweep_k": ctx.pick([], [2, 8], [1, 2, 4, 8, 16]),
        "grid": ctx.pick(None, None, {"ns": [128, 512], "ks": [2, 8], "Ms": [8, 32]}),
        "noise_sigmas": ctx.pick([0.0, 0.1, 1.6], [0.0, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6]),
        "gaps": ctx.pick([0.1, 1e-4], [0.1, 1e-3, 1e-5], [0.1, 1e-2, 1e-3, 1e-4, 1e-5]),
        "reuse_ns": ctx.pick([128, 256], [128, 256], [64, 128, 192, 256, 512, 1024]),
        "reuse_Ms": ctx.pick([8, 32], [8, 16, 32, 64], [4, 8, 16, 32, 64, 128, 256]),
        "layers": ctx.pick([0], None, None),  # None: every layer's heads
        "first_position": 1,
        "n_components": min(6, ctx.cfg.d_model),
        "scheme": "savgol",
        "window": 51,
        "seed": ctx.seed,
    }


def _run(ctx, o):
    from ..analyses.twisted_pair import twisted_pair

    return twisted_pair(
        ctx.weights, curve=o["curve"], n=o["n"], M=o["M"], k=o["k"], sweep_M=o["sweep_M"], sweep_n=o["sweep_n"],
        sweep_k=o["sweep_k"], grid_spec=o["grid"], noise_sigmas=o["noise_sigmas"], gaps=o["gaps"],
        reuse_ns=o["reuse_ns"], reuse_Ms=o["reuse_Ms"], seed=o["seed"],
        gpt2_options={"layers": o["layers"], "first_position": o["first_position"], "n_components": o["n_components"],
                      "scheme": o["scheme"], "window": o["window"], "device": ctx.device, "dtype": ctx.dtype},
    )


def _figures(result, out):
    from ..viz.twisted_pair import twisted_pair_figures

    return twisted_pair_figures(result, Path(out))


STAGES = [
    Stage(
        "twisted_pair", "Twisted-pair distance mechanism", _run, needs=("W_pos", "attn"), options=_options,
        figures=_figures, summarize=lazy("twisted_pair", "summarize"), code=CODE,
        seed=SEED,
        about=(
            "A hand-built one-layer transformer (two heads copy x_j - x_i beside x_i; 2M + 2 ReLU neurons in pairs "
            "around M + 1 sentries) estimates j - i for points x_i = f(i/n) on a curve; it is run by the project's "
            "Runner and every estimate is compared with the post's (“Twisted pair”) error bound n L (1/(2M) + |i-j|/n) |i-j|/n / |f'(s)| "
            "(positions; L = sup |f''|). The noise rows compare the pair readout N+ - N- with one neuron under the same "
            "common-mode gate noise; the loop rows show the gate margin collapsing where a curve nearly meets itself; "
            "the reuse rows count the sentries a growing helix needs without and with the helix variant. The model "
            "part fits f' ~ W f + c to W_pos (R^2 against phase-randomised surrogates), ranks heads by how closely "
            "their OV image of x_i points along f'(i) (mean cosine; the fitted map itself is the ceiling), and, where "
            "layer 0's MLP exists, searches it for neuron pairs with near-identical inputs, opposite outputs and an "
            "input difference along x_j - x_i."
        ),
    )
]
