"""`poslens report`: every analysis of a model in one self-contained HTML page."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import click

from .common import device_option, dtype_option, model_option, out_option_with


@click.command("report")
@model_option(multiple=True)
@out_option_with("Directory for report.html (index.html for several models), report.json, figures and the "
                 "cache (created; default: poslens-out/report).")
@device_option
@dtype_option
@click.option("--only", multiple=True, metavar="STAGES", help="Run only these stages (comma list or repeated).")
@click.option("--skip", multiple=True, metavar="STAGES", help="Leave these stages out (comma list or repeated).")
@click.option("--quick", is_flag=True, help="Small sizes for a first look (fastest).")
@click.option("--full", is_flag=True, help="The source studies' full sizes (slowest).")
@click.option("--set", "sets", multiple=True, metavar="STAGE.OPTION=VALUE",
              help="Override one stage option, e.g. --set helix.n_components=5 or --set word_index.schemes=word,sentence (JSON where it parses; a list also comma-separated).")
@click.option("--list", "list_stages", is_flag=True, help="List the stages and what each needs, then exit.")
@click.option("--fail-fast", is_flag=True, help="Stop at the first failing stage instead of reporting it in the page.")
@click.option("--png", is_flag=True, help="Also draw a PNG of every interactive figure (for papers; slower).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def report_cmd(model, out, device, dtype, only, skip, quick, full, sets, list_stages, fail_fast, png, no_progress):
    """Run every analysis the model supports and write one self-contained HTML page.

    \b
    poslens report                                  # the shipped organisms, tiny and tiny-attn
    poslens report --model gpt2 --out gpt2-report   # GPT-2 small
    poslens report -m tiny -m gpt2                  # several models: index.html + one page each
    poslens report --quick --only helix,geometry_spectra,verdicts   # a first look (--list names the stages)

    Finished sections are cached in OUT/cache: run the same command again to resume an
    interrupted report; a changed option recomputes only the sections it affects; --only
    into an existing report recomputes those sections and keeps the others.
    """
    from ..errors import InvalidInputError
    from ..models.registry import ORGANISMS
    from ..report import build_report, default_stages

    if quick and full:
        raise InvalidInputError("--quick and --full contradict each other; give one of them")
    size = "quick" if quick else "full" if full else "default"

    if list_stages:
        stages = default_stages()
        width = max(len(st.name) for st in stages)
        for st in stages:
            click.echo(f"{st.name:<{width}}  {st.title}  (needs: {', '.join(st.needs) or 'nothing'})")
        return
    models = list(model) or list(ORGANISMS)
    out = Path(out) if out is not None else Path("poslens-out") / "report"
    page, reports = build_report(
        models, out, only=only, skip=skip, size=size, sets=sets, device=device, dtype=dtype,
        progress=not no_progress, fail_fast=fail_fast, png=png,
    )
    failed = 0
    lost = [r for r in reports if r.error is not None]
    for r in reports:
        if r.error is not None:
            click.echo(f"{r.model}: not analysed: {r.error}")
            continue
        counts = Counter(o.status for o in r.outcomes)  # statuses in order of first appearance
        click.echo(f"{r.model}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f" in {r.seconds:.1f} s")
        for o in r.outcomes:
            if o.status in ("skipped", "failed"):
                click.echo(f"  {o.status} {o.name}: {o.reason}")
        if only or skip:
            done = [o.name for o in r.outcomes if o.status == "done"]
            kept = [o.name for o in r.outcomes if o.status == "cached"]
            click.echo(f"  recomputed: {', '.join(done) or 'none'}; kept from the cache: {', '.join(kept) or 'none'}")
        failed += len(r.failed)
    click.echo(f"wrote {page}")
    if failed or lost:
        parts = ([f"{failed} stage(s) failed; their errors are in the page"] if failed else []) + (
            [f"{len(lost)} model(s) could not be analysed: {', '.join(r.model for r in lost)}"] if lost else [])
        click.echo("poslens: " + "; ".join(parts), err=True)
        sys.exit(1)
