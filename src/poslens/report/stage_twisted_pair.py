"""Report stage: the twisted-pair distance mechanism (after the post “Twisted pair”).

The construction part does not depend on the model (it is rebuilt from its options and
cached like any stage); the model part reads W_pos and the attention weights (and layer
0's MLP where it exists). Neither harvests a shared forward pass: the construction runs
its own hand-built model, and the model part needs only layer-0 attention on positional
inputs.

>>> from poslens.report.stage_twisted_pair import STAGES
>>> [s.name for s in STAGES]
['twisted_pair']
"""

from __future__ import annotations

import dataclasses

from .orchestrate import Stage, lazy

SEED = "twisted_pair"
CODE = tuple(f"poslens.analyses.twisted_pair{s}" for s in
             ("", ".options", ".measure", ".curves", ".gates", ".build", ".verify", ".experiments", ".gpt2", ".report")) + (
    "poslens.analyses.helix", "poslens.analyses.helix.pca", "poslens.claims.attach", "poslens.viz.twisted_pair",
    "poslens.viz.common")


def _options(ctx) -> dict:
    from ..analyses.twisted_pair.options import Options  # the defaults, declared once

    o = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(Options(seed=ctx.seed)).items()}
    return {**o, "n": ctx.pick(128, 256, 512), "M": ctx.pick(8, 16, 32), "k": ctx.pick(4, 8, 8),
            "sweep_M": ctx.pick([], [4, 16, 64], list(Options.sweep_M)),
            "sweep_n": ctx.pick([], [128, 512], list(Options.sweep_n)),
            "sweep_k": ctx.pick([], [2, 8], list(Options.sweep_k)),
            "grid": ctx.pick(False, False, True),
            "noise_sigmas": ctx.pick([0.0, 0.1, 1.6], list(Options.noise_sigmas)),
            "gaps": ctx.pick([0.1, 1e-4], [0.1, 1e-3, 1e-5], list(Options.gaps)),
            "reuse_ns": ctx.pick([128, 256], [128, 256], list(Options.reuse_ns)),
            "reuse_Ms": ctx.pick([8, 32], [8, 16, 32, 64], list(Options.reuse_Ms)),
            "layers": ctx.pick([0], None, None),  # None: every layer's heads
            "n_components": min(Options.n_components, ctx.cfg.d_model)}


def _run(ctx, o):
    from ..analyses.twisted_pair import twisted_pair
    from ..claims.attach import with_published

    return with_published(twisted_pair(ctx.weights, device=ctx.device, model_dtype=ctx.dtype, **o), ctx.weights)


STAGES = [
    Stage(
        "twisted_pair", "Twisted-pair distance mechanism", _run, needs=("W_pos", "attn"), options=_options,
        figures=lazy("twisted_pair", "twisted_pair_figures", "viz"), summarize=lazy("twisted_pair", "summarize"),
        code=CODE, seed=SEED,
        about=(
            "A hand-built one-layer transformer (two heads copy x_j - x_i beside x_i; 2M + 2 ReLU neurons in pairs "
            "around M + 1 sentries) estimates j - i for points x_i = f(i/n) on a curve; it is run by the project's "
            "Runner and every estimate is compared with the post's (“Twisted pair”) error bound n L (1/(2M) + |i-j|/n) |i-j|/n / |f'(s)| "
            "(positions; L = sup |f''|). The noise rows compare the pair readout N+ - N- with one neuron under the same "
            "common-mode gate noise; the loop rows show the gate margin collapsing where a curve nearly meets itself; "
            "the reuse rows count the sentries a growing helix needs without and with the helix variant. The model "
            "part fits f' ~ W f + c to W_pos (R² against phase-randomised surrogates), ranks heads by how closely "
            "their OV image of x_i points along f'(i) (mean cosine; the fitted map itself is the ceiling), and, where "
            "layer 0's MLP exists, searches it for neuron pairs with near-identical inputs, opposite outputs and an "
            "input difference along x_j - x_i."
        ),
    )
]
