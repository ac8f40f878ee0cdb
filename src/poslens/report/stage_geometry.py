"""Report stages for the geometry of weights and hidden states, after the slides "Dissecting the Frog": one per analysis, so a checkpoint
runs whichever its tensors support (the partial GPT-2 small: spectra and positional norms).

>>> from poslens.report import build_report
>>> from poslens.report.stage_geometry import STAGES
>>> build_report(["tiny"], "out", stages=STAGES, size="quick", progress=False)   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses

from .orchestrate import Context, Harvest, Stage, lazy

SEED = "frog"
CLAIMS = "poslens.claims.dissecting_the_frog.geometry"


def _claimed(ctx: Context, result):
    """The result with the slides' published-vs-ours rows (the analyses measure only)."""
    from ..claims.dissecting_the_frog.geometry import with_claims

    return with_claims(result, ctx.weights)


# ---- weight spectra -------------------------------------------------------------------------


def _spectra_options(ctx: Context) -> dict:
    from ..analyses.geometry.options import SpectraOptions  # the defaults, declared once

    return {**dataclasses.asdict(SpectraOptions()), "matrices": list(SpectraOptions.matrices),
            "per_head": ctx.pick(False, True)}


def _spectra_run(ctx: Context, opts: dict):
    from ..analyses.geometry.spectra import weight_spectra

    return _claimed(ctx, weight_spectra(ctx.weights, device=ctx.device, **opts))


# ---- sphere overlap and embedding norms -------------------------------------------------------


def _sphere_options(ctx: Context) -> dict:
    from ..analyses.geometry.options import SphereOptions

    return {**dataclasses.asdict(SphereOptions(seed=ctx.seed)), "n_tokens": ctx.pick(300, 1000),
            "n_trials": ctx.pick(3, 20)}


def _sphere_run(ctx: Context, opts: dict):
    from ..analyses.geometry.spheres import sphere_overlap

    return _claimed(ctx, sphere_overlap(ctx.weights, **opts))


# ---- hidden-state subspaces -------------------------------------------------------------------


def _sub_options(ctx: Context) -> dict:
    from ..analyses.geometry.options import DEFAULT_LENGTHS, SubspacesOptions

    opts = dataclasses.asdict(SubspacesOptions(seed=ctx.seed))
    del opts["whole"]  # the shared pass holds prefixes of the default passage
    return {**opts, "lengths": ctx.pick({k: DEFAULT_LENGTHS[k] for k in ("short", "medium")}, dict(DEFAULT_LENGTHS))}


def _sub_tokens(ctx: Context, opts: dict) -> list[int]:
    """The default passage's first tokens, as many as the longest (capped) prompt."""
    from ..analyses.geometry.probe import prompt_tokens
    from ..analyses.geometry.subspaces import DEFAULT_TEXT, plan_lengths

    ids = ctx.memo(("geometry-text", opts["prepend_bos"]), lambda: prompt_tokens(ctx.tokenizer, DEFAULT_TEXT, opts["prepend_bos"]))
    plan, _ = plan_lengths(len(ids), ctx.cfg.n_ctx, opts["lengths"])
    return ids[: max(plan.values())]


def _sub_dataset(ctx: Context, opts: dict) -> str:
    return f"geometry-text:len={len(_sub_tokens(ctx, opts))}:bos={int(opts['prepend_bos'])}"


def _sub_harvests(ctx: Context, opts: dict) -> list[Harvest]:
    import torch

    from ..analyses.geometry.probe import probe_hooks

    ids = _sub_tokens(ctx, opts)
    return [Harvest(_sub_dataset(ctx, opts), lambda c: {"tokens": torch.tensor([ids])},
                    tuple(probe_hooks(ctx.cfg.n_layers, opts["final_ln"])))]


def _sub_run(ctx: Context, opts: dict):
    from ..analyses.geometry.subspaces import hidden_subspaces

    # The analysis tokenises the same passage; the shared pass holds its longest prefix.
    return _claimed(ctx, hidden_subspaces(ctx.weights, tokenizer=ctx.tokenizer,
                                          states=ctx.activations(_sub_dataset(ctx, opts)), **opts))


# ---- logit lens -------------------------------------------------------------------------------


def _lens_options(ctx: Context) -> dict:
    from ..analyses.geometry.logit_lens import SLIDE_PROMPT
    from ..analyses.geometry.options import LensOptions

    return {"prompt": SLIDE_PROMPT, **dataclasses.asdict(LensOptions()), "top_k": ctx.pick(5, 10),
            "n_generate": ctx.pick(5, 10)}


def _lens_harvests(ctx: Context, opts: dict) -> list[Harvest]:
    import torch

    from ..analyses.geometry.probe import probe_hooks, prompt_tokens

    ids = prompt_tokens(ctx.tokenizer, opts["prompt"], opts["prepend_bos"])
    return [Harvest(f"geometry-lens:{opts['prompt']}:bos={int(opts['prepend_bos'])}",
                    lambda c: {"tokens": torch.tensor([ids])}, tuple(probe_hooks(ctx.cfg.n_layers, final_ln=False)))]


def _lens_run(ctx: Context, opts: dict):
    from ..analyses.geometry.logit_lens import logit_lens

    acts = ctx.activations(f"geometry-lens:{opts['prompt']}:bos={int(opts['prepend_bos'])}")
    lens = {k: v for k, v in opts.items() if k != "prompt"}
    return _claimed(ctx, logit_lens(ctx.weights, opts["prompt"], ctx.tokenizer, device=ctx.device, dtype=ctx.dtype,
                                    states=acts, **lens))


STAGES = [
    Stage(
        "geometry_spectra", "Weight spectra and QK structure", _spectra_run, needs=("attn",), options=_spectra_options,
        validates=lazy("geometry.options", "SpectraOptions"), figures=lazy("spectra", "spectra_figures", "viz"),
        summarize=lazy("geometry.spectra", "summarize"),
        code=("poslens.analyses.geometry.spectra", CLAIMS, "poslens.viz.spectra"), seed=SEED,
        about=("Singular values of every layer's W_Q, W_K, W_V, W_O (whole d_model x d_model and per head), W_in and "
               "W_out. Condition number sigma_max/sigma_min and log-volume sum(log sigma) measure anisotropy; the "
               "effective rank exp(H) (H the entropy of sigma/sum sigma) counts the directions a matrix really uses, "
               "out of min(shape). QK: d(A,B) = |A-B|/(|A|+|B|+|A-B|) between M_h = W_Q^h W_K^hT and M_h^T (0: the "
               "head's bilinear form is symmetric, 0.5: antisymmetric) and between M_h, rescaled to the identity's "
               "norm, and the identity (0: attention would be a plain dot product). On GPT-2 small the slides' (“Dissecting the Frog”) "
               "layer-5 printout is checked."),
    ),
    Stage(
        "geometry_sphere", "Positional spheres: overlap and embedding norms", _sphere_run, needs=("W_pos",),
        options=_sphere_options, validates=lazy("geometry.options", "SphereOptions"),
        figures=lazy("spectra", "sphere_figures", "viz"),
        summarize=lazy("geometry.spheres", "summarize"),
        code=("poslens.analyses.geometry.spheres", CLAIMS, "poslens.viz.spectra"), seed=SEED,
        about=("Adding a positional vector moves a token embedding T onto a sphere of radius |P| around it. For "
               "random tokens, each at its own position, a pair 'overlaps' when |P_i|+|P_j| exceeds |T_i-T_j|; the "
               "volume fraction is the shared volume of two balls of the mean radius over one ball "
               "(regularised incomplete beta, D dimensions). Row-norm statistics of W_pos (and W_E) come with it; "
               "without W_E only the positional norms are computed."),
    ),
    Stage(
        "geometry_subspaces", "Hidden-state subspaces across layers", _sub_run, needs=("tokens", "tokenizer"),
        options=_sub_options, validates=lazy("geometry.options", "SubspacesOptions"), harvests=_sub_harvests,
        figures=lazy("subspaces", "subspace_figures", "viz"),
        summarize=lazy("geometry.subspaces", "summarize"),
        code=("poslens.analyses.geometry.subspaces", CLAIMS, "poslens.viz.subspaces"), seed=SEED,
        about=("For prompts of about 15, 150 and 500 tokens (prefixes of one passage), the centred hidden states at "
               "every layer: Gram spectrum, signal dimensions above the Marchenko-Pastur edge, principal angles "
               "between consecutive layers' signal subspaces (their sum in degrees; overlap = share of angles with "
               "cos > 0.9), effective dimensionality (participation ratio), the rank of the union of all layers' "
               "subspaces (share of d_model explored) and an MDS map of the layers by Grassmann distance."),
    ),
    Stage(
        "geometry_lens", "Logit lens", _lens_run, needs=("tokens", "W_U", "tokenizer"), options=_lens_options,
        harvests=_lens_harvests, figures=lazy("logit_lens", "lens_figures", "viz"),
        summarize=lazy("geometry.logit_lens", "summarize"),
        code=("poslens.analyses.geometry.logit_lens", CLAIMS, "poslens.viz.logit_lens"), seed=SEED,
        about=("Each layer's residual stream read through ln_final and the unembedding as a next-token "
               "distribution: its entropy in nats at the last token and averaged over tokens, the top tokens, the "
               "KL divergence from the model's output and greedy generation with the top-k logits of each step."),
    ),
]
