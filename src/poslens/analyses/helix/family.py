"""The helix analysis across several models, and across a training run's checkpoints.

:func:`helix_models` runs :func:`~poslens.analyses.helix.helix` on each of several models
and tabulates their headline numbers (:func:`summary_row`); :func:`helix_sweep` does the
same along a run's checkpoints, in training order, and measures how far each one's top-3
subspace is from the final one's; :func:`sweep_specs` names the published checkpoints of
the Stanford CRFM runs to sweep.

>>> sw = helix_sweep(sweep_specs("alias", [0, 10000, 400000]))   # doctest: +SKIP
>>> [(r.step, round(r.overlap_final, 3)) for r in sw.table]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import InvalidInputError
from ...options import listed
from ...progress import bar
from ...results import Result
from .measure import HelixResult, check_options, helix, helix_with_fit


@dataclass(frozen=True)
class HelixRow:
    """One model's (or checkpoint's) headline helix numbers, as :func:`summary_row` returns them."""

    model: str | None
    n_ctx: int | None
    d_model: int | None
    share_3: float | None  # of W_pos's variance in its top 3 components
    components_for_90: int | None
    late_share_3: float | None  # the same from the truncation on
    helix_period: float | None
    helix_radius: float | None
    helix_turns: float | None
    helix_r2: float | None
    ode_r2: float | None
    ode_r2_smoothed: float | None
    norm_mean: float
    norm_std: float
    adjacent_cosine: float | None
    cosine_period: float | None


@dataclass(frozen=True)
class SweepRow(HelixRow):
    """A checkpoint's row: its spec and step, and the overlap of its top-3 subspace with the final
    checkpoint's and the previous one's (mean squared cosine of the principal angles)."""

    spec: str = ""
    step: int | None = None
    overlap_final: float | None = None
    overlap_previous: float | None = None


def summary_row(r) -> dict:
    """The headline numbers of one :class:`~poslens.analyses.helix.HelixResult` (or its dict), for tables
    across models or checkpoints."""
    d = r if isinstance(r, dict) else r.to_dict()
    h, od, sm = d.get("helix") or {}, d.get("ode") or {}, d.get("ode_smoothed") or {}
    late = (d.get("truncations") or {}).get("late") or {}
    cum = d.get("cumulative") or []
    cos = d.get("cosine") or {}
    return {
        "model": d.get("model"), "n_ctx": d.get("n_ctx"), "d_model": d.get("d_model"),
        "share_3": cum[2] if len(cum) > 2 else None, "components_for_90": d.get("components_for_90"),
        "late_share_3": late["cumulative"][2] if len(late.get("cumulative", [])) > 2 else None,
        "helix_period": h.get("period"), "helix_radius": h.get("radius"), "helix_turns": h.get("turns"),
        "helix_r2": h.get("r2"), "ode_r2": od.get("r2"), "ode_r2_smoothed": sm.get("r2"),
        "norm_mean": d["norms"]["W_pos"]["mean"], "norm_std": d["norms"]["W_pos"]["std"],
        "adjacent_cosine": cos.get("adjacent_mean"), "cosine_period": cos.get("period"),
    }


@dataclass(frozen=True)
class HelixFamilyResult(Result):
    """:class:`~poslens.analyses.helix.HelixResult` s of several models (``results``, in the order given) and a
    ``table`` of their headline numbers (:func:`summary_row`)."""

    kind = "helix_family"
    results: list[HelixResult] = field(default_factory=list)
    table: list[HelixRow] = field(default_factory=list)


@dataclass(frozen=True)
class HelixSweepResult(Result):
    """The helix metrics across a run's checkpoints, in training order.

    ``table`` has one row per checkpoint (``step`` when known) with :func:`summary_row`'s
    numbers plus ``overlap_final`` / ``overlap_previous``: the mean squared cosine of the
    principal angles between this checkpoint's top-3 subspace and the final (previous)
    one's (1 = the same subspace). ``coords`` holds each checkpoint's top-3 coordinates
    for the small-multiples figure; ``positions`` the positions they are for.
    """

    kind = "helix_sweep"
    table: list[SweepRow] = field(default_factory=list)
    coords: list[list[list[float]]] = field(default_factory=list)  # checkpoint -> position -> top-3
    ranges: list[list[int]] = field(default_factory=list)  # checkpoint -> [start, stop) of its positions
    notes: list[str] = field(default_factory=list)


def _open(spec):
    """(Weights, checkpoint or None) for a spec, a directory or ready Weights."""
    from ...models.weights import Weights, load_weights

    w = spec if isinstance(spec, Weights) else load_weights(str(spec))
    return w, getattr(w, "source", None)


def helix_models(specs, *, progress: bool = False, **options) -> HelixFamilyResult:
    """:func:`~poslens.analyses.helix.helix` on each of several models (names, ``NAME@REV``, directories or
    Weights); reads W_pos from each.

    Token comparisons are off unless ``tokens=True`` is passed, so only ``wpe.weight`` is read.

    >>> fam = helix_models(["gpt2", "gpt2-medium"])              # doctest: +SKIP
    >>> [row.share_3 for row in fam.table]                       # doctest: +SKIP
    """
    specs = listed(specs)
    if not specs:
        raise InvalidInputError("no model given; pass one or more --model values or --family")
    check_options(options)
    options.setdefault("tokens", False)
    results = []
    for spec in bar(specs, desc="helix", disable=not progress, leave=False):
        w, _ = _open(spec)
        results.append(helix(w, **options))
    opts = {**results[0].options, "models": [r.model for r in results]}
    return HelixFamilyResult(model=", ".join(r.model for r in results), processing=results[0].processing, options=opts,
                             results=results, table=[HelixRow(**summary_row(r)) for r in results])


def _step_of(ckpt) -> int | None:
    """The training step a checkpoint was saved at: its revision, its training_log.json, or its directory name."""
    import contextlib
    import json
    import re

    if ckpt is None:
        return None
    rev = getattr(ckpt, "revision", None)
    if rev:
        m = re.search(r"(\d+)$", str(rev))
        if m:
            return int(m.group(1))
    path = Path(getattr(ckpt, "path", "."))
    with contextlib.suppress(OSError, ValueError, AttributeError):  # no log, or not one with a step
        step = json.loads((path / "training_log.json").read_text()).get("step")
        if isinstance(step, int):
            return step
    m = re.search(r"(?:checkpoint|step|ckpt)[-_]?(\d+)$", path.name)
    return int(m.group(1)) if m else None


def every_nth(items: list, every: int) -> list:
    """Every ``every``-th of ``items``, always ending with the last (a sweep keeps the final state).

    >>> every_nth([0, 1, 2, 3, 4], 3)
    [0, 3, 4]
    """
    if every < 1:
        raise InvalidInputError(f"every must be a positive number of checkpoints (got {every})")
    return items[::every] + ([items[-1]] if (len(items) - 1) % every else [])


def sweep_specs(model: str, steps=None, every: int | None = None) -> list[str]:
    """``NAME@STEP`` specs for a run with published checkpoints (the Stanford CRFM runs), or for
    an embedded model's own training history (``tiny``, ``tiny-attn``).

    ``steps``: explicit steps; ``every``: every N-th checkpoint (always ending with the last).
    Each step is checked against the run's list.

    >>> sweep_specs("alias", [0, 1000])
    ['alias@0', 'alias@1000']
    >>> len(sweep_specs("alias", every=100))
    8
    >>> sweep_specs("tiny", every=6)
    ['tiny@0', 'tiny@38', 'tiny@3000']
    """
    from ...models.registry import embedded_snapshots, resolve

    name, _, _ = str(model).partition("@")
    info = resolve(name).info
    run = list(info.checkpoints) if info is not None else []
    if info is not None and info.repo_id is None:  # an embedded model: its own snapshots, which load as NAME@STEP too
        run = list(embedded_snapshots(info))
    if not run:
        raise InvalidInputError(
            f"{name} has no published training checkpoints to sweep (the Stanford CRFM runs do: alias, battlestar ...); "
            "for your own checkpoints pass each directory with --model and add --sweep"
        )
    if steps is None and every is None:
        raise InvalidInputError("give the steps to sweep (e.g. 0,1000,10000) or every=N")
    if every is not None:
        chosen = every_nth(run, every)
    else:
        chosen = [int(s) for s in steps]
    specs = [f"{info.name}@{s}" for s in chosen]
    for s in specs:
        resolve(s)  # a step that was never published raises, naming the nearest one
    return specs


def _overlap(A: np.ndarray, B: np.ndarray) -> float:
    """Mean squared cosine of the principal angles between the row spaces of orthonormal A and B."""
    return float(((A @ B.T) ** 2).sum() / min(len(A), len(B)))


def _run_name(labels: list[str]) -> str:
    """What the checkpoints of a sweep have in common: ``alias`` for ``alias@...``, else their common folder."""
    import os

    names = {str(x).split("@")[0] for x in labels}
    if len(names) == 1:
        return names.pop()
    try:
        return os.path.commonpath([str(x) for x in labels]) or ", ".join(labels)
    except ValueError:
        return ", ".join(labels)


def helix_sweep(specs, *, progress: bool = False, **options) -> HelixSweepResult:
    """The helix metrics across a training run's checkpoints, to watch the helix form.

    ``specs``: the checkpoints (``NAME@STEP``, directories, or Weights), in any order;
    they are sorted by training step when every step is known (revision, the directory's
    ``training_log.json``, or a ``checkpoint-N`` name), else kept in the order given. Only
    ``wpe.weight`` is read from each. ``options`` go to :func:`~poslens.analyses.helix.helix` (truncations on,
    sinusoidal comparison and tokens off, small cosine matrices, unless overridden).

    >>> sw = helix_sweep(sweep_specs("alias", [0, 10000, 400000]))   # doctest: +SKIP
    >>> [(r.step, round(r.share_3, 3)) for r in sw.table]              # doctest: +SKIP
    """
    specs = listed(specs)
    if len(specs) < 2:
        raise InvalidInputError("a sweep needs at least two checkpoints; pass several --model values or --steps")
    check_options(options)
    opts = {"tokens": False, "sinusoidal": False, "cosine_size": 16, "n_traces": 0, **options}
    rows, fits = [], []
    for spec in bar(specs, desc="helix sweep", disable=not progress, leave=False):
        w, ckpt = _open(spec)
        r, fit = helix_with_fit(w, **opts)
        fits.append((r, fit.components[:3], _step_of(ckpt), str(spec)))
    notes = []
    if all(f[2] is not None for f in fits):
        fits.sort(key=lambda f: f[2])
    else:
        notes.append("training steps unknown for some checkpoints; kept in the order given")
    final = fits[-1][1]
    for i, (r, comps, step, spec) in enumerate(fits):
        same = comps.shape == final.shape
        prev = fits[i - 1][1] if i else None
        rows.append(SweepRow(
            **summary_row(r), spec=spec, step=step, overlap_final=_overlap(comps, final) if same else None,
            overlap_previous=_overlap(comps, prev) if prev is not None and prev.shape == comps.shape else None,
        ))
    first = fits[0][0]
    return HelixSweepResult(
        model=_run_name([f[0].model for f in fits]), processing=first.processing,
        options={**first.options, "checkpoints": [f[3] for f in fits]},
        table=rows, coords=[f[0].coords for f in fits], ranges=[[f[0].positions[0], f[0].positions[-1] + 1] for f in fits],
        notes=notes,
    )


def family_summary(result) -> list[str]:
    """A line per model (or checkpoint) of a :class:`HelixFamilyResult` or :class:`HelixSweepResult`, then its notes.

    >>> family_summary(helix_models(["gpt2", "gpt2-medium"]))[0]   # doctest: +SKIP
    '2 models:'
    """
    sweep = isinstance(result, HelixSweepResult)
    lines = [f"{len(result.table)} checkpoints of {result.model}:" if sweep else f"{len(result.table)} models:"]
    for row in result.table:
        share = "n/a" if row.share_3 is None else f"{row.share_3:.3f}"
        period = "none" if row.helix_period is None else f"{row.helix_period:.1f}"
        name = (row.step if row.step is not None else row.spec) if sweep else row.model
        ov = getattr(row, "overlap_final", None)
        lines.append(f"  {name}: {share} of the variance in 3 PCs, {row.components_for_90} PCs for 90%, "
                     f"helix period {period} (R² {row.helix_r2:.3f})"
                     + (f", overlap with the final top-3 {ov:.3f}" if ov is not None else ""))
    return lines + list(getattr(result, "notes", []))
