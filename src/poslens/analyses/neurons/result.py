"""The duplicate-neurons result and its lines for the terminal and the report."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...results import ClaimRow, Result
from .decompose import Decomposition, MLPScale
from .examples import ExamplesSummary, TopExample
from .layernorm import LayerNormStudy


@dataclass(frozen=True)
class NeuronFit:
    """A neuron's PVO against position (:func:`~poslens.analyses.neurons.pvo.linear_fit` over the
    fitted positions): the line's ``slope`` (per position), ``intercept``, ``r2``, the position
    where it crosses zero (None for a flat line), ``n`` positions, and ``norm`` = |PVO| over
    every position."""

    slope: float | None
    intercept: float | None
    r2: float | None
    zero_crossing: float | None
    n: int
    norm: float


@dataclass(frozen=True)
class CombinedPositional:
    """The neuron's combined positional contribution by the seed's rules, per position (``curve``), its
    mean from ``from_position`` on, with the uniform heads, LayerNorm-scale mode and MLP scale used."""

    curve: list[float]
    from_position: int
    mean_from: float
    uniform_heads: list[str]
    ln_scale: str
    mlp_scale: float


@dataclass(frozen=True)
class DupNeuronsResult(Result):
    """PVO analysis of one head, per-head decomposition of one neuron, top activating examples.

    Neuron-keyed maps (``fits``, ``curves``) use the neuron index as a string.
    """

    kind = "dup_neurons"
    head: str = ""
    layer: int = 0
    neuron: int | None = None
    d_mlp: int = 0
    head_choice: str = ""
    ln_scale: LayerNormStudy | None = None
    pvo_norms: list[float] = field(default_factory=list)
    grid: list[list[float]] = field(default_factory=list)
    grid_shape: list[int] = field(default_factory=list)
    selected: list[int] = field(default_factory=list)
    selection: str = ""
    fits: dict[str, NeuronFit] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)
    ln1_multiplier: list[float] = field(default_factory=list)
    mlp_scale: MLPScale | None = None
    decomposition: Decomposition | None = None
    combined_positional: CombinedPositional | None = None
    top_examples: list[TopExample] = field(default_factory=list)
    top_examples_summary: ExamplesSummary | None = None  # None when no examples were asked for
    notes: list[str] = field(default_factory=list)
    checks: list[ClaimRow] = field(default_factory=list)


def _f(x, fmt=".3g"):
    return "n/a" if x is None else format(x, fmt)


def summarize(r: DupNeuronsResult) -> list[str]:
    """Short lines for the terminal and the report."""
    lines = [f"head {r.head} ({r.head_choice}) into layer {r.layer}'s MLP: {len(r.selected)} neuron(s) selected by "
             f"{r.selection}: {', '.join(map(str, r.selected[:10]))}{' ...' if len(r.selected) > 10 else ''}"]
    f = r.fits.get(str(r.neuron))
    if f is not None:
        lines.append(f"neuron {r.neuron}: |PVO| {_f(f.norm)}, PVO slope {_f(f.slope)}/position, "
                     f"zero at {_f(f.zero_crossing, '.0f')}, R² {_f(f.r2, '.3f')}")
    st = r.ln_scale
    if st is not None and st.approx_error is not None:
        lines.append(f"LayerNorm scale: the study's approximation off by {st.approx_error['mean_abs']:.2%} on average "
                     f"(max {st.approx_error['max_abs']:.2%}); with |W_pos| = {st.pos_norm_mean:.3f} "
                     f"{st.approx_const_error['mean_abs']:.2%}; mean |cos(W_E, W_pos)| {st.cos_abs_mean:.3f}")
    d = r.decomposition
    if d is not None:
        ms = d.mlp_scale
        lines.append(f"decomposition over {d.n_tokens} tokens ({d.text_source}): exact to "
                     f"{d.reconstruction_error:.1e}; MLP LayerNorm scale {ms.mean:.3f} ± {ms.std:.3f} "
                     f"(constant-scale error rms {ms.constant_scale_error.rms:.3g})")
        ap = d.approximations
        tp = ap.total_positional
        lines.append(f"the study's rules for the positional part (uniform heads: {', '.join(ap.uniform_heads) or 'none'}): "
                     f"rms error {tp.error_attention_rule.rms:.3g} with exact LayerNorm scales, "
                     f"{tp.error_seed.rms:.3g} with the study's scales (exact positional part varies by "
                     f"{tp.error_seed.exact_std:.3g})")
        ex = d.extra_vs_distance
        if ex.n:
            lines.append(f"{ex.n} repeated tokens: extra from the duplicate head {_f(ex.fit_measured['slope'])}/token "
                         f"of mean copy distance measured, {_f(ex.fit_predicted['slope'])} predicted; at 100 tokens "
                         f"{_f(ex.measured_at_100)} measured vs {_f(ex.predicted_at_100)} predicted "
                         f"(rms {ex.rms_error:.3g})")
    cp = r.combined_positional
    if cp is not None:
        lines.append(f"combined positional contribution by the study's rules, mean after position {cp.from_position}: "
                     f"{cp.mean_from:.3g}")
    s = r.top_examples_summary
    if s is not None and s.k:
        lines.append(f"top {s.k} activations (max {s.max_activation:.3g}) over {s.source}: "
                     f"{s.share_with_earlier_copy:.0%} on tokens with an earlier copy "
                     f"(all positions: {s.base_share_with_earlier_copy:.0%})")
    for c in r.checks:
        lines.append(f"the study: {c.what}: {'reproduced' if c.reproduced else 'NOT reproduced'} (published "
                     f"{c.published}, ours {c.ours if not isinstance(c.ours, float) else format(c.ours, '.3g')})")
    return lines + list(r.notes)
