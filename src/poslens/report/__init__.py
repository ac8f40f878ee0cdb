"""``poslens report``: every analysis a model supports, in one self-contained HTML page.

>>> from poslens.report import build_report
>>> page, reports = build_report(["tiny"], "poslens-out/report", size="quick")   # doctest: +SKIP
>>> page                                                                         # doctest: +SKIP
PosixPath('poslens-out/report/report.html')

Stages (one per analysis) live in :mod:`poslens.report.stages`; running, skipping and
caching in :mod:`poslens.report.orchestrate`; the page in :mod:`poslens.report.page`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import InvalidInputError, PoslensError
from ..io import writable_dir
from ..models.allocator import keep_freed_memory
from ..options import listed
from .orchestrate import (SIZES, Context, Harvest, ModelReport, Outcome, Stage, parse_overrides, run_model,
                          select_stages)
from .page import render_model_page, slug, write_pages


def default_stages() -> list[Stage]:
    from .stages import STAGES

    return list(STAGES)


def model_folder(spec: str, taken: set[str]) -> str:
    """A visible, filesystem-safe folder name for one model of a multi-model report:
    the directory's own name for a path, the name (``@`` as ``-``) otherwise; made unique.

    >>> model_folder("../shared/data/gpt2-small-partial", set())
    'gpt2-small-partial'
    >>> model_folder("battlestar@1000", {"battlestar-1000"})
    'battlestar-1000-2'
    >>> model_folder("random=2:../shared/data/gpt2-small-partial", set())
    'random2-gpt2-small-partial'
    """
    from ..models.weights import null_spec

    spec, null_seed = null_spec(str(spec).rstrip("/\\"))
    p = Path(spec)
    path_like = spec.startswith((".", "/", "~")) or p.exists()
    name = p.name if path_like else spec.replace("@", "-").replace("/", "--")
    if null_seed is not None:  # a model's null sits beside it: random-gpt2-small-partial
        name = f"random{null_seed or ''}-{name}"
    base = slug(name).lstrip("._-") or "model"
    folder, n = base, 1
    while folder in taken:
        n += 1
        folder = f"{base}-{n}"
    taken.add(folder)
    return folder


def _same_model(spec: str) -> tuple:
    """What makes two specs the same model: ``random:tiny`` is ``random=0:tiny``, and a relative
    path the absolute one (a report on both would compute everything twice)."""
    from ..models.weights import null_spec

    base, seed = null_spec(spec)
    name, at, rev = base.partition("@")
    path = Path(name).expanduser()
    return (str(path.resolve()) if path.exists() else name) + at + rev, seed


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
    png: bool = False,
) -> tuple[Path, list[ModelReport]]:
    """Run the report for each of ``models`` and write the page(s); returns (page, reports).

    One model: ``OUT/report.html`` and ``OUT/report.json``. Several: one sub-directory per
    model and ``OUT/index.html`` with side-by-side tables; a model that cannot be opened
    or analysed is listed on the index with the reason and the others are kept (its
    ``ModelReport.error`` says why). Every model is opened and every ``--set`` value
    checked against its stage's options before any work starts. Finished stages are cached
    in each model's ``cache/`` and reused on the next run with the same options; with
    ``only``/``skip``, the other stages' cached sections stay on the page. ``png`` also draws a
    PNG of every interactive figure (by default only figures with no interactive twin get one).
    """
    unique: dict[tuple, str] = {}
    for m in map(str, listed(models)):
        unique.setdefault(_same_model(m), m)  # the first spelling of each model
    models = list(unique.values())
    if not models:
        raise InvalidInputError("no model given; pass --model NAME (e.g. tiny)")
    if size not in SIZES:
        raise InvalidInputError(f"unknown size '{size}'; use one of {', '.join(SIZES)}")
    all_stages = list(stages) if stages is not None else default_stages()
    chosen = select_stages(all_stages, only, skip)
    if not chosen:
        raise InvalidInputError("--only/--skip leave no analysis to run")
    compute = {s.name for s in chosen} if (list(only) or list(skip)) else None
    skipped = {s.name for s in all_stages} - {s.name for s in select_stages(all_stages, (), skip)}
    overrides = parse_overrides(sets, all_stages)
    keep_freed_memory()

    contexts: dict[str, Context | None] = {}
    errors: dict[str, str] = {}
    for spec in models:
        try:
            ctx = Context(spec, device=device, dtype=dtype, size=size)
        except PoslensError as exc:
            if len(models) == 1:
                raise
            errors[spec] = str(exc)
            continue
        for st in all_stages:  # a bad --set fails here, before anything is computed or written
            st.options_for(ctx, overrides.get(st.name))
        contexts[spec] = ctx
    if not contexts:
        raise InvalidInputError("no model could be opened: " + "; ".join(f"{m}: {e}" for m, e in errors.items()))

    out_existed = Path(out).exists()
    out = writable_dir(out, "the report")
    taken: set[str] = set()
    reports: list[ModelReport] = []
    for spec in models:
        d = out if len(models) == 1 else out / model_folder(spec, taken)
        if spec in errors:
            reports.append(ModelReport.failed_to_open(spec, d, size, errors[spec]))
            continue
        existed = d.exists()
        # a section the page already has that reads the others (the verdicts) follows them: --only helix
        # with a changed helix option left no verdict table, its entry no longer matching the inputs
        follow = {st.name for st in all_stages if st.final and st.name not in skipped
                  and any((d / "cache").glob(f"{st.name}-*.json"))} if compute is not None else set()
        try:
            reports.append(run_model(spec, d, all_stages, size=size, overrides=overrides, device=device, dtype=dtype,
                                     progress=progress, fail_fast=fail_fast, ctx=contexts.pop(spec),
                                     compute=None if compute is None else compute | follow, png=png))
        except PoslensError as exc:
            if len(models) == 1:
                if not out_existed:
                    shutil.rmtree(out, ignore_errors=True)
                raise
            if not existed:
                shutil.rmtree(d, ignore_errors=True)
            reports.append(ModelReport.failed_to_open(spec, d, size, str(exc)))
    return write_pages(reports, out), reports


__all__ = [
    "Context", "Harvest", "ModelReport", "Outcome", "Stage", "build_report", "default_stages",
    "render_model_page", "run_model", "select_stages", "write_pages",
]
