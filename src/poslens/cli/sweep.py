"""`poslens sweep`: emergence metrics across a training run's checkpoints, on a local pool or a Ray cluster."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import InvalidInputError
from .common import forget_stale, json_option, model_option, out_dir, out_option_with, parse_ints


def _overrides(items) -> dict:
    out: dict[str, dict] = {}
    for item in items:
        key, eq, value = item.partition("=")
        analysis, dot, opt = key.partition(".")
        if not eq or not dot or not analysis or not opt:
            raise InvalidInputError(f"--set '{item}' is not ANALYSIS.OPTION=VALUE (e.g. heads.n_seq=32)")
        out.setdefault(analysis.strip(), {})[opt.strip()] = value.strip()
    return out


@click.command("sweep")
@model_option(multiple=True, null=False)
@click.option("--revisions", "revs", default=None,
              help="Explicit revisions: steps or names, comma-separated (e.g. 0,1000,10000 or checkpoint-400000).")
@click.option("--every", type=int, default=None, help="Every N-th checkpoint of each run (always the last).")
@click.option("--log", "log_n", type=int, default=None, help="N checkpoints log-spaced in training step (first and last included).")
@click.option("--analyses", "-a", default=None,
              help="Comma list of helix, heads, icl, sinks (or all); default helix,heads,icl.")
@click.option("--set", "sets", multiple=True, help="An analysis option, ANALYSIS.OPTION=VALUE (e.g. helix.k=5); repeatable.")
@click.option("--executor", type=click.Choice(["local", "serial", "ray"]), default="local", show_default=True,
              help="local: a process pool on this machine; serial: this process; ray: tasks on a Ray cluster.")
@click.option("--jobs", "-j", type=int, default=None, help="Worker processes of the local pool (default: the CPU count).")
@click.option("--address", default="auto", show_default=True,
              help="Ray cluster: auto (this machine's), HOST:PORT of the head, or local (start one here).")
@click.option("--penalty", type=click.FloatRange(0, min_open=True), default=None, help="Change-point penalty factor beta (default 3).")
@click.option("--no-page", is_flag=True, help="Tables only: no sweep.html or PNGs.")
@click.option("--list", "list_only", is_flag=True,
              help="List the revisions the sweep would visit, and exit (with --json: a JSON list).")
@out_option_with("Directory for sweep.json, tables/, sweep.html and the cell store (created; "
                 "default: poslens-out/sweep).")
@json_option
def sweep_cmd(model, revs, every, log_n, analyses, sets, executor, jobs, address, penalty, no_page, list_only, out,
              as_json):
    """Emergence metrics at every chosen checkpoint of one or more training runs.

    Each (model, revision, analysis) cell is stored in OUT/store, keyed by what it was
    computed from (model, revision, options, poslens version and source): rerun the same
    command to resume; a changed option or poslens recomputes only what it touches. Writes
    OUT/sweep.json, OUT/tables/METRIC.csv|json (jumps, spikes and bit-identical revisions
    flagged) and OUT/sweep.html. Exits 1 when any cell failed (the others are written, and the
    failed ones listed), 2 on a mistake in the command, when nothing is written.
    """
    if executor == "ray":
        from ..sweep.executors import check_ray_address

        check_ray_address(address)  # in seconds, before torch is even imported
    from ..sweep import cells, run
    from ..sweep.grid import revisions as list_revisions

    models = list(model) or ["tiny"]
    steps = [s for s in revs.split(",") if s.strip()] if revs is not None else None
    if steps == []:
        raise InvalidInputError("--revisions names no revision; give steps or revision names, e.g. 0,1000,10000")
    if steps is not None and all(s.strip().lstrip("-").isdigit() for s in steps):
        parse_ints(revs, "--revisions", example="0,1000,10000", items="steps")
    names = cells.parse_analyses(analyses)
    if list_only:
        listed = [r for m in models for r in list_revisions(m, steps=steps, every=every, log=log_n)]
        if as_json:
            click.echo(json.dumps([r.to_dict() for r in listed], indent=1))
            return
        for r in listed:
            click.echo(f"{r.model}\t{r.revision}\t{'' if r.step is None else r.step}\t"
                       f"{'' if r.tokens is None else r.tokens}")
        return
    if jobs is not None and jobs < 1:
        raise InvalidInputError(f"--jobs must be at least 1 (got {jobs})")
    cp = None if penalty is None else {"beta": penalty}
    from ..models.registry import open_checkpoint

    for m in models:  # a damaged local checkpoint: one line before anything is written (a training run's folder
        if (Path(m).expanduser() / "config.json").is_file():  # and hub revisions are opened per cell)
            open_checkpoint(m)
    d = out_dir(out, "sweep")
    res = run.sweep(models, out=d, steps=steps, every=every, log=log_n, analyses=names, overrides=_overrides(sets),
                    executor=executor, jobs=jobs, address=address, progress=not as_json, cp_params=cp,
                    page=not no_page)
    forget_stale(d, [Path(f) for f in res["files"]])
    r = res["run"]
    if as_json:
        from ..results import to_jsonable

        # strict JSON, as sweep.json: an infinite metric is "Infinity", NaN null (json.dumps wrote bare Infinity/NaN)
        click.echo(json.dumps(to_jsonable({k: v for k, v in res.items() if k != "fingerprints"}), indent=1,
                              default=str, allow_nan=False))
        _exit_if_failed(r)
        return
    click.echo(f"{r['cells']} cells: {r['computed']} computed, {r['cached']} from the store, {len(r['failed'])} failed")
    for name, m in res["metrics"].items():
        for model_name, js in m["jumps"].items():
            for j in js:
                click.echo(f"  {model_name} {name}: jump {j['size']:+.4g} at {j['revision']}"
                           + (" (open: at the end of the history)" if j.get("open") else ""))
    for model_name, fl in res["flags"].items():
        for rev, why in fl.items():
            click.echo(f"  {model_name} {rev}: {'; '.join(why)}")
    for c in [c for c in res["cells"] if c["status"] == "failed"][:5]:
        click.echo(f"  failed: {c['model']} {c['revision']} {c['analysis']}: {c['reason']}")
    for f in res["files"][:1] + [f for f in res["files"] if f.endswith(".html")]:
        click.echo(f"wrote {f}")
    _exit_if_failed(r)


def _exit_if_failed(r: dict) -> None:
    # a script must not take a sweep with holes in its tables for a finished one; the cells that
    # did finish are stored and tabulated all the same
    if not r["failed"]:
        return
    first = next(iter(r["failed"].values()))
    n, cells = len(r["failed"]), r["cells"]
    which = "every cell" if n == cells else f"{n} of {cells} cells"
    rest = "" if n == cells else "; the others are written and stored, and a rerun computes only the failed ones"
    click.echo(f"poslens: {which} failed (the first: {first}){rest}", err=True)
    sys.exit(1)
