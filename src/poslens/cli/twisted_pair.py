"""`poslens twisted-pair`: build the hand-made distance transformer, verify it, test the post's claims, look in a model."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import InvalidInputError
from .common import DEFAULT_MODEL, device_option, emit, json_option, out_dir, out_option, parse_ints


def _ints(spec: str, what: str) -> list[int]:
    return parse_ints(spec, what, example="4,8,16") or []  # '' skips a sweep: an empty list, not None


def _floats(spec: str, what: str) -> list[float]:
    try:
        return [float(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise InvalidInputError(f"{what} '{spec}' is not a comma-separated list of numbers (e.g. 0.1,0.01)") from None


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
@click.option("--curve", default="helix", show_default=True,
              help="helix, circle-drift, random, loop, or MODULE:FUNCTION / FILE.py:FUNCTION (t [N] -> [N, d]).")
@click.option("--param", "params", multiple=True, help="Curve parameter KEY=VALUE, repeatable (turns=2, gap=0.01, drift=0.3,0,0.5).")
@click.option("--n", "n", default=512, show_default=True, help="Points x_i = f(i/n), i = 0..n.")
@click.option("--M", "M", default=32, show_default=True, help="Sentry gaps: M + 1 sentries (per period in the helix variant: M).")
@click.option("--k", "k", default=8, show_default=True, help="Largest |i - j| estimated.")
@click.option("--variant", type=click.Choice(["plain", "helix"]), default="plain", show_default=True,
              help="Gates on x_i (plain) or on y_i = A x_i + c ~ f'(i/n) with sentries reused every period (helix).")
@click.option("--gate", type=click.Choice(["fit", "dot"]), default="fit", show_default=True,
              help="Gate direction: tuned by a max-margin LP (fit) or the post's literal f(s_m) (dot).")
@click.option("--signal-fraction", default=0.5, show_default=True, help="Largest signal term, as a fraction of the gate margin.")
@click.option("--period", default=None, type=float, help="Period of f' in t for the helix variant (default: the curve's own).")
@click.option("--sweep-M", "sweep_M", default="4,8,16,32,64", show_default=True, help="M values to sweep ('' to skip).")
@click.option("--sweep-n", "sweep_n", default="128,256,512,1024", show_default=True, help="n values to sweep ('' to skip).")
@click.option("--sweep-k", "sweep_k", default="1,2,4,8,16", show_default=True, help="k values to sweep ('' to skip).")
@click.option("--grid/--no-grid", default=True, show_default=True, help="Verify every (curve, n, k, M) of the grid.")
@click.option("--grid-n", default="128,512", show_default=True)
@click.option("--grid-k", default="2,8", show_default=True)
@click.option("--grid-M", "grid_M", default="8,32", show_default=True)
@click.option("--claims/--no-claims", default=True, show_default=True,
              help="Test noise cancellation, near self-intersection and helix sentry reuse.")
@click.option("--noise", default="0,0.05,0.1,0.2,0.4,0.8,1.6", show_default=True,
              help="Common-mode noise levels, in units of the median gate margin.")
@click.option("--gaps", default="0.1,0.01,0.001,0.0001,0.00001", show_default=True,
              help="Half-distances between the loop curve's branches at its crossing.")
@click.option("--reuse-n", default="64,128,192,256,512,1024", show_default=True,
              help="n values for the sentry-reuse experiment (helix of period 128 positions).")
@click.option("--model", "-m", "model", default=DEFAULT_MODEL, show_default=True,
              help="Model for the GPT-2 part: a name from `poslens models`, a hub id, or a checkpoint directory.")
@click.option("--no-model", is_flag=True, help="Skip the GPT-2 part.")
@click.option("--first-position", default=1, show_default=True, help="First W_pos row of the model's curve.")
@click.option("--components", default=6, show_default=True, help="Principal components of W_pos for the f' = W f + c fit.")
@click.option("--scheme", type=click.Choice(["savgol", "central"]), default="savgol", show_default=True,
              help="Derivative of W_pos: Savitzky-Golay or raw central differences.")
@click.option("--window", default=51, show_default=True, help="Savitzky-Golay window (odd).")
@click.option("--save-model", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Also write the construction as a checkpoint directory (+ twisted_pair.json) here.")
@click.option("--atol", default=1e-3, show_default=True, help="Rounding slack (positions) when checking the bound.")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default="float64", show_default=True,
              help="Runner dtype for the construction (the main construction is checked in float32 too).")
@device_option
@out_option
@json_option
@click.option("--seed", default=0, show_default=True)
def twisted_pair_cmd(curve, params, n, M, k, variant, gate, signal_fraction, period, sweep_M, sweep_n, sweep_k, grid,
                     grid_n, grid_k, grid_M, claims, noise, gaps, reuse_n, model, no_model, first_position, components,
                     scheme, window, save_model, atol, dtype, device, out, as_json, seed):
    """Build the twisted-pair post's construction as real weights, check it against the post's error
    bound, test the post's claims, and look for the mechanism in --model."""
    from ..analyses import twisted_pair as T
    from ..analyses.twisted_pair import build, check_sizes

    check_sizes(n, M, k, variant)
    weights = None
    if not no_model:
        from ..models import load_weights

        weights = load_weights(model)
    r = T.twisted_pair(
        weights, curve=curve, curve_params=_params(params), n=n, M=M, k=k, variant=variant, gate=gate,
        signal_fraction=signal_fraction, period=period, sweep_M=_ints(sweep_M, "--sweep-M"),
        sweep_n=_ints(sweep_n, "--sweep-n"), sweep_k=_ints(sweep_k, "--sweep-k"),
        grid_spec={"ns": _ints(grid_n, "--grid-n"), "ks": _ints(grid_k, "--grid-k"), "Ms": _ints(grid_M, "--grid-M")}
        if grid else None,
        claims=claims, noise_sigmas=_floats(noise, "--noise"), gaps=_floats(gaps, "--gaps"),
        reuse_ns=_ints(reuse_n, "--reuse-n"),
        gpt2_options={"first_position": first_position, "n_components": components, "scheme": scheme,
                      "window": window, "device": device},
        atol=atol, dtype=dtype, device=device, seed=seed,
    )
    d = out_dir(out, "twisted-pair")
    from ..viz.twisted_pair import twisted_pair_figures

    figs = twisted_pair_figures(r, d)
    if save_model is not None:
        con = build(T.make_curve(curve, **_params(params)), n, M, k, variant=variant, gate=gate,
                    signal_fraction=signal_fraction, period=period)
        try:
            saved = con.save(save_model)
        except OSError as exc:
            raise InvalidInputError(f"cannot write the construction to {save_model} ({exc.strerror}); choose another "
                                    "--save-model") from exc
        if not as_json:
            click.echo(f"wrote the construction to {saved} (read it with --model {saved}; see twisted_pair.json)")
    emit(r, d, as_json, "\n".join(T.summarize(r)), figs)
