"""`poslens helix`: the geometry of W_pos for one model, several models, or a run's checkpoints."""

from __future__ import annotations

import dataclasses

import click

from ..analyses.helix.options import Options
from ..errors import InvalidInputError
from .common import finish, json_option, model_option, out_option, parse_ints
from .options import build_options, options_flags


def _range(spec: str | None) -> tuple[int | None, int | None]:
    """'1:1024' -> (1, 1024); either side may be empty ('100:' or ':100')."""
    if not spec:
        return None, None
    lo, colon, hi = spec.partition(":")
    try:
        if not colon:
            raise ValueError
        return (int(lo) if lo.strip() else None), (int(hi) if hi.strip() else None)
    except ValueError:
        raise InvalidInputError(f"--positions '{spec}' is not START:STOP (e.g. 1:1024, 100: or :100)") from None


def _chosen_snapshots(name: str, history: list, steps: list[int] | None, every: int | None) -> list:
    """The snapshot folders of ``history`` ([(step, dir)]) at ``steps``, or every ``every``-th (ending with the last)."""
    if every is not None:
        from ..analyses.helix.family import every_nth

        return [d for _, d in every_nth(history, every)]
    by_step = dict(history)
    if missing := [s for s in steps if s not in by_step]:
        raise InvalidInputError(f"{name} has no snapshot at step {missing[0]}; its snapshots are at steps "
                                f"{', '.join(str(s) for s in by_step)}")
    return [by_step[s] for s in steps]


@click.command("helix")
@model_option(multiple=True)
@click.option("--family", default=None,
              help="A model family from `poslens models` (e.g. gpt2: the nine GPT-2s of the helix post).")
@click.option("--sweep", is_flag=True, help="Treat the models as checkpoints of one run: a table and plot across training.")
@click.option("--steps", default=None, help="Sweep these published training steps of --model (e.g. 0,1000,10000,400000).")
@click.option("--every", default=None, type=int, help="Sweep every N-th published checkpoint of --model.")
@click.option("--positions", "positions", default=None, help="Positions START:STOP for the PCA (default 1:n_ctx).")
@options_flags(Options, skip=("start", "stop"), aliases={"n_traces": "--traces"})
@click.option("--no-figures", is_flag=True, help="Write result.json only.")
@out_option
@json_option
def helix_cmd(model, family, sweep, steps, every, positions, no_figures, out, as_json, **kw):
    """PCA of W_pos (the helix), its fits, norms, cosine structure, and the sinusoidal comparison.

    One --model: every metric and figure. Several --model values or --family: the same for
    each, plus a grid of their helices. --sweep (or --steps/--every on one model): the
    metrics across a run's checkpoints.
    """
    from ..analyses import helix as H
    from ..models import registry

    start, stop = _range(positions)
    tokens = kw.pop("tokens")
    options = dataclasses.asdict(build_options(Options, {**kw, "start": start, "stop": stop}))
    del options["tokens"]
    specs = list(model) + (list(registry.family(family)) if family else [])
    from ..train.history import history_dir, snapshot_dirs

    step_list = parse_ints(steps, "--steps", example="0,1000,10000", items="training steps")
    if steps is not None and not step_list:  # an unset variable, --steps "$STEPS": not a plain helix of the model
        raise InvalidInputError("--steps names no step; give training steps, e.g. --steps 0,1000,10000")
    step_list = list(dict.fromkeys(step_list)) if step_list else step_list  # a step given twice is one checkpoint
    specs = specs or ["tiny"]
    from ..models.weights import null_spec

    # a null model (random:tiny) has no training history of its own; resolving it would refuse it
    local = registry.resolve(specs[0]).local_dir if len(specs) == 1 and null_spec(specs[0])[1] is None else None
    history = snapshot_dirs(local) if local is not None and history_dir(local).is_dir() else None
    if step_list is not None or every is not None:
        if len(specs) != 1:
            raise InvalidInputError("--steps/--every sweep one run: give exactly one --model (e.g. --model alias)")
        if history is None:  # a published run on the hub
            specs = H.sweep_specs(specs[0], step_list, every)
        else:  # a trained model's own snapshots (tiny's included)
            specs = [str(d) for d in _chosen_snapshots(specs[0], history, step_list, every)]
        sweep = True
    elif sweep and history is not None:  # one trained model: sweep every snapshot of its training history
        specs = [str(d) for _, d in history]
    if tokens and (sweep or len(specs) > 1):
        options["tokens"] = True
    if sweep:
        result = H.helix_sweep(specs, progress=not as_json, **options)
    elif len(specs) > 1:
        result = H.helix_models(specs, progress=not as_json, **options)
    else:
        from ..claims.attach import with_published
        from ..models import load_weights

        w = load_weights(specs[0])
        result = with_published(H.helix(w, tokens=tokens, **options), w)
    from ..viz.helix import figures

    finish(result, out, "helix", as_json, H.summarize(result), None if no_figures else figures)
