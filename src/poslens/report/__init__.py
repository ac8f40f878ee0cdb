"""``poslens report``: every analysis a model supports, in one self-contained HTML page.

>>> from poslens.report import build_report
>>> page, reports = build_report(["tiny"], "poslens-out/report", size="quick")   # doctest: +SKIP
>>> page                                                                         # doctest: +SKIP
PosixPath('poslens-out/report/report.html')

Stages (one per analysis) live in :mod:`poslens.report.stages`; running, skipping and
caching in :mod:`poslens.report.orchestrate`; the page in :mod:`poslens.report.page`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import InvalidInputError
from .orchestrate import (
    Context,
    Harvest,
    ModelReport,
    Outcome,
    Stage,
    parse_overrides,
    prepare_out,
    run_model,
    select_stages,
)
from .page import render_model_page, slug, write_pages


def default_stages() -> list[Stage]:
    from .stages import STAGES

    return list(STAGES)


def build_report(
    models: Sequence[str],
    out: str | Path,
    *,
    stages: Sequence[Stage] | None = None,
    only: Iterable[str] = (),
    skip: Iterable[str] = (),
    size: str = "default",
    sets: Iterable[str] = (),
    device: str = "cpu",
    dtype: str = "float32",
    progress: bool = True,
    fail_fast: bool = False,
) -> tuple[Path, list[ModelReport]]:
    """Run the report for each of ``models`` and write the page(s); returns (page, reports).

    One model: ``OUT/report.html`` and ``OUT/report.json``. Several: one sub-directory per
    model and ``OUT/index.html`` with side-by-side tables. Finished stages are cached in
    each model's ``cache/`` and reused on the next run with the same options.
    """
    models = list(dict.fromkeys(models))
    if not models:
        raise InvalidInputError("no model given; pass --model NAME (e.g. tiny)")
    all_stages = list(stages) if stages is not None else default_stages()
    chosen = select_stages(all_stages, only, skip)
    if not chosen:
        raise InvalidInputError("--only/--skip leave no analysis to run")
    overrides = parse_overrides(sets, all_stages)
    out = prepare_out(out)
    reports = []
    for spec in models:
        d = out if len(models) == 1 else prepare_out(out / slug(str(spec)))
        reports.append(run_model(spec, d, chosen, size=size, overrides=overrides, device=device, dtype=dtype,
                                 progress=progress, fail_fast=fail_fast))
    return write_pages(reports, out), reports


__all__ = [
    "Context", "Harvest", "ModelReport", "Outcome", "Stage", "build_report", "default_stages",
    "render_model_page", "run_model", "select_stages", "write_pages",
]
