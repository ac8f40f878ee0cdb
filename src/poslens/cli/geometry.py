"""`poslens spectra`, `poslens subspaces` and `poslens lens`: the geometry of weights and hidden states, and the logit lens (after the slides "Dissecting the Frog: a hands-on study of the GPT2 transformer")."""

from __future__ import annotations

import dataclasses

import click

from ..analyses.geometry.options import DEFAULT_LENGTHS, LensOptions, SpectraOptions, SphereOptions, SubspacesOptions
from ..errors import InvalidInputError
from .common import common, finish, seed_option, text_arg
from .options import build_options, options_flags


def _prompt(value: str | None, flag: str) -> str | None:
    """:func:`text_arg`, refusing a blank prompt."""
    value = text_arg(value, flag)
    if value is not None and not value.strip():
        raise InvalidInputError("the prompt is empty; give some text (or @FILE)")
    return value


def _forward_model(model: str, what: str, **require):
    """``model``'s weights and tokenizer, once it is known to run the forward pass ``what`` needs."""
    from ..analyses.geometry.probe import require_forward
    from ..models import load_weights
    from ..models.tokenizer import Tokenizer

    w = load_weights(model)
    require_forward(w, what(w.cfg) if callable(what) else what, **require)
    return w, Tokenizer.for_checkpoint(w.source)


def _lengths(spec: str) -> dict[str, int]:
    """'15,150,500' -> short/medium/long; 'a=20,b=40' -> named lengths."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise InvalidInputError("--lengths is empty; give token counts such as 15,150,500")
    names = ["short", "medium", "long"] if len(parts) == 3 else [f"len{i}" for i in range(len(parts))]
    out = {}
    for name, p in zip(names, parts):
        if "=" in p:
            name, p = (x.strip() for x in p.split("=", 1))
        if name in out:
            raise InvalidInputError(f"--lengths '{spec}' names {name!r} twice; give each prompt its own name")
        try:
            out[name] = int(p)
        except ValueError:
            raise InvalidInputError(f"--lengths '{spec}': '{p}' is not a whole number of tokens") from None
    return out


def _noise(spec: str):
    if spec in ("iterative", "total"):
        return spec
    try:
        return float(spec)
    except ValueError:
        raise InvalidInputError(f"--noise '{spec}' is not 'iterative', 'total' or a number (the noise variance)") from None


@click.command("spectra")
@common
@options_flags(SpectraOptions, aliases={"keep_spectra": " /--no-singular-values"})
@click.option("--sphere/--no-sphere", default=True, show_default=True,
              help="The positional sphere overlap (and embedding norms).")
@options_flags(SphereOptions, skip=("seed",), prefix="sphere-",
               aliases={"n_tokens": "--sphere-tokens", "n_trials": "--sphere-trials"})
@seed_option
def spectra_cmd(model, out, device, dtype, as_json, sphere, seed, **kw):
    """Singular-value spectra of every weight matrix (whole and per head), QK structure, sphere overlap.

    SVDs run in float64 (--dtype does not apply). On GPT-2 small it checks the slides'
    layer-5 figures.
    """
    from ..analyses.geometry import spectra as S
    from ..analyses.geometry import spheres as O
    from ..claims.dissecting_the_frog.geometry import with_claims
    from ..models import load_weights
    from ..viz.spectra import spectra_figures, sphere_figures

    sphere_opts = build_options(SphereOptions, kw, flag_prefix="sphere-", seed=seed)
    opts = build_options(SpectraOptions, kw)
    w = load_weights(model)
    r = with_claims(S.weight_spectra(w, opts, device=device), w)
    result = None
    if sphere and w.has("pos_embed.W_pos"):
        result = O.sphere_overlap(w, sphere_opts)
        checked = with_claims(result, w)
        r = dataclasses.replace(r, sphere_overlap=checked, checks=r.checks + checked.checks)
    lines = S.summarize(r) + (O.summarize(result) if result else [])  # the sphere's rows are in r.checks
    finish(r, out, "spectra", as_json, lines,
           lambda r, d: spectra_figures(r, d) + (sphere_figures(result, d) if result else []))


@click.command("subspaces")
@common
@click.option("--text", default=None, help="Prompt text, or @FILE (default: a built-in ~600-token passage).")
@click.option("--lengths", default=",".join(map(str, DEFAULT_LENGTHS.values())), show_default=True,
              help="Prompt lengths in tokens (prefixes of the text), capped at n_ctx; NAME=N allowed.")
@options_flags(SubspacesOptions, skip=("lengths", "seed"), aliases={"prepend_bos": "--bos"})
@seed_option
def subspaces_cmd(model, out, device, dtype, as_json, text, lengths, seed, **kw):
    """Hidden-state Gram spectra, signal subspaces, principal angles, overlap, union rank and MDS per layer."""
    from ..analyses.geometry import subspaces as S
    from ..claims.dissecting_the_frog.geometry import with_claims
    from ..viz.subspaces import subspace_figures

    opts = build_options(SubspacesOptions, {**kw, "noise": _noise(kw["noise"])}, seed=seed, lengths=_lengths(lengths))
    txt = _prompt(text, "--text")
    w, tok = _forward_model(model, "hidden-state subspaces (a token forward pass through every layer)")
    r = with_claims(S.hidden_subspaces(w, None, opts, text=txt, tokenizer=tok, device=device, dtype=dtype), w)
    finish(r, out, "subspaces", as_json, S.summarize(r), subspace_figures)


@click.command("lens")
@common
@click.option("--prompt", default=None,
              help="Prompt text, or @FILE (default: the slides' 'Einstein is best known for the theory of').")
@options_flags(LensOptions, aliases={"n_generate": "--generate", "prepend_bos": "--bos"})
def lens_cmd(model, out, device, dtype, as_json, prompt, **kw):
    """Logit lens: each layer's next-token distribution, its entropy and top-k; greedy generation."""
    from ..analyses.geometry import logit_lens as L
    from ..claims.dissecting_the_frog.geometry import with_claims
    from ..viz.logit_lens import lens_figures

    opts = build_options(LensOptions, kw)
    p = _prompt(prompt, "--prompt")
    w, tok = _forward_model(model, L.lens_needs, unembed=True)
    r = with_claims(L.logit_lens(w, p, tok, opts, device=device, dtype=dtype), w)
    finish(r, out, "lens", as_json, L.summarize(r), lens_figures)
