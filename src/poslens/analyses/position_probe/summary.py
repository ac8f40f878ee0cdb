"""Short lines describing a :class:`~poslens.analyses.position_probe.ProbeResult`."""

from __future__ import annotations

from .measure import ProbeResult


def summarize(r: ProbeResult) -> list[str]:
    if not r.points:
        return []
    base = r.points[0].baseline_mae
    errs = ", ".join(f"{p.point}: {p.mae:.1f}" for p in r.points)
    best = next(p for p in r.points if p.point == r.best_point)
    lines = [
        f"absolute-position probe on {r.inputs} ({r.seq_len} positions, {r.n_test_seq} test sequences): mean absolute "
        f"error by residual point {errs} positions; no-information baseline {base:.1f}",
        f"best point {best.point}: error {best.mae:.2f} positions ({best.relative:.0%} of the baseline, R² {best.r2:.3f})",
    ]
    if r.emerges_at is not None:
        lines.append(f"position is readable (error under half the baseline) from residual point {r.emerges_at} on")
    else:
        lines.append("no residual point gets under half the baseline error")
    if r.limits:
        lines.append(f"limits: {r.limits}")
    return lines
