"""`poslens twisted-pair`: build the hand-made distance transformer, verify it, test the post's claims, look in a model."""

from __future__ import annotations

from pathlib import Path

import click

from ..analyses.twisted_pair.options import Options
from ..claims.attach import with_published
from ..errors import InvalidInputError
from .common import DEFAULT_MODEL, device_option, emit, json_option, out_dir, out_option
from .options import build_options, options_flags


def _params(items: tuple[str, ...]) -> dict:
    """'turns=4' 'drift=0.3,0,0.5' -> {'turns': 4, 'drift': [0.3, 0.0, 0.5]}."""
    out = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError(f"--param '{item}' is not KEY=VALUE (e.g. turns=4)")
        vals = []
        for v in val.split(","):
            try:
                vals.append(int(v) if v.strip().lstrip("-").isdigit() else float(v))
            except ValueError:
                raise InvalidInputError(f"--param {key}: '{v}' is not a number") from None
        out[key.strip()] = vals[0] if len(vals) == 1 else vals
    return out


@click.command("twisted-pair")
@click.option("--param", "params", multiple=True,
              help="Curve parameter KEY=VALUE, repeatable (turns=2, gap=0.01, drift=0.3,0,0.5).")
@options_flags(Options, skip=("curve_params", "seed"),
               aliases={"noise_sigmas": "--noise", "reuse_ns": "--reuse-n", "n_components": "--components"})
@click.option("--model", "-m", "model", default=DEFAULT_MODEL, show_default=True,
              help="Model for the GPT-2 part: a name from `poslens models`, a hub id, or a checkpoint directory.")
@click.option("--no-model", is_flag=True, help="Skip the GPT-2 part.")
@click.option("--save-model", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write the construction as a checkpoint directory (+ twisted_pair.json) here.")
@device_option
@out_option
@json_option
@click.option("--seed", default=0, show_default=True)
def twisted_pair_cmd(params, model, no_model, save_model, device, out, as_json, seed, **kw):
    """Build the twisted-pair post's construction as real weights, check it against the post's error
    bound, test the post's claims, and look for the mechanism in --model."""
    from ..analyses import twisted_pair as T
    from ..analyses.twisted_pair import build, check_sizes

    o = build_options(Options, kw, curve_params=_params(params), seed=seed)
    check_sizes(o.n, o.M, o.k, o.variant)
    from ..models import load_weights

    weights = None if no_model else load_weights(model)
    r = with_published(T.twisted_pair(weights, o, device=device), weights)
    d = out_dir(out, "twisted-pair")
    if save_model is not None:  # first: a --save-model that fails leaves no figures beside an earlier result.json
        con = build(T.make_curve(o.curve, **o.curve_params), o.n, o.M, o.k, variant=o.variant, gate=o.gate,
                    signal_fraction=o.signal_fraction, period=o.period)
        try:
            saved = con.save(save_model)
        except OSError as exc:
            raise InvalidInputError(f"cannot write the construction to {save_model} ({exc.strerror}); choose another "
                                    "--save-model") from exc
        if not as_json:
            click.echo(f"wrote the construction to {saved} (read it with --model {saved}; see twisted_pair.json)")
    from ..viz.twisted_pair import twisted_pair_figures

    emit(r, d, as_json, "\n".join(T.summarize(r)), twisted_pair_figures(r, d))
