"""Published claims of the post on duplicate-token heads and the neurons they drive in GPT-2
small's layer 0: which heads are duplicate-token heads (0.1, 0.10, 0.5), how their attention
decays with distance, and which layer-0 heads attend locally on positional inputs.

Each row names the claim (head, published reading) and the result part it reads
(``heads[L.H].is_duplicate``, ``profiles[L.H].verdict``, ``positional.heads[L.H].kind``).

>>> rows = duplicate_heads_rows(weights.cfg, weights.label, r.heads, r.profiles, r.positional)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from .rows import is_gpt2_small

STUDY = "the duplicate-token heads and neurons post"


def duplicate_heads_rows(cfg, label: str, heads: dict, profiles: dict, pos: dict) -> list[dict[str, Any]]:
    """The post's GPT-2 small claims against a duplicate-heads result's parts, on GPT-2 small only."""
    if not is_gpt2_small(cfg, label):
        return []
    out = []
    if pos:
        hs = pos["heads"]
        kinds = {k: v["kind"] for k, v in hs.items()}
        where = (f"measured on positional inputs alone (token embedding zero), queries {pos['min_query']}.."
                 f"{pos['seq_len'] - 1}; the post's statement is about text")
        v11 = hs.get("0.11", {})
        out.append(_row(
            what="layer-0 head 0.11 attends nearly uniformly", published="uniform", ours=kinds.get("0.11"),
            reproduced=kinds.get("0.11") == "uniform",
            note=f"entropy ratio {v11.get('entropy_ratio', float('nan')):.3f} (uniform threshold {pos['uniform_entropy']}); "
                 f"mean distance {v11.get('mean_distance', float('nan')):.0f} against {pos['uniform_mean_distance']:.0f} for "
                 f"exactly uniform attention; {where}"))
        broad = sorted((k for k, v in kinds.items() if v != "local"), key=lambda k: int(k.split(".")[1]))
        local = [k for k in hs if kinds[k] == "local"]
        spans = [hs[k]["span50"] for k in local]
        span90 = [hs[k]["span90"] for k in local]
        out.append(_row(
            what="most layer-0 heads attend to the previous ~30 tokens; the exceptions are 0.5 and 0.11",
            published="all but 0.5 and 0.11 local", ours=f"{len(local)} of 12 local; not local: {', '.join(broad) or 'none'}",
            reproduced=set(broad) == {"0.5", "0.11"},
            note=(f"local = half the attention within the last {pos['local_window']} positions; the local heads' "
                  f"span50 is {min(spans):.0f}-{max(spans):.0f} and span90 {min(span90):.0f}-{max(span90):.0f} positions; "
                  + where) if local else where))
    if heads:
        for name, want in (("0.1", "decaying"), ("0.10", "decaying"), ("0.5", "uniform")):
            if name in heads:
                h = heads[name]
                out.append(_row(what=f"{name} is a duplicate-token head", published=True, ours=h["is_duplicate"],
                                reproduced=h["is_duplicate"],
                                note=f"score {h['score']:.3f}, rank {h['rank']}" if h.get("score") is not None else ""))
            if name in profiles:
                v = profiles[name].get("verdict")
                hd = profiles[name].get("half_distance")
                out.append(_row(what=f"{name} attention decays with distance ({want})", published=want, ours=v,
                                reproduced=v == want,
                                note=f"half-distance {hd:.1f} tokens" if isinstance(hd, (int, float)) else ""))
    return out


def _row(**kw) -> dict:
    return {**kw, "study": STUDY}
