"""Report stage: the geometry of W_pos (seeds 001, 004 and 000's helix claim).

Weight-only: it reads ``wpe.weight`` (and ``wte.weight`` when the checkpoint has it, for
the token/position comparisons) and runs no forward pass.

>>> from poslens.report.stage_helix import STAGES
>>> [s.name for s in STAGES]
['helix']
"""

from __future__ import annotations

import dataclasses

from .orchestrate import Stage, lazy

SEED = "helix,frog,twisted_pair"
CODE = tuple(f"poslens.analyses.helix{s}" for s in ("", ".options", ".measure", ".pca", ".fits", ".structure", ".curve", ".family",
                                                    ".summary")) + (
    "poslens.claims.attach", "poslens.claims.helix_post", "poslens.claims.dissecting_the_frog", "poslens.claims.twisted_pair_post",
    "poslens.analyses.sinusoidal", "poslens.viz.helix", "poslens.viz.common")


def _options(ctx) -> dict:
    from ..analyses.helix.options import Options  # the defaults, declared once

    opts = dataclasses.asdict(Options(seed=ctx.seed))
    for k in ("start", "stop", "tokens", "allow_fixed"):  # the report analyses every position, W_E when present
        del opts[k]
    return {**opts, "n_traces": ctx.pick(4, 6, 6), "cosine_size": ctx.pick(32, 64, 128),
            "token_sample": ctx.pick(256, 1024, 4096)}


def _run(ctx, opts):
    from ..analyses.helix import helix
    from ..claims.attach import with_published

    return with_published(helix(ctx.weights, **opts), ctx.weights)


STAGES = [
    Stage(
        "helix",
        "Positional geometry: the helix of W_pos",
        _run,
        needs=("W_pos",),
        options=_options,
        validates=lazy("helix.options", "Options"),
        figures=lazy("helix", "figures", "viz"),
        summarize=lazy("helix", "summarize"),
        code=CODE,
        seed=SEED,
        about=(
            "PCA of the learned positional embedding W_pos over positions 1..n_ctx-1 (position 0, the BOS slot, "
            "left out as in “GPT-2's positional embedding matrix is a helix”), centred: the variance share of each component and how many reach 90%, "
            "for all positions and for that post's two truncations (from position 100; below it). A helix "
            "c + a t + u cos(wt) + v sin(wt) is fitted to the top-3 coordinates (period in positions, radius, pitch = "
            "rise per turn, R²), and a linear ODE f'(t) = A f(t) + c by least squares on finite differences "
            "(central; and Savitzky-Golay-smoothed), whose R² tests the claim of “Twisted pair” that a helix lets an attention "
            "head compute f' linearly; A's imaginary eigenvalues give the rotation periods. Row norms (the “Dissecting the Frog” slides' "
            "mean/std/min/max), cosine similarity between rows by offset, isolated positions, the early positions' "
            "'fraying' out of the late subspace, W_E's share inside W_pos's top-3 subspace, and the same metrics for "
            "the sinusoidal encoding of the same shape complete the picture. 'Published vs ours' compares GPT-2 "
            "small's published figures where the model has its shape."
        ),
    )
]
