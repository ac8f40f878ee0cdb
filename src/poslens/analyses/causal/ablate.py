"""The effect of a set of ablations on some metrics, against random ablations of the same size.

:func:`ablation_effect` runs, in one batched pass per chunk of rows, the clean model, the
ablated model, and ``n_baseline`` random counterparts of the ablation: each head replaced
by a random head of the same layer (never an ablated one), each neuron by a random neuron
of the same layer, each direction or subspace by a uniformly random subspace of the same
dimension. The effect (ablated - clean, averaged over the sequences) is reported with the
baseline's mean, spread and draws, and a z-score.

>>> r = ablation_effect(runner, tokens, [ablate_head(0, [1, 5], "mean")],           # doctest: +SKIP
...                     [next_token_loss(tokens)], n_baseline=10)
>>> r.effects["loss"].effect, r.effects["loss"].z                                     # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ...errors import InvalidInputError
from ...models.runner import Runner
from ...results import Result
from .baselines import Comparison, against, compare, head_pool, random_head_sets, random_neurons, random_subspace
from .intervention import INPUT, Intervention, InterventionRecord, _layer
from ..reach import as_runner
from .metrics import Metric, MetricRecord, check_metric
from .run import as_run_kwargs, input_shape, measure_variants

# A metric's value, averaged over sequences: a number, or the metric's shape as nested lists.
MetricValue = float | list[float] | list[list[float]]


@dataclass(frozen=True)
class RandomBaseline:
    """The random counterparts the effects are compared with: what they are, how many, and each draw."""

    kind: str
    n_draws: int
    draws: list[list[InterventionRecord]]


@dataclass(frozen=True)
class AblationResult(Result):
    """Clean and ablated metric values and the effect against random ablations of the same size.

    ``effects[metric]`` (or ``effects[metric][label]`` for vector metrics) is a
    :class:`~poslens.analyses.causal.baselines.Comparison`: ``effect`` (ablated - clean),
    ``baseline`` (n, mean, std, draws of the random ablations' effects), ``z`` and
    ``share_as_large``.
    """

    kind = "ablation"
    interventions: list[InterventionRecord] = field(default_factory=list)
    references: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, MetricRecord] = field(default_factory=dict)  # by metric name
    clean: dict[str, MetricValue] = field(default_factory=dict)  # mean over sequences, by metric name
    ablated: dict[str, MetricValue] = field(default_factory=dict)
    effects: dict[str, Comparison | dict[str, Comparison]] = field(default_factory=dict)
    baseline: RandomBaseline | None = None
    n_sequences: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def random_counterpart(iv: Intervention, cfg, exclude: dict[str, set[int]], draw: int, seed: int,
                       n_draws: int = 0) -> Intervention:
    """The ``draw``-th random counterpart of ``iv`` (same kind, hook, size, positions, reference) of
    ``n_draws``: heads and neurons come from one set of ``n_draws`` distinct subsets."""
    s = seed * 1_000_003 + draw
    # the subsets drawn depend on how many are asked for, so every draw asks for all of them
    n_draws = max(n_draws, draw + 1)
    if iv.target == "head":
        heads = random_head_sets(cfg.n_heads, len(iv.index), exclude.get(iv.hook, set()), n_draws=n_draws, seed=seed)
        pick = heads[draw % len(heads)]
        return replace(iv, index=tuple(pick), label=f"random heads {','.join(map(str, pick))} of layer {_layer(iv.hook)}",
                       source=f"random draw {draw}")
    if iv.target == "neuron":
        pick = random_neurons(cfg.d_mlp, len(iv.index), exclude.get(iv.hook, set()), n_draws=n_draws, seed=seed)
        pick = pick[draw % len(pick)]
        return replace(iv, index=tuple(pick), label=f"random neurons of layer {_layer(iv.hook)}", source=f"random draw {draw}")
    b = random_subspace(len(iv.basis[0]), len(iv.basis), seed=s)
    return replace(iv, basis=tuple(tuple(r) for r in b.tolist()), label=f"random {len(iv.basis)}-d subspace",
                   source=f"uniform random subspace (QR of a Gaussian), seed {s}")


def baseline_variants(interventions: Sequence[Intervention], cfg, n: int, seed: int) -> list[list[Intervention]]:
    """Up to ``n`` random versions of the whole list (each intervention replaced by its counterpart),
    all different: where a layer has fewer other head sets than ``n`` (two of tiny-attn's four heads
    leave one other pair), a repeated draw would count one measurement as several."""
    exclude: dict[str, set[int]] = {}
    for iv in interventions:
        if iv.target in ("head", "neuron"):
            exclude.setdefault(iv.hook, set()).update(iv.index)
    out, seen = [], set()
    for d in range(n):
        variant = [random_counterpart(iv, cfg, exclude, d, seed, n) for iv in interventions]
        key = tuple((iv.hook, tuple(iv.index), tuple(iv.basis)) for iv in variant)
        if key not in seen:
            seen.add(key)
            out.append(variant)
    return out


def effects_table(values: dict[str, np.ndarray], metrics: Sequence[Metric]) -> tuple[
        dict[str, MetricValue], dict[str, MetricValue], dict[str, Comparison | dict[str, Comparison]]]:
    """Clean / ablated means and effects-with-baseline from ``{metric: [variant, row, *shape]}`` (variants:
    clean, ablated, then the random draws)."""
    clean_d: dict[str, MetricValue] = {}
    abl_d: dict[str, MetricValue] = {}
    eff_d: dict[str, Comparison | dict[str, Comparison]] = {}
    for m in metrics:
        v = values[m.name]
        c, a = np.nanmean(v[0], axis=0), np.nanmean(v[1], axis=0)
        base = [np.nanmean(x, axis=0) - c for x in v[2:]]
        clean_d[m.name] = c.tolist() if np.ndim(c) else float(c)
        abl_d[m.name] = a.tolist() if np.ndim(a) else float(a)
        if np.ndim(c) == 0:
            eff_d[m.name] = compare(float(a - c), [float(b) for b in base])
        else:
            flat_c, flat_a = np.ravel(c), np.ravel(a)
            labels = m.labels if len(m.shape) == 1 and len(m.labels) == m.shape[0] else map(str, range(flat_c.size))
            eff_d[m.name] = {lab: compare(float(flat_a[i] - flat_c[i]), [float(np.ravel(b)[i]) for b in base])
                             for i, lab in enumerate(labels)}
    return clean_d, abl_d, eff_d


def ablation_effect(
    runner: Runner,
    inputs,
    interventions: Sequence[Intervention],
    metrics: Sequence[Metric],
    *,
    references: Mapping[str, Any] | None = None,
    reference_info: Mapping[str, str] | None = None,
    n_baseline: int = 10,
    seed: int = 0,
    batch_size: int | None = None,
) -> AblationResult:
    """Measure ``metrics`` clean, with ``interventions`` (all at once), and with ``n_baseline`` random versions.

    >>> iv = ablate_neuron(0, [3, 9], "zero")                                           # doctest: +SKIP
    >>> r = ablation_effect(runner, tokens, [iv], [neuron_activation(0, 3)], n_baseline=5)  # doctest: +SKIP
    """
    t0 = time.perf_counter()
    runner = as_runner(runner, "ablation_effect")
    if not interventions:
        raise InvalidInputError("nothing to ablate: give at least one intervention")
    if not metrics:
        raise InvalidInputError("nothing to measure: give at least one metric")
    if n_baseline < 0:
        raise InvalidInputError(f"n_baseline must be >= 0; got {n_baseline}")
    for m in metrics:
        runner.check_hook(check_metric(m).hook)
    kw = as_run_kwargs(inputs)
    B, _ = input_shape(kw)
    draws = baseline_variants(interventions, runner.cfg, n_baseline, seed) if n_baseline else []
    variants = [[], list(interventions), *draws]
    vals = measure_variants(runner, kw, variants, metrics, references=references, batch_size=batch_size)
    clean, abl, eff = effects_table(vals, metrics)
    notes = [f"layer {_layer(iv.hook)} has too few other heads for a disjoint random baseline of {len(iv.index)}; "
             "random draws may include the ablated heads" for iv in interventions
             if iv.target == "head" and set(head_pool(runner.cfg.n_heads, len(iv.index), iv.index)) & set(iv.index)]
    if len(draws) < n_baseline:
        one = len(draws) == 1
        notes.append(f"only {len(draws)} different random counterpart{'' if one else 's'} exist{'s' if one else ''} "
                     f"(asked for {n_baseline}): the baseline has {len(draws)} draw{'' if one else 's'}")
    return AblationResult(
        model=runner.weights.label, processing=tuple(runner.weights.processing),
        options={"n_baseline": n_baseline, "seed": seed, "dtype": str(runner.dtype).replace("torch.", ""),
                 "n_sequences": B},
        interventions=[iv.describe() for iv in interventions],
        references={INPUT: "the sequences measured", **dict(reference_info or {})},
        metrics={m.name: m.describe() for m in metrics}, clean=clean, ablated=abl, effects=eff,
        baseline=RandomBaseline(kind="same ablation on random targets of the same size (heads of the same layer, never "
                                     "the ablated ones; neurons of the same layer; uniformly random subspaces of the same "
                                     "dimension)",
                                n_draws=len(draws), draws=[[iv.describe(full=False) for iv in d] for d in draws]),
        n_sequences=B, seconds=round(time.perf_counter() - t0, 3), notes=notes,
    )


def summarize(result: AblationResult) -> list[str]:
    lines = ["ablated: " + "; ".join(iv.name for iv in result.interventions) + f" on {result.n_sequences} sequences"]
    for name, e in result.effects.items():
        for lab, x in ([("", e)] if isinstance(e, Comparison) else e.items()):
            lines.append(f"{name}{' ' + lab if lab else ''}: effect {x.effect:+.4g} vs "
                         + against(x.baseline, x.z, "random"))
    return lines + list(result.notes)
