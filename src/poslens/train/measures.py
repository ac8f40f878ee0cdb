"""What a model card measures on a trained model and on every snapshot of its history.

- :func:`incontext_gain`: on repeated random tokens, the loss on the first copy minus that on
  the second, and ``induction_gain``, the part that needs the earlier copy's order (the
  second copy shuffled as control; :mod:`poslens.analyses.incontext` says why).
- :func:`mechanism_scores`: the best previous-token, duplicate-token and induction head
  (from :func:`poslens.analyses.heads.duplicate_heads`), W_pos's top-3 variance
  share and short-period share (from :func:`poslens.analyses.helix.helix`), and the gain.
- :func:`history_scores`: those scores at every snapshot of ``model/history`` and, per
  mechanism, the step where it formed (:func:`formation`).

>>> s = mechanism_scores("tiny")                         # doctest: +SKIP
>>> s["prev"], s["induction"], s["incontext_gain"]       # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

# Targets of the model organism; a mechanism "formed" at the first snapshot from which it stays past its target.
TARGETS: dict[str, tuple[str, float]] = {
    "prev": (">=", 0.8), "dup": (">=", 0.3), "induction": (">=", 0.3), "incontext_gain": (">=", 0.3),
    "wpe_top3": (">=", 0.6), "wpe_short": ("<=", 0.05),
}
LABELS = {
    "prev": "previous-token head", "dup": "duplicate-token head", "induction": "induction head",
    "incontext_gain": "in-context loss gain (nats)", "induction_gain": "of it, order-dependent (nats)", "wpe_top3": "W_pos top-3 share",
    "wpe_short": "W_pos short-period share", "val_loss": "held-out loss (nats)",
}


def incontext_gain(model, n_seq: int = 32, seq_len: int = 256, seed: int = 0) -> dict[str, float]:
    """:func:`poslens.analyses.incontext.copy_gain` on ``n_seq`` sequences of BOS, ``h`` distinct
    random tokens and the same ``h`` again; with the uniform loss ln(vocab) for scale."""
    from ..analyses.incontext import copy_gain
    from ..data.sequences import repeated_tokens
    from ..models import Runner
    from ..models.weights import as_weights

    w = as_weights(model, "incontext_gain")
    bos = w.cfg.bos_token_id
    toks = repeated_tokens(n_seq, min(seq_len, w.cfg.n_ctx), w.cfg.d_vocab, seed=seed, exclude=(), bos=bos)
    return {**copy_gain(Runner(w, dtype="float32"), toks, bos is not None, seed=seed), "uniform": math.log(w.cfg.d_vocab)}


def mechanism_scores(model, n_seq: int = 32, seq_len: int = 256) -> dict[str, Any]:
    """The organism's headline numbers for one checkpoint (directory, name or Weights)."""
    from ..analyses.heads import duplicate_heads
    from ..analyses.helix import helix
    from ..models.weights import as_weights

    w = as_weights(model, "mechanism_scores")
    P = min(seq_len, w.cfg.n_ctx)
    dup = duplicate_heads(w, n_seq=n_seq, seq_len=P, positional=False)
    heads = dup.heads

    def best(key):
        k = max(heads, key=lambda k: getattr(heads[k], key))
        return k, float(getattr(heads[k], key))

    hx = helix(w, tokens=False, sinusoidal=False, truncations=False)
    pk, pv = best("prev_token_score")
    dk, dv = best("score_repeated")
    ik, iv = best("induction_score")
    sk, sv = best("shifted_induction_score")
    g = incontext_gain(w, n_seq=n_seq, seq_len=P)
    return {
        "prev": pv, "prev_head": pk, "dup": dv, "dup_head": dk, "induction": iv, "induction_head": ik,
        "shifted_induction": sv, "shifted_induction_head": sk,
        "incontext_gain": g["gain"], "induction_gain": g["induction_gain"], "loss_first_copy": g["first"],
        "loss_second_copy": g["second"], "loss_second_copy_shuffled": g["second_shuffled"],
        "wpe_top3": float(sum(hx.variance_explained[:3])), "wpe_short": hx.short_period.share,
        "helix_turns": hx.helix.turns if hx.helix else None, "helix_r2": hx.helix.r2 if hx.helix else None,
    }


def meets(key: str, value) -> bool:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return False
    op, t = TARGETS[key]
    return value >= t if op == ">=" else value <= t


def formation(rows: list[dict], key: str) -> dict[str, Any]:
    """When ``key`` formed over ``rows`` (step order): the first step from which it meets its target
    for good (None if it never does), and the snapshot interval with the largest rise toward it."""
    steps = [r["step"] for r in rows]
    vals = [r.get(key) for r in rows]
    formed = next((steps[i] for i in range(len(rows)) if all(meets(key, v) for v in vals[i:])), None)
    sign = 1.0 if TARGETS[key][0] == ">=" else -1.0
    jumps = [(sign * (vals[i] - vals[i - 1]), i) for i in range(1, len(rows))
             if vals[i] is not None and vals[i - 1] is not None]
    big = max(jumps) if jumps else None
    return {"formed_at": formed,
            "largest_jump": None if big is None else {"from_step": steps[big[1] - 1], "to_step": steps[big[1]],
                                                      "change": sign * big[0]}}


def history_scores(model_dir: str | Path, n_seq: int = 16, progress: bool = False) -> dict[str, Any]:
    """:func:`mechanism_scores` at every snapshot of ``model_dir/history`` and when each mechanism formed."""
    from ..progress import bar

    from .history import read_manifest, snapshot_dirs

    man = read_manifest(model_dir)
    by_step = {s["step"]: s for s in man["snapshots"]}
    rows = []
    for step, d in bar(snapshot_dirs(model_dir), desc="history", disable=not progress, leave=False):
        s = mechanism_scores(d, n_seq=n_seq)
        rows.append({"step": step, "tokens_seen": by_step[step]["tokens_seen"], "val_loss": by_step[step].get("val_loss"),
                     **s})
    return {"rows": rows, "formation": {k: formation(rows, k) for k in TARGETS}, "n_seq": n_seq}


def as_table(rows: list[dict], keys=("val_loss", "prev", "dup", "induction", "incontext_gain", "induction_gain", "wpe_top3",
                                    "wpe_short")) -> list[str]:
    """Markdown table: a row per snapshot, a column per score."""
    head = "| step | tokens | " + " | ".join(LABELS[k] for k in keys) + " |"
    out = [head, "| " + " | ".join("---" for _ in range(len(keys) + 2)) + " |"]
    for r in rows:
        cells = ["n/a" if r.get(k) is None else f"{r[k]:.1%}" if k == "wpe_short" else f"{r[k]:.3f}" for k in keys]
        out.append(f"| {r['step']:,} | {r['tokens_seen']:,} | " + " | ".join(cells) + " |")
    return out
