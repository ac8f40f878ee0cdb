"""Short lines describing a :class:`~poslens.analyses.rotary.RotaryResult`."""

from __future__ import annotations

from .measure import RotaryResult


def summarize(r: RotaryResult) -> list[str]:
    if not r.heads:
        return []
    top = {h.head: h for h in r.heads}
    pos = ", ".join(f"{k} {top[k].high_share:.2f}" for k in r.positional_ranking[:3])
    sem = ", ".join(f"{k} {top[k].low_share:.2f}" for k in r.semantic_ranking[:3])
    n = len(r.frequencies)
    lines = [
        f"{n} rotary pairs per head (rotary_dim {r.rotary_dim}, base {r.base:g}); highest pairs {list(r.high_pairs)}, "
        f"lowest {list(r.low_pairs)}",
        f"most positional heads (usage share on the highest pairs): {pos}; {len(r.positional_heads)} at or above the threshold",
        f"most semantic heads (share on the lowest pairs): {sem}; mean share on the lowest pairs {r.mean_low_share:.2f} "
        f"(uniform usage: {len(r.low_pairs) / n:.2f})",
    ]
    if r.ablation is not None:
        a = r.ablation
        lines.append(f"removing the lowest {len(a.pairs_removed)} pair(s) from q and k: loss {a.clean_loss:.3f} -> "
                     f"{a.ablated_loss:.3f} nats ({a.delta:+.3f})")
    return lines
