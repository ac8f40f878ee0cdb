"""Short lines describing a :class:`~poslens.analyses.sinks.SinkResult`, for the terminal and the report."""

from __future__ import annotations

from .measure import SinkResult


def summarize(r: SinkResult) -> list[str]:
    lines = []
    for run in r.runs:
        top = ", ".join(f"{h}" for h in run.sink_heads[:5]) or "none"
        ratio = "—" if run.first_key_norm_ratio is None else f"{run.first_key_norm_ratio:.2f}"
        lines.append(
            f"{run.inputs}: sink share {run.sink_share:.1%} of (sequence, layer, head) with alpha(0) > {r.epsilon:g} "
            f"over layers {run.layers[0]}..{run.layers[-1]}; {len(run.sink_heads)} sink head(s) ({top}); "
            f"first key norm / others {ratio} (median); cos(q, k_first) {run.qk_cos_first:.2f} vs cos(q, k_other) "
            f"{run.qk_cos_other:.2f}"
        )
    for s in r.skipped_inputs:
        lines.append(f"not measured: {s}")
    if r.limits:
        lines.append(f"limits: {r.limits}")
    return lines
